"""Several stacks from files to one motion-corrected isotropic volume on file: ``rrlsrn reconstruct``'s job.

read every stack (any format ``superres`` reads) -> brain masks (given, else the automatic fetal
brain mask) -> RRLSRN x2 in-plane on each stack through the engine (unless ``superres`` is off) ->
``reconstruction.reconstruct`` -> the volume, its brain mask and a JSON sidecar (each slice's pose
and weight, the options, the inputs), all written atomically after the work is done.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..engine.acquisition import superresolve_acquired
from ..engine.options import EngineOptions
from ..errors import Progress, UserInputError
from ..io.atomic_files import write_json
from ..io.formats import check_output_path, check_volume_output
from ..io.sidecars import sidecar_path
from ..io.volumes import Volume, read_mask_on_grid, read_volume, write_volume
from ..masks.fetal_brain import fetal_brain_mask
from ..reconstruction.reconstruct import ReconstructionOptions, ReconstructionResult, reconstruct
from ..reconstruction.stacks import RRLSRN_PSF_FRACTION, Stack, on_x2_grid, stack_from_arrays
from .stack import output_voxels

MASK_SUFFIX = "_mask"
SUPERRES_LABEL = "RRLSRN x2"  # + the stack's name: the progress label of its in-plane step
RECONSTRUCTION_LABEL = "3D reconstruction"


@dataclass(frozen=True)
class ReconstructionJob:
    """What ``rrlsrn reconstruct`` was asked: inputs, outputs and how.

    ``masks``: one per stack, in the same order, or empty (automatic masks). ``thickness_mm``: the
    slice profile's FWHM for every stack (None: each stack's slice spacing). ``superres``: RRLSRN
    x2 in-plane on each stack first (off to measure what it adds). ``mask_output``: where the brain mask
    goes (None: ``<name>_mask`` beside the volume). ``stack_labels``: how the sidecar names the stacks
    (e.g. BIDS URIs; empty: their paths). ``sidecar_fields``: top-level sidecar fields added or replaced
    (e.g. the BIDS acquisition metadata), so a caller never rewrites the files afterwards.
    """

    stacks: tuple[Path, ...]
    output: Path
    masks: tuple[Path, ...] = ()
    superres: bool = True
    thickness_mm: Optional[float] = None
    engine: EngineOptions = EngineOptions()
    reconstruction: ReconstructionOptions = ReconstructionOptions()
    mask_output: Optional[Path] = None
    stack_labels: tuple[str, ...] = ()
    sidecar_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ReconstructionFiles:
    """What was written, and the reconstruction behind it."""

    result: ReconstructionResult
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def reconstruction_options(resolution_mm: float, engine: EngineOptions,
                           motion_correction: bool = True) -> ReconstructionOptions:
    """The reconstruction's options on the engine's device (``auto`` resolved), as every front end sets them."""
    from ..engine.devices import select_device

    return ReconstructionOptions(resolution_mm=resolution_mm, motion_correction=motion_correction,
                                 device=str(select_device(engine.device)))


def overall_progress(job: ReconstructionJob,
                     progress: Optional[Progress]) -> Callable[[str], Optional[Progress]]:
    """A ``progress_for`` of :func:`reconstruct_files` that reports every phase to one ``progress`` on one
    0..1 scale, the phase's label before its message: the RRLSRN step shares the first half among the
    stacks (when it runs), the 3D reconstruction takes the rest. A ``False`` answer still cancels."""
    if progress is None:
        return lambda label: None
    names = [_name(path) for path in job.stacks] if job.superres else []
    share = 0.5 / len(names) if names else 0.0
    spans = {f"{SUPERRES_LABEL} {name}": (index * share, (index + 1) * share) for index, name in enumerate(names)}
    spans[RECONSTRUCTION_LABEL] = (share * len(names), 1.0)

    def progress_for(label: str) -> Progress:
        low, high = spans[label]
        return lambda fraction, message="": progress(low + (high - low) * fraction,
                                                     f"{label}: {message}" if message else label)

    return progress_for


def run_summary(files: ReconstructionFiles, job: ReconstructionJob) -> dict:
    """What a front end reports of a finished job (JSON-able): the volume and mask files, time, device,
    template stack (index and name), rejected slices, notes."""
    result, paths = files.result, output_paths(job.output, job.mask_output)
    return {"volume": str(paths["volume"]), "mask": str(paths["mask"]), "seconds": round(result.seconds, 3),
            "device": job.reconstruction.device, "template_index": result.template_index,
            "template": _name(job.stacks[result.template_index]), "superres": job.superres,
            "slices_rejected": int(result.parameters.get("slices_rejected", 0)), "notes": files.notes}


def output_paths(output: Path, mask_output: Optional[Path] = None) -> dict[str, Path]:
    """The volume, its brain mask (``mask_output``, else ``<name>_mask`` beside it) and its JSON sidecar
    (``<name>.json``)."""
    sidecar = sidecar_path(output)
    if sidecar is None:
        raise UserInputError(f"cannot tell the format of {output}: give a .nii.gz, .nii, .nrrd or .mha file")
    mask = Path(mask_output) if mask_output is not None else \
        sidecar.with_name(sidecar.stem + MASK_SUFFIX + output.name[len(sidecar.stem):])
    return {"volume": output, "mask": mask, "sidecar": sidecar}


def check_job(job: ReconstructionJob) -> dict[str, Path]:
    """Every refusal that needs no reading: too few stacks, masks not one per stack, unusable outputs."""
    if len(job.stacks) < 2:
        raise UserInputError(f"a 3D reconstruction needs at least 2 stacks (got {len(job.stacks)}); give stacks "
                             "in several orientations")
    if job.masks and len(job.masks) != len(job.stacks):
        counts = f"({len(job.masks)} masks for {len(job.stacks)} stacks)"
        raise UserInputError(f"give one --mask per stack, in the same order {counts}, or none for automatic masks",
                             in_slicer=f"check one brain mask per stack, in the stacks' order {counts}, or none for "
                                       "automatic masks")
    if job.thickness_mm is not None and not job.thickness_mm > 0:
        raise UserInputError(f"--thickness must be positive, not {job.thickness_mm}",
                             in_slicer=f"the slice thickness must be positive, not {job.thickness_mm} mm")
    inputs = [*job.stacks, *job.masks]
    paths = output_paths(job.output, job.mask_output)
    if job.stack_labels and len(job.stack_labels) != len(job.stacks):
        raise ValueError("stack_labels must name every stack, in order")
    if check_volume_output(job.output, inputs) == "dicom":
        raise UserInputError("the reconstruction is written as NIfTI, NRRD or MHA, not DICOM")
    for path in (paths["mask"], paths["sidecar"]):
        check_output_path(path, inputs + [job.output])
    return paths


def read_stack_volume(path: Path) -> Volume:
    """One stack's voxels and header, refused at once when it is no 3D scalar stack of several slices."""
    volume = read_volume(path)
    if volume.components != 1:
        raise UserInputError(f"{path} has {volume.components} components per voxel; give scalar T2 stacks")
    if volume.voxels.ndim != 3 or min(volume.voxels.shape) < 2:
        raise UserInputError(f"{path} is not a 3D stack of several slices ({volume.voxels.shape[::-1]} voxels)")
    return volume


def stack_with_mask(path: Path, volume: Volume, mask: Optional[Path],
                    thickness_mm: Optional[float]) -> tuple[Stack, list[str]]:
    """The stack with its brain mask (read, or found automatically), slices on k; notes on the mask."""
    notes = []
    if mask is not None:
        mask_voxels = read_mask_on_grid(mask, volume)
    else:
        found = fetal_brain_mask(volume.voxels, volume.geometry.spacing)
        mask_voxels = found.voxels
        notes += [f"{path.name}: automatic brain mask, confidence {found.confidence:.2f}"]
        notes += [f"{path.name}: {problem}" for problem in found.problems]
    if not np.any(mask_voxels):
        raise UserInputError(f"the brain mask of {path} is empty; give a mask that covers the brain")
    return stack_from_arrays(volume.voxels, volume.geometry, mask_voxels, thickness_mm, _name(path)), notes


def _name(path: Path) -> str:
    return Path(path).name.split(".")[0]


def superresolve_stack(stack: Stack, options: EngineOptions, progress: Optional[Progress]) -> Stack:
    """The stack x2 in-plane by RRLSRN (slices along k, the brain box only), on its exact x2 grid."""
    result = superresolve_acquired(stack.voxels_kji, stack.geometry.spacing, dataclasses.replace(options, plane="k"),
                                   mask_kji=stack.mask_kji, progress=progress)
    return on_x2_grid(stack, result.voxels, "rrlsrn", RRLSRN_PSF_FRACTION)


def reconstruct_files(job: ReconstructionJob, progress_for: Callable[[str], Optional[Progress]] = lambda _: None,
                      provenance: Optional[dict] = None) -> ReconstructionFiles:
    """Run ``job``; nothing is written before the reconstruction is complete (Ctrl-C leaves no file)."""
    paths = check_job(job)
    masks: Sequence[Optional[Path]] = job.masks or [None] * len(job.stacks)
    volumes = [read_stack_volume(Path(path)) for path in job.stacks]
    read = [stack_with_mask(Path(path), volume, mask, job.thickness_mm)
            for path, volume, mask in zip(job.stacks, volumes, masks)]
    stacks, notes = [stack for stack, _ in read], [note for _, stack_notes in read for note in stack_notes]
    input_type = volumes[0].voxels.dtype
    if job.superres:
        stacks = [superresolve_stack(stack, job.engine, progress_for(f"{SUPERRES_LABEL} {stack.name}"))
                  for stack in stacks]
    result = reconstruct(stacks, job.reconstruction, progress_for(RECONSTRUCTION_LABEL))
    voxels, type_notes = output_voxels(np.clip(result.volume_kji, 0, None), input_type, "auto")
    write_volume(paths["volume"], voxels, result.geometry)
    write_volume(paths["mask"], result.mask_kji.astype(np.uint8), result.geometry)
    write_json(paths["sidecar"], sidecar(job, result, stacks, provenance or {}))
    written = [f"{paths['volume']} ({voxels.dtype.name})", f"{paths['mask']} (uint8 brain mask)",
               f"{paths['sidecar']} (slice poses and weights, options)"]
    return ReconstructionFiles(result, written, notes + type_notes)


def sidecar(job: ReconstructionJob, result: ReconstructionResult, stacks: Sequence[Stack], provenance: dict) -> dict:
    """Each slice's pose (4x4, LPS mm, x_anatomy = T @ x_nominal) and weight (0 = rejected), the options, inputs;
    then ``job.sidecar_fields`` on top."""
    labels = job.stack_labels or tuple(str(path) for path in job.stacks)
    record = {
        "Sources": list(labels),
        "Masks": [str(path) for path in job.masks] or "automatic",
        "Description": "motion-corrected super-resolution reconstruction from several stacks, isotropic voxels",
        "RRLSRN": {
            **provenance,
            "InPlaneSuperResolution": job.superres,
            "EngineOptions": dataclasses.asdict(job.engine) if job.superres else None,
            "Reconstruction": result.parameters,
            "Seconds": round(result.seconds, 3),
            "TemplateStack": labels[result.template_index],
            "Stacks": [{"Source": label, "SliceAxisIJK": "k after reorientation", "ThicknessMm": stack.thickness_mm,
                        "InPlanePsfFwhmMm": [round(fwhm, 6) for fwhm in stack.in_plane_psf_mm],
                        "Slices": [{"Index": index, "TransformLPS": np.round(transform, 6).tolist(),
                                    "Weight": round(float(weight), 4)}
                                   for index, (transform, weight) in enumerate(zip(transforms, weights))]}
                       for label, stack, transforms, weights in zip(labels, stacks, result.transforms,
                                                                     result.slice_weights)],
        },
    }
    return {**record, **job.sidecar_fields}
