"""Reading and writing volumes with SimpleITK, with the checks a user's file deserves.

Reading refuses what would silently give garbage (a cut-short ``.gz`` reads as zeros in
SimpleITK; NaN voxels); writing is atomic (temporary file in the target folder, then rename)
so a failed or cancelled run never leaves a partial file.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ..imaging.geometry import Geometry
from .atomic_files import replace_atomically

_GZIP_CHUNK = 1 << 22


@dataclass
class Volume:
    """Voxels in numpy [k, j, i] order (original dtype; last axis components if vector)."""

    voxels: np.ndarray
    geometry: Geometry
    components: int = 1


def _check_gzip_complete(path: Path) -> None:
    """Decompress to the end: a truncated or corrupt gzip raises here, not later as zeros."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(_GZIP_CHUNK):
                pass
    except (EOFError, OSError, zlib.error) as error:
        raise UserInputError(f"{path} is a damaged or truncated gzip file ({error}); copy it again") from error


def nifti_nonfinite_mask(path: Path) -> np.ndarray | None:
    """Where a float NIfTI file stores NaN/Inf ([k, j, i] for 3D), or None if it cannot.

    SimpleITK's NIfTI reader turns NaN into 0 without a word, so the raw voxels are checked
    here (NIfTI-1 and -2, either byte order, float32/float64 only).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        header = stream.read(540)
        if len(header) < 348:
            return None
        for order in "<>":
            size = int(np.frombuffer(header[:4], f"{order}i4")[0])
            if size in (348, 540):
                break
        else:
            return None
        if size == 348:
            dims = np.frombuffer(header[40:56], f"{order}i2").astype(int)
            datatype = int(np.frombuffer(header[70:72], f"{order}i2")[0])
            offset = int(np.frombuffer(header[108:112], f"{order}f4")[0])
        else:
            datatype = int(np.frombuffer(header[12:14], f"{order}i2")[0])
            dims = np.frombuffer(header[16:80], f"{order}i8").astype(int)
            offset = int(np.frombuffer(header[168:176], f"{order}i8")[0])
        dtype = {16: f"{order}f4", 64: f"{order}f8"}.get(datatype)
        if dtype is None:
            return None
        shape = tuple(int(n) for n in dims[1: 1 + dims[0]])[::-1]
        stream.seek(offset)
        raw = np.frombuffer(stream.read(int(np.prod(shape)) * np.dtype(dtype).itemsize), dtype)
    if raw.size != int(np.prod(shape)):
        return None
    return ~np.isfinite(raw).reshape(shape)


def _read_image(path: Path):
    import SimpleITK as sitk

    if not path.exists():
        raise UserInputError(f"input {path} does not exist")
    if path.is_dir():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
        if not files:
            raise UserInputError(f"folder {path} holds no DICOM series")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        return reader.Execute()
    if path.stat().st_size == 0:
        raise UserInputError(f"input {path} is an empty file")
    if path.name.lower().endswith(".gz"):
        _check_gzip_complete(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise UserInputError(f"{path} is not an image SimpleITK can read (NIfTI, NRRD, MHA, DICOM folder)") from error


def geometry_of(image) -> Geometry:
    """Geometry (LPS) of a 3D SimpleITK image."""
    return Geometry(
        size=tuple(int(s) for s in image.GetSize()),
        spacing=tuple(float(s) for s in image.GetSpacing()),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=tuple(float(d) for d in image.GetDirection()),
    )


def read_volume(path: Path | str, replace_nonfinite: float | None = None) -> Volume:
    """Read a 2D or 3D scalar or vector image; 2D becomes a single-slice 3D volume.

    NaN/Inf voxels are an error unless ``replace_nonfinite`` gives a value to put there.
    """
    import SimpleITK as sitk

    path = Path(path)
    image = _read_image(path)
    dimension = image.GetDimension()
    if dimension == 2:
        image = sitk.JoinSeries(image)
    elif dimension != 3:
        raise UserInputError(f"{path} is {dimension}D; give a 3D volume (split 4D series into 3D volumes first)")
    voxels = sitk.GetArrayFromImage(image)
    if voxels.size == 0:
        raise UserInputError(f"{path} has no voxels")
    if np.issubdtype(voxels.dtype, np.complexfloating):
        raise UserInputError(f"{path} holds complex voxels; give the magnitude image")
    if np.issubdtype(voxels.dtype, np.floating):
        finite = np.isfinite(voxels)
        hidden = nifti_nonfinite_mask(path) if ".nii" in path.name.lower() else None
        if hidden is not None and hidden.shape == voxels.shape:
            finite &= ~hidden
        if not finite.all():
            if replace_nonfinite is None:
                raise UserInputError(
                    f"{path} has {int((~finite).sum())} NaN/Inf voxels; fix the file or pass --replace-nonfinite VALUE"
                )
            voxels = np.where(finite, voxels, voxels.dtype.type(replace_nonfinite))
    return Volume(voxels=voxels, geometry=geometry_of(image), components=image.GetNumberOfComponentsPerPixel())


def read_mask_on_grid(path: Path | str, volume: Volume) -> np.ndarray:
    """A brain mask (> 0.5) that must lie on the volume's grid (size, spacing, origin, direction)."""
    mask = read_volume(path)
    same_grid = mask.voxels.shape == volume.voxels.shape[:3] and np.allclose(
        np.r_[mask.geometry.spacing, mask.geometry.origin, mask.geometry.direction],
        np.r_[volume.geometry.spacing, volume.geometry.origin, volume.geometry.direction], atol=1e-3)
    if not same_grid:
        raise UserInputError(f"mask {path} ({'x'.join(map(str, mask.geometry.size))} voxels) is not on the grid of "
                             f"its volume ({'x'.join(map(str, volume.geometry.size))}); give the mask drawn on "
                             "that volume or resample it first")
    return mask.voxels > 0.5


def check_output_path(output: Path | str, inputs: list[Path | str]) -> Path:
    """Refuse an output that would overwrite an input or go into a missing folder."""
    output = Path(output)
    if not output.parent.resolve().is_dir():
        raise UserInputError(f"output folder {output.parent} does not exist; create it first")
    if output.is_dir():
        raise UserInputError(f"output {output} is a folder; give a file name such as {output / 'out.nii.gz'}")
    for given in inputs:
        if Path(given).exists() and output.resolve() == Path(given).resolve():
            raise UserInputError(
                f"output {output} is the input file; choose another name (the input is never modified)")
    return output


def write_volume(path: Path | str, voxels: np.ndarray, geometry: Geometry, components: int = 1) -> None:
    """Write atomically: a temporary file beside ``path`` is renamed over it when complete."""
    import SimpleITK as sitk

    path = Path(path)
    image = sitk.GetImageFromArray(voxels, isVector=components > 1)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    replace_atomically(path, lambda temporary: sitk.WriteImage(image, temporary, useCompression=True))
