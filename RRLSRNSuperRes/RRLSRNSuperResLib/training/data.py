"""Training volumes: which files, which slicing axes, and a compact pack for training anywhere.

A *pack* is one ``.npz`` of normalised volumes cropped to their foreground and quantised to
uint16, with the subject and the in-plane slicing axes of each. It needs only numpy to read,
so training runs on machines without SimpleITK, and it is small enough to carry.

The default split (by subject, never by slice) keeps all nine MIALSRTK clinical stacks out
of training and validation: they are the held-out test set of ``rrlsrn evaluate``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imaging.intensity import foreground_threshold, robust_scale

_QUANT_OFFSET = 0.25
_QUANT_STEP = 1.0 / 4000.0  # error SD 7e-5 of the normalised range: far below MRI noise
MAX_SLICES_PER_AXIS = 64  # thick-slice stacks: every n-th slice, so one scan does not dominate the pack
CROP_MARGIN = 8
FINE_SPACING_TOLERANCE = 1.2

# (path relative to the data root, subject id, role). Sources and licenses: DATA.md.
# Colin27 (an average, smooth) is left out to keep the pack under the 64 MiB a GPU run carries.
DEFAULT_VOLUMES: tuple[tuple[str, str, str], ...] = (
    ("fetal/dbclab/sub-0009_ses-V01_T2w.nii.gz", "dbclab-fetal-0009", "train"),
    ("fetal/dbclab/Template-Fetal-T2w.nii.gz", "dbclab-fetal-template", "train"),
    *(
        (f"fetal/spina-bifida-atlas/fetal_SB_atlas_GA{ga}_{state}.nii.gz", "sb-atlas", "train")
        for ga, state in ((21, "notoperated"), (23, "notoperated"), (25, "notoperated"), (27, "operated"),
                          (29, "operated"), (31, "operated"), (33, "operated"))
    ),
    *(
        (f"infant/dbclab/sub-000{n}_ses-V01_T1w.nii.gz", f"dbclab-infant-000{n}", "train")
        for n in range(1, 8)
    ),
    ("adult/niivue-mprage-0.41mm.nii.gz", "niivue-mprage", "train"),
    ("adult/niivue-chris-t1.nii.gz", "niivue-chris", "train"),
    ("fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", "dbclab-fetal-0010", "val"),
    ("infant/dbclab/sub-0008_ses-V01_T1w.nii.gz", "dbclab-infant-0008", "val"),
)


@dataclass
class TrainingVolume:
    """One normalised volume (numpy K x J x I order) and the numpy axes it may be sliced along."""

    name: str
    subject: str
    role: str
    voxels: np.ndarray
    slice_axes: tuple[int, ...]


def inplane_slice_axes(spacing_xyz: tuple[float, float, float]) -> tuple[int, ...]:
    """Numpy axes whose slices have both in-plane spacings fine (within 20% of the finest).

    An isotropic volume gives all three; a thick-slice stack only its acquisition plane.
    """
    numpy_spacing = np.asarray(spacing_xyz, dtype=float)[::-1]
    fine = numpy_spacing <= numpy_spacing.min() * FINE_SPACING_TOLERANCE
    return tuple(axis for axis in range(3) if all(fine[other] for other in range(3) if other != axis))


def crop_to_foreground(voxels: np.ndarray, margin: int = CROP_MARGIN) -> np.ndarray:
    """Crop to the box around tissue (above the Otsu threshold) plus a margin."""
    tissue = voxels > foreground_threshold(voxels)
    if not tissue.any():
        return voxels
    bounds = [np.flatnonzero(tissue.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    box = tuple(slice(max(b[0] - margin, 0), b[-1] + 1 + margin) for b in bounds)
    return voxels[box]


def load_training_volume(path: Path, subject: str, role: str) -> TrainingVolume:
    """Read, normalise (foreground percentile) and crop one volume for training."""
    from ..io.volumes import read_volume

    volume = read_volume(path)
    scale = robust_scale(volume.voxels)
    voxels = crop_to_foreground(scale.normalise(volume.voxels))
    axes = inplane_slice_axes(volume.geometry.spacing)
    if len(axes) == 1:
        stride = -(-voxels.shape[axes[0]] // MAX_SLICES_PER_AXIS)
        voxels = np.take(voxels, np.arange(0, voxels.shape[axes[0]], stride), axis=axes[0])
    return TrainingVolume(path.name, subject, role, voxels, axes)


def write_pack(volumes: list[TrainingVolume], path: Path) -> None:
    """Save volumes quantised to uint16 (step 1/4000 of the normalised range)."""
    arrays = {}
    index = []
    for number, volume in enumerate(volumes):
        quantised = np.clip(np.rint((volume.voxels + _QUANT_OFFSET) / _QUANT_STEP), 0, 65535).astype(np.uint16)
        arrays[f"v{number}"] = quantised
        index.append({"name": volume.name, "subject": volume.subject, "role": volume.role,
                      "slice_axes": list(volume.slice_axes)})
    np.savez_compressed(path, index=np.array(json.dumps(index)), **arrays)


def read_pack(path: Path) -> list[TrainingVolume]:
    """Inverse of :func:`write_pack` (float32 voxels)."""
    with np.load(path, allow_pickle=False) as pack:
        index = json.loads(str(pack["index"]))
        return [
            TrainingVolume(entry["name"], entry["subject"], entry["role"],
                           pack[f"v{number}"].astype(np.float32) * np.float32(_QUANT_STEP) - np.float32(_QUANT_OFFSET),
                           tuple(entry["slice_axes"]))
            for number, entry in enumerate(index)
        ]


def build_pack(files: list[tuple[Path, str, str]], path: Path) -> list[TrainingVolume]:
    """Read (file, subject, role) triples into a pack at ``path``."""
    volumes = [load_training_volume(Path(file), subject, role) for file, subject, role in files]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pack(volumes, path)
    return volumes


def build_default_pack(data_root: Path, path: Path) -> list[TrainingVolume]:
    """The bundled model's training set (DEFAULT_VOLUMES under ``data_root``) as one pack."""
    return build_pack([(data_root / rel, subject, role) for rel, subject, role in DEFAULT_VOLUMES], path)
