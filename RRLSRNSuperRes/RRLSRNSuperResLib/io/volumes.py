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
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import UserInputError
from ..imaging.geometry import Geometry
from .atomic_files import replace_atomically

if TYPE_CHECKING:
    from .dicom import Series

_GZIP_CHUNK = 1 << 22


@dataclass
class Volume:
    """Voxels in numpy [k, j, i] order (original dtype; last axis components if vector)."""

    voxels: np.ndarray
    geometry: Geometry
    components: int = 1
    dicom_series: Optional[Series] = None  # the series read, when the input was a DICOM folder
    # IJK axis the file says the slices were acquired along (NIfTI dim_info; k for a DICOM
    # series, which is stacked along its slice normal), None when the file does not say.
    header_slice_axis: Optional[int] = None


def _check_gzip_complete(path: Path) -> None:
    """Decompress to the end: a truncated or corrupt gzip raises here, not later as zeros."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(_GZIP_CHUNK):
                pass
    except (EOFError, OSError, zlib.error) as error:
        raise UserInputError(f"{path} is a damaged or truncated gzip file ({error}); copy it again") from error


def _open_nifti(path: Path):
    return (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb")


def _nifti_header(stream) -> tuple[str, int, bytes] | None:
    """Byte order, header size (348: NIfTI-1, 540: NIfTI-2) and header bytes, or None if not NIfTI."""
    header = stream.read(540)
    if len(header) < 348:
        return None
    for order in "<>":
        size = int(np.frombuffer(header[:4], f"{order}i4")[0])
        if size in (348, 540) and len(header) >= size:
            return order, size, header
    return None


def nifti_slice_axis(path: Path) -> int | None:
    """IJK slice axis a NIfTI file declares in ``dim_info`` (slice_dim), or None when unset.

    Scanner converters such as dcm2niix write it; it names the axis the 2D slices were
    acquired along, which spacing alone cannot always tell.
    """
    with _open_nifti(path) as stream:
        parsed = _nifti_header(stream)
    if parsed is None:
        return None
    _, size, header = parsed
    slice_dim = (header[39 if size == 348 else 524] >> 4) & 3
    return slice_dim - 1 if slice_dim else None


def nifti_nonfinite_mask(path: Path) -> np.ndarray | None:
    """Where a float NIfTI file stores NaN/Inf ([k, j, i] for 3D), or None if it cannot.

    SimpleITK's NIfTI reader turns NaN into 0 without a word, so the raw voxels are checked
    here (NIfTI-1 and -2, either byte order, float32/float64 only).
    """
    with _open_nifti(path) as stream:
        parsed = _nifti_header(stream)
        if parsed is None:
            return None
        order, size, header = parsed
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


def _read_image(path: Path, series: str | None = None):
    """The image at ``path``: a file, or one DICOM series of a folder (``series`` picks it when several)."""
    import SimpleITK as sitk

    from .dicom import choose_series, read_series, refuse_one_file_of_a_series

    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's warnings are no message for a user; errors are
    if not path.exists():
        raise UserInputError(f"input {path} does not exist")
    if path.is_dir():
        chosen = choose_series(path, series)
        return read_series(chosen), chosen
    if series is not None:
        raise UserInputError(f"--series picks a series of a DICOM folder; {path} is a file",
                             in_slicer=f"a series is chosen in a DICOM folder; {path} is a file")
    if path.stat().st_size == 0:
        raise UserInputError(f"input {path} is an empty file")
    if path.name.lower().endswith(".gz"):
        _check_gzip_complete(path)
    refuse_one_file_of_a_series(path)
    try:
        return sitk.ReadImage(str(path)), None
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


def read_volume(path: Path | str, replace_nonfinite: float | None = None, series: str | None = None) -> Volume:
    """Read a 2D or 3D scalar or vector image; 2D becomes a single-slice 3D volume.

    NaN/Inf voxels are an error unless ``replace_nonfinite`` gives a value to put there. A
    DICOM folder with several series needs ``series`` (UID, number or description).
    """
    import SimpleITK as sitk

    path = Path(path)
    image, dicom_series = _read_image(path, series)
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
                count = int((~finite).sum())
                raise UserInputError(
                    f"{path} has {count} NaN/Inf voxels; fix the file or pass --replace-nonfinite VALUE",
                    in_slicer=f"a volume has {count} NaN/Inf voxels; replace them by a number first (e.g. with the "
                              "Simple Filters module)")
            voxels = np.where(finite, voxels, voxels.dtype.type(replace_nonfinite))
    if dicom_series is not None:
        header_axis = 2
    else:
        header_axis = nifti_slice_axis(path) if ".nii" in path.name.lower() and dimension == 3 else None
    return Volume(voxels=voxels, geometry=geometry_of(image), components=image.GetNumberOfComponentsPerPixel(),
                  dicom_series=dicom_series, header_slice_axis=header_axis)


GRID_TOLERANCE = 1e-3  # mm for spacing and origin, and for the direction cosines


def grid_differences(mask: Geometry, volume: Geometry) -> list[str]:
    """What differs between two grids, with the amounts: size, spacing (mm), origin (mm), direction."""
    differences = []
    if tuple(mask.size) != tuple(volume.size):
        differences.append(f"size {'x'.join(map(str, mask.size))} vs {'x'.join(map(str, volume.size))} voxels")
    spacing = np.abs(np.subtract(mask.spacing, volume.spacing)).max()
    if spacing > GRID_TOLERANCE:
        differences.append(f"spacing differs by up to {spacing:.4g} mm "
                           f"({' x '.join(f'{s:.4g}' for s in mask.spacing)} vs "
                           f"{' x '.join(f'{s:.4g}' for s in volume.spacing)})")
    origin = float(np.linalg.norm(np.subtract(mask.origin, volume.origin)))
    if origin > GRID_TOLERANCE:
        differences.append(f"origin is {origin:.4g} mm away")
    cosines = np.clip(np.sum(np.reshape(mask.direction, (3, 3)) * np.reshape(volume.direction, (3, 3)), axis=0),
                      -1.0, 1.0)
    if np.abs(np.subtract(mask.direction, volume.direction)).max() > GRID_TOLERANCE:
        differences.append(f"axes are rotated by up to {np.degrees(np.arccos(cosines.min())):.3g} degrees")
    return differences


def read_mask_on_grid(path: Path | str, volume: Volume) -> np.ndarray:
    """A brain mask (> 0.5) that must lie on the volume's grid (size, spacing, origin, direction)."""
    mask = read_volume(path)
    differences = grid_differences(mask.geometry, volume.geometry)
    if differences:
        raise UserInputError(f"mask {path} is not on the grid of its volume: {'; '.join(differences)}; give the "
                             "mask drawn on that volume or resample it first")
    return mask.voxels > 0.5


def write_volume(path: Path | str, voxels: np.ndarray, geometry: Geometry, components: int = 1) -> None:
    """Write atomically: a temporary file beside ``path`` is renamed over it when complete."""
    import SimpleITK as sitk

    path = Path(path)
    image = sitk.GetImageFromArray(voxels, isVector=components > 1)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    replace_atomically(path, lambda temporary: sitk.WriteImage(image, temporary, useCompression=True))
