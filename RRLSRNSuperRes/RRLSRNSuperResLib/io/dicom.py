"""DICOM in (one series, chosen, never merged or guessed) and out (a derived MR series on the x2 grid).

Reading uses SimpleITK's GDCM; writing uses pydicom (the ``dicom`` extra), so the tags come
from a maintained dictionary, not from hand-written tables. Geometry is DICOM's patient
frame, which is SimpleITK's LPS: ImagePositionPatient is each slice's first voxel centre,
ImageOrientationPatient the I and J axes, PixelSpacing (row spacing along J, column spacing
along I).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import UserInputError
from ..imaging.geometry import Geometry

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SERIES_NUMBER_OFFSET = 1000  # the derived series is numbered <source number> + 1000
# Patient, study and frame-of-reference identity, and the acquisition, kept from the source series.
# SpecificCharacterSet comes first: pydicom encodes every text value on writing with the dataset's
# character set, so without it a UTF-8 (ISO_IR 192) or Latin-1 (ISO_IR 100) patient name is
# written as '?' or as bytes the header does not declare, and a PACS may file it under another patient.
KEPT_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
    "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
    "ReferringPhysicianName", "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer",
    "InstitutionName", "MagneticFieldStrength", "ScanningSequence", "SequenceVariant", "ScanOptions",
    "MRAcquisitionType", "EchoTime", "RepetitionTime", "EchoTrainLength", "FlipAngle", "BodyPartExamined",
    "PatientPosition",
)


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
                             f"UID|NUMBER|DESCRIPTION:\n  number  description{' ' * 22}slices  size  UID\n{listing}")
    matches = [item for item in series if wanted in (item.uid, item.number)
               or wanted.casefold() == item.description.casefold()]
    if len(matches) != 1:
        problem = "matches none" if not matches else f"matches {len(matches)}"
        raise UserInputError(f"--series {wanted!r} {problem} of the series in {folder}:\n{listing}")
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
                             f"give the folder instead: {path.parent} (with --series {uid} if it holds several)")


def read_series(series: Series) -> Any:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    return reader.Execute()


def _encode(voxels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored 16-bit values with RescaleSlope and Intercept; integers within 16 bits are stored exactly.

    Float values are mapped linearly onto the full uint16 range, so the error is at most half a
    step: (max - min) / 131070.
    """
    if np.issubdtype(voxels.dtype, np.integer):
        low, high = int(voxels.min()), int(voxels.max())
        if low >= 0 and high <= 65535:
            return voxels.astype(np.uint16), 1.0, 0.0
        if low >= -32768 and high <= 32767:
            return voxels.astype(np.int16), 1.0, 0.0
    low, high = float(voxels.min()), float(voxels.max())
    slope = (high - low) / 65535.0 if high > low else 1.0
    stored = np.clip(np.rint((voxels.astype(np.float64) - low) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, low


def source_dataset(series: Optional[Series]) -> Any:
    """The source series' first header (no pixels), or None for a non-DICOM input."""
    if series is None:
        return None
    return require_pydicom().dcmread(series.files[0], stop_before_pixels=True)


def write_derived_series(folder: Path, voxels_kji: np.ndarray, geometry: Geometry, source: Any,
                         derivation: str) -> int:
    """Write the x2 volume as a derived MR series (one file a slice) into a new folder; returns the slice count.

    Patient, study and frame of reference come from ``source`` (new ones when the input was
    not DICOM); the series and every instance get new UIDs; ImageType is DERIVED\\SECONDARY.
    The folder appears only when complete (written beside it, then renamed).
    """
    pydicom = require_pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored, slope, intercept = _encode(np.asarray(voxels_kji))
    series_uid = generate_uid()
    now = datetime.datetime.now()
    direction = np.reshape(geometry.direction, (3, 3))
    source_number = int(getattr(source, "SeriesNumber", 0) or 0)
    description = f"{getattr(source, 'SeriesDescription', '') or 'MR'} RRLSRN x2"[:64]
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for k in range(stored.shape[0]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            dataset = pydicom.Dataset()
            dataset.file_meta = meta
            for keyword in KEPT_KEYWORDS:
                if source is not None and keyword in source:
                    setattr(dataset, keyword, getattr(source, keyword))
            if "StudyInstanceUID" not in dataset:
                dataset.StudyInstanceUID = generate_uid()
            if "FrameOfReferenceUID" not in dataset:
                dataset.FrameOfReferenceUID = generate_uid()
            for keyword in ("PatientName", "PatientID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                            "StudyID", "AccessionNumber", "PatientBirthDate", "PatientSex",
                            "ScanningSequence", "SequenceVariant", "MRAcquisitionType", "EchoTime",
                            "RepetitionTime", "PositionReferenceIndicator", "PatientPosition"):
                if keyword not in dataset:
                    setattr(dataset, keyword, "")
            dataset.SOPClassUID = MR_IMAGE_STORAGE
            dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            dataset.SeriesInstanceUID = series_uid
            dataset.Modality = "MR"
            dataset.ImageType = ["DERIVED", "SECONDARY"]
            dataset.DerivationDescription = derivation[:1024]
            dataset.SeriesNumber = source_number + SERIES_NUMBER_OFFSET
            dataset.SeriesDescription = description
            dataset.SeriesDate = dataset.ContentDate = now.strftime("%Y%m%d")
            dataset.SeriesTime = dataset.ContentTime = now.strftime("%H%M%S")
            dataset.InstanceNumber = k + 1
            position = np.asarray(geometry.origin) + direction[:, 2] * geometry.spacing[2] * k
            dataset.ImagePositionPatient = [f"{value:.6f}" for value in position]
            dataset.ImageOrientationPatient = [f"{value:.8f}" for value in (*direction[:, 0], *direction[:, 1])]
            dataset.PixelSpacing = [f"{geometry.spacing[1]:.8g}", f"{geometry.spacing[0]:.8g}"]
            dataset.SliceThickness = getattr(source, "SliceThickness", None) or f"{geometry.spacing[2]:.8g}"
            dataset.SpacingBetweenSlices = f"{geometry.spacing[2]:.8g}"
            dataset.Rows, dataset.Columns = stored.shape[1], stored.shape[2]
            dataset.SamplesPerPixel = 1
            dataset.PhotometricInterpretation = "MONOCHROME2"
            dataset.BitsAllocated = dataset.BitsStored = 16
            dataset.HighBit = 15
            dataset.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
            dataset.RescaleSlope = f"{slope:.10g}"
            dataset.RescaleIntercept = f"{intercept:.10g}"
            dataset.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            dataset.save_as(staging / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
        if folder.exists():
            folder.rmdir()  # checked empty before the work started
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return int(stored.shape[0])
