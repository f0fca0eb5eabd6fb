"""DICOM in: one series of a folder, chosen, never merged or guessed (writing: ``dicom_derived``).

Reading uses SimpleITK's GDCM; writing uses pydicom (the ``dicom`` extra), so the tags come
from a maintained dictionary, not from hand-written tables. Geometry is DICOM's patient
frame, which is SimpleITK's LPS: ImagePositionPatient is each slice's first voxel centre,
ImageOrientationPatient the I and J axes, PixelSpacing (row spacing along J, column spacing
along I).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import UserInputError


@dataclass(frozen=True)
class Series:
    """One DICOM series of a folder."""

    uid: str
    number: str
    description: str
    files: tuple[str, ...]
    rows: str
    columns: str

    def line(self) -> str:
        return (f"  {self.number or '?':>5}  {self.description or '(no description)':<32} {len(self.files):4d} files"
                f"  {self.columns}x{self.rows}  {self.uid}")


def require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError as missing:
        raise UserInputError("DICOM output needs pydicom: pip install 'rrlsrn-superres[dicom]'") from missing
    return pydicom


def _header(path: str) -> Any:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return reader


def _tag(reader: Any, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def list_series(folder: Path) -> list[Series]:
    """Every series GDCM finds in ``folder``, sorted by series number."""
    import SimpleITK as sitk

    found = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        header = _header(files[0])
        found.append(Series(uid, _tag(header, "0020|0011"), _tag(header, "0008|103e"), files,
                            _tag(header, "0028|0010"), _tag(header, "0028|0011")))
    return sorted(found, key=lambda series: (len(series.number), series.number, series.uid))


def choose_series(folder: Path, wanted: Optional[str]) -> Series:
    """The folder's only series, or the one ``wanted`` names (UID, number or description); else a listing."""
    series = list_series(folder)
    if not series:
        raise UserInputError(f"folder {folder} holds no DICOM series")
    if wanted is None and len(series) == 1:
        return series[0]
    listing = "\n".join(item.line() for item in series)
    if wanted is None:
        raise UserInputError(f"folder {folder} holds {len(series)} DICOM series; choose one with --series "
                             f"UID|NUMBER|DESCRIPTION:\n  number  description{' ' * 22}slices  size  UID\n{listing}",
                             in_slicer=f"folder {folder} holds {len(series)} DICOM series; load the one to use "
                                       "with the DICOM module")
    matches = [item for item in series if wanted in (item.uid, item.number)
               or wanted.casefold() == item.description.casefold()]
    if len(matches) != 1:
        problem = "matches none" if not matches else f"matches {len(matches)}"
        raise UserInputError(f"--series {wanted!r} {problem} of the series in {folder}:\n{listing}",
                             in_slicer=f"the series {wanted!r} {problem} of the series in {folder}")
    return matches[0]


def refuse_one_file_of_a_series(path: Path) -> None:
    """A single file of a multi-file series would read as a one-slice volume: refuse, naming the series."""
    import SimpleITK as sitk

    try:
        header = _header(str(path))
    except RuntimeError:
        return
    uid = _tag(header, "0020|000e")  # only DICOM files carry a SeriesInstanceUID
    if not uid:
        return
    siblings = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path.parent), uid)
    if len(siblings) > 1:
        raise UserInputError(f"{path} is one file of DICOM series {uid} ({len(siblings)} files in {path.parent}); "
                             f"give the folder instead: {path.parent} (with --series {uid} if it holds several)",
                             in_slicer=f"{path} is one file of DICOM series {uid}; load the series with the DICOM "
                                       "module")


def read_series(series: Series) -> Any:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    return reader.Execute()
