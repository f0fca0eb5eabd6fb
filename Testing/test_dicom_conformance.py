"""The derived DICOM series passes the field's own validator (dciodvfy, dicom3tools) and keeps what a PACS needs.

dciodvfy runs where it is installed (``apt-get install -y dicom3tools``; CI installs it) and the
tests that need it skip, saying so, elsewhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from test_command_line import recode_patient_text, sample_crop, write_dicom_series

pydicom = pytest.importorskip("pydicom")
needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                    reason="dciodvfy not installed (apt-get install -y dicom3tools)")
ACQUISITION = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "Manufacturer": "ACME", "ProtocolName": "T2 HASTE",
               "SequenceName": "*haste2d1", "SoftwareVersions": "syngo MR E11", "ScanningSequence": "SE",
               "SequenceVariant": "SK", "ScanOptions": "PFP", "MRAcquisitionType": "2D", "EchoTime": "91",
               "RepetitionTime": "1200", "EchoTrainLength": "80", "WindowCenter": "400", "WindowWidth": "900",
               "PositionReferenceIndicator": "", "PatientPosition": "HFS", "StudyID": "1", "Laterality": ""}


def dciodvfy_errors(folder: Path) -> list[str]:
    """Every 'Error' line dciodvfy prints for the files of ``folder``."""
    errors = []
    for path in sorted(folder.iterdir()):
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors += [f"{path.name}: {line}" for line in (run.stdout + run.stderr).splitlines()
                   if line.startswith("Error")]
    return errors


def scanner_series(folder: Path, character_set: str, patient: str, institution: str) -> list:
    """A source series as a scanner writes it: acquisition and display attributes, names in ``character_set``."""
    write_dicom_series(sample_crop(9, slices=3, side=48), folder, 5, "T2 HASTE ax", pydicom.uid.generate_uid())
    recode_patient_text(folder, character_set, patient, institution)
    for path in folder.glob("*.dcm"):
        header = pydicom.dcmread(path)
        for keyword, value in ACQUISITION.items():
            setattr(header, keyword, value)
        header.save_as(path)
    return sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")), key=lambda h: int(h.InstanceNumber))


def superres_to_dicom(source: Path, derived: Path, model: Path, *extra: str) -> list:
    assert main(["superres", str(source), str(derived), "--output-format", "dicom", "--device", "cpu",
                 "--model", str(model), *extra]) == 0
    return sorted((pydicom.dcmread(p) for p in derived.iterdir()), key=lambda h: int(h.InstanceNumber))


@needs_dciodvfy
@pytest.mark.parametrize(("character_set", "patient", "institution"), [
    ("ISO_IR 192", "山田^花子", "東京大学病院"), ("ISO_IR 100", "Müller^Zoë", "Hôpital Necker")])
def test_a_series_from_dicom_has_no_dciodvfy_error_and_keeps_names_and_acquisition(
        tmp_path, mrml_tiny_model_path, character_set, patient, institution):
    sources = scanner_series(tmp_path / "source", character_set, patient, institution)
    derived = superres_to_dicom(tmp_path / "source", tmp_path / "derived", mrml_tiny_model_path)

    assert dciodvfy_errors(tmp_path / "derived") == []
    for header, source in zip(derived, sources):
        assert (str(header.PatientName), header.InstitutionName) == (patient, institution)
        assert list(header.ImageType) == ["DERIVED", "SECONDARY", "M", "ND"]
        for keyword in ("ProtocolName", "SequenceName", "SoftwareVersions", "ScanningSequence", "EchoTime",
                        "WindowCenter", "WindowWidth", "Manufacturer"):
            assert header.get(keyword) == source.get(keyword), keyword
        assert header.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert "RescaleSlope" not in header, "an integer result needs no rescale, which MR Image does not define"


@needs_dciodvfy
def test_a_series_from_nifti_fills_every_required_attribute_from_its_sidecar(tmp_path, mrml_tiny_model_path):
    nifti = tmp_path / "sub-01_T2w.nii.gz"
    sitk.WriteImage(sample_crop(9, slices=3, side=48), str(nifti))
    (tmp_path / "sub-01_T2w.json").write_text(json.dumps(
        {"Manufacturer": "ACME", "EchoTime": 0.091, "RepetitionTime": 1.2, "ScanningSequence": "SE",
         "SequenceVariant": ["SK", "SP"], "MagneticFieldStrength": 1.5, "ManufacturersModelName": "Avanto"}))
    derived = superres_to_dicom(nifti, tmp_path / "derived", mrml_tiny_model_path)

    assert dciodvfy_errors(tmp_path / "derived") == []
    header = derived[0]
    assert (header.Manufacturer, header.ManufacturerModelName, header.ScanningSequence) == ("ACME", "Avanto", "SE")
    assert list(header.SequenceVariant) == ["SK", "SP"]
    assert (float(header.EchoTime), float(header.RepetitionTime)) == (91.0, 1200.0), "BIDS seconds, DICOM ms"
    assert header.StudyDate and header.StudyInstanceUID, "a new study, dated"


@needs_dciodvfy
def test_a_float_series_from_nifti_without_sidecar_has_no_dciodvfy_error(tmp_path, mrml_tiny_model_path):
    nifti = tmp_path / "stack.nii.gz"
    sitk.WriteImage(sitk.Cast(sample_crop(9, slices=3, side=48), sitk.sitkFloat32), str(nifti))
    derived = superres_to_dicom(nifti, tmp_path / "derived", mrml_tiny_model_path)

    assert dciodvfy_errors(tmp_path / "derived") == []
    assert (derived[0].ScanningSequence, derived[0].SequenceVariant) == ("RM", "NONE"), "DICOM's 'not known'"
    assert float(derived[0].RescaleSlope) > 0 and derived[0].RescaleType == "US"
