"""The x2 volume as a derived MR Image series that a PACS files with its source (pydicom, the ``dicom`` extra).

The series is a classic MR Image Storage series (one file a slice), the IOD every viewer and
PACS reads, checked with dciodvfy (dicom3tools) in the tests:
- patient, study, frame of reference, the acquisition and display attributes come from the
  source series (with its SpecificCharacterSet, so names outside ASCII survive); from a NIfTI,
  from its JSON sidecar where it has one, else the values DICOM allows for unknown data;
- ImageType DERIVED\\SECONDARY plus the source's third value (else OTHER), and every slice
  points to the source slice it was made from (Source Image Sequence);
- integer results are stored as they are; a float result is mapped onto uint16 with Rescale
  Slope/Intercept. The MR Image IOD does not define those two (dciodvfy: a Standard Extended
  SOP Class, a warning), and the alternative, Enhanced MR, is read by far fewer viewers: the
  rescale is the deliberate choice, and ``--output-type auto`` keeps an integer input's type.
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

from ..imaging.geometry import Geometry
from .dicom import Series, require_pydicom

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SERIES_NUMBER_OFFSET = 1000  # the derived series is numbered <source number> + 1000
# Kept from the source series: character set first (pydicom encodes every text value with it on
# writing; without it a UTF-8 name is written as '??' and a PACS may file it under another
# patient), then identity, equipment, acquisition and display.
KEPT_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime", "StudyDescription",
    "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID", "PositionReferenceIndicator",
    "Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "StationName",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "OperatorsName",
    "PerformingPhysicianName", "ProtocolName", "SequenceName", "MagneticFieldStrength", "ImagingFrequency",
    "ImagedNucleus", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "EchoTime",
    "RepetitionTime", "InversionTime", "EchoTrainLength", "FlipAngle", "NumberOfAverages", "PixelBandwidth",
    "PercentSampling", "PercentPhaseFieldOfView", "AcquisitionMatrix", "InPlanePhaseEncodingDirection",
    "ReceiveCoilName", "TransmitCoilName", "SliceThickness", "BodyPartExamined", "PatientPosition", "Laterality",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
)
# Type 1 attributes of the MR Image module with the values DICOM defines for "not known":
# RM (research mode) is the scanning sequence of data whose sequence is not recorded.
UNKNOWN_TYPE1 = {"ScanningSequence": "RM", "SequenceVariant": "NONE"}
# Type 2 (and 2C) attributes that must be present, empty when unknown.
REQUIRED_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "PositionReferenceIndicator", "Manufacturer",
    "ScanOptions", "MRAcquisitionType", "EchoTime", "RepetitionTime", "EchoTrainLength", "PatientPosition",
    "Laterality",
)
# BIDS / dcm2niix sidecar keys that are DICOM attributes with the same meaning; times in s in BIDS, ms in DICOM.
SIDECAR_TEXT = ("Manufacturer", "DeviceSerialNumber", "SoftwareVersions", "InstitutionName", "ProtocolName",
                "SequenceName", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
                "SeriesDescription", "BodyPartExamined", "ImagedNucleus")
SIDECAR_NUMBERS = {"MagneticFieldStrength": 1.0, "FlipAngle": 1.0, "EchoTrainLength": 1.0, "PixelBandwidth": 1.0,
                   "ImagingFrequency": 1.0, "EchoTime": 1000.0, "RepetitionTime": 1000.0, "InversionTime": 1000.0}
SIDECAR_RENAMED = {"ManufacturersModelName": "ManufacturerModelName"}


@dataclass(frozen=True)
class DerivedSource:
    """What the derived series keeps of its source: the first header (no pixels) and every slice's
    SOP class and instance UID in the volume's slice order; or, for a NIfTI, its sidecar's attributes."""

    header: Any = None
    instances: tuple[tuple[str, str], ...] = ()
    sidecar: Optional[dict] = None


def derived_source(series: Optional[Series], sidecar: Optional[dict] = None) -> DerivedSource:
    """The source of a DICOM input (headers read without pixels), or of a non-DICOM one with its sidecar."""
    if series is None:
        return DerivedSource(sidecar=sidecar)
    pydicom = require_pydicom()
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in series.files]
    return DerivedSource(headers[0], tuple((str(h.SOPClassUID), str(h.SOPInstanceUID)) for h in headers))


def sidecar_attributes(sidecar: Optional[dict]) -> dict[str, Any]:
    """DICOM attributes a BIDS/dcm2niix JSON sidecar records (unit-converted), for a NIfTI input."""
    attributes: dict[str, Any] = {}
    for key, value in (sidecar or {}).items():
        keyword = SIDECAR_RENAMED.get(key, key)
        if key in SIDECAR_TEXT or key in SIDECAR_RENAMED:
            attributes[keyword] = "\\".join(map(str, value)) if isinstance(value, list) else str(value)
        elif key in SIDECAR_NUMBERS and isinstance(value, (int, float)):
            attributes[keyword] = f"{value * SIDECAR_NUMBERS[key]:.6g}"
    return attributes


def encode_pixels(voxels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored 16-bit values with slope and intercept; integers within 16 bits are stored exactly.

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


def _series_attributes(source: DerivedSource, derivation: str) -> Any:
    """Everything the slices share: identity, acquisition and display kept, series identity new."""
    pydicom = require_pydicom()
    from pydicom.uid import generate_uid

    dataset = pydicom.Dataset()
    header = source.header
    for keyword in KEPT_KEYWORDS:
        if header is not None and keyword in header:
            setattr(dataset, keyword, getattr(header, keyword))
    for keyword, value in sidecar_attributes(source.sidecar).items():
        setattr(dataset, keyword, value)
    for keyword, value in UNKNOWN_TYPE1.items():
        if not dataset.get(keyword):
            setattr(dataset, keyword, value)
    for keyword in REQUIRED_TYPE2:
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    now = datetime.datetime.now()
    if not dataset.get("StudyInstanceUID"):  # a non-DICOM input: a new study, made now
        dataset.StudyInstanceUID = generate_uid()
        dataset.StudyDate, dataset.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if not dataset.get("FrameOfReferenceUID"):
        dataset.FrameOfReferenceUID = generate_uid()
    source_type = list(getattr(header, "ImageType", []) or [])
    dataset.SOPClassUID = MR_IMAGE_STORAGE
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "MR"
    dataset.ImageType = ["DERIVED", "SECONDARY", *(source_type[2:] or ["OTHER"])]
    dataset.DerivationDescription = derivation[:1024]
    dataset.SeriesNumber = int(getattr(header, "SeriesNumber", 0) or 0) + SERIES_NUMBER_OFFSET
    described = getattr(header, "SeriesDescription", "") or (source.sidecar or {}).get("SeriesDescription") or "MR"
    dataset.SeriesDescription = f"{described} RRLSRN x2"[:64]
    dataset.SeriesDate = dataset.ContentDate = now.strftime("%Y%m%d")
    dataset.SeriesTime = dataset.ContentTime = now.strftime("%H%M%S")
    return dataset


def _pixel_attributes(dataset: Any, stored: np.ndarray, slope: float, intercept: float) -> None:
    dataset.Rows, dataset.Columns = stored.shape[1], stored.shape[2]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    if (slope, intercept) != (1.0, 0.0):
        dataset.RescaleSlope = f"{slope:.10g}"
        dataset.RescaleIntercept = f"{intercept:.10g}"
        dataset.RescaleType = "US"  # unspecified units: the input's own intensity scale


def _source_reference(source: DerivedSource, index: int, count: int) -> Optional[Any]:
    """The Source Image Sequence of output slice ``index`` of ``count``: the source slice at its position
    (one to one, or two output slices per source slice when the slices themselves were upsampled)."""
    if not source.instances:
        return None
    pydicom = require_pydicom()
    sop_class, sop_instance = source.instances[index * len(source.instances) // count]
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
    return pydicom.Sequence([item])


def _slice_dataset(shared: Any, geometry: Geometry, k: int, pixels: np.ndarray) -> Any:
    """One slice: its own UIDs, position and pixels on top of the shared series attributes."""
    pydicom = require_pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dataset = pydicom.Dataset()
    dataset.update(shared)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    direction = geometry.direction_matrix
    dataset.InstanceNumber = k + 1
    position = np.asarray(geometry.origin) + direction[:, 2] * geometry.spacing[2] * k
    dataset.ImagePositionPatient = [f"{value:.6f}" for value in position]
    dataset.ImageOrientationPatient = [f"{value:.8f}" for value in (*direction[:, 0], *direction[:, 1])]
    dataset.PixelSpacing = [f"{geometry.spacing[1]:.8g}", f"{geometry.spacing[0]:.8g}"]
    dataset.SliceThickness = shared.get("SliceThickness") or f"{geometry.spacing[2]:.8g}"
    dataset.SpacingBetweenSlices = f"{geometry.spacing[2]:.8g}"
    dataset.PixelData = np.ascontiguousarray(pixels).tobytes()
    return dataset


def _save_as_dicom_file(dataset: Any, path: Path) -> None:
    """Write a conformant file (preamble, file meta): pydicom 3 calls it ``enforce_file_format``, pydicom 2
    (Python 3.9, as in Slicer 5.8) ``write_like_original=False``."""
    if int(require_pydicom().__version__.split(".")[0]) >= 3:
        dataset.save_as(path, enforce_file_format=True)
    else:
        dataset.save_as(path, write_like_original=False)


def write_derived_series(folder: Path, voxels_kji: np.ndarray, geometry: Geometry, source: DerivedSource,
                         derivation: str) -> int:
    """Write the volume as a derived MR series (one file a slice) into a new folder; returns the slice count.

    The folder appears only when complete (written beside it, then renamed).
    """
    stored, slope, intercept = encode_pixels(np.asarray(voxels_kji))
    shared = _series_attributes(source, derivation)
    _pixel_attributes(shared, stored, slope, intercept)
    count = stored.shape[0]
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for k in range(count):
            dataset = _slice_dataset(shared, geometry, k, stored[k])
            reference = _source_reference(source, k, count)
            if reference is not None:
                dataset.SourceImageSequence = reference
            _save_as_dicom_file(dataset, staging / f"IM{k + 1:05d}.dcm")
        if folder.exists():
            folder.rmdir()  # checked empty before the work started
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return int(count)
