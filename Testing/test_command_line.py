"""The command line as users meet it: DICOM in and out, outputs checked first, loud failures, small leaks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.resources import sample_mask_path, sample_volume_path
from test_superres_cli import write_image

pydicom = pytest.importorskip("pydicom")


def sample_crop(first_slice: int = 9, slices: int = 4, side: int = 64) -> sitk.Image:
    image = sitk.ReadImage(str(sample_volume_path()))
    start = [(image.GetSize()[0] - side) // 2, (image.GetSize()[1] - side) // 2, first_slice]
    return sitk.RegionOfInterest(image, [side, side, slices], start)


def write_dicom_series(image: sitk.Image, folder: Path, number: int, description: str, study_uid: str,
                       patient_id: str = "RRLSRN-TEST") -> str:
    """A DICOM MR series written by SimpleITK (GDCM), independently of the project's writer."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid, frame_uid = generate_uid(), generate_uid()
    direction = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        for tag, value in [("0008|0060", "MR"), ("0010|0010", "Test^Patient"), ("0010|0020", patient_id),
                           ("0020|000d", study_uid), ("0020|000e", series_uid), ("0020|0052", frame_uid),
                           ("0020|0011", str(number)), ("0008|103e", description),
                           ("0020|0037", "\\".join(f"{v:.8f}" for v in (*direction[0::3], *direction[1::3]))),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint(
                               (0, 0, k)))),
                           ("0020|0013", str(k + 1)), ("0008|0018", generate_uid()), ("0018|0050", "3.3")]:
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{number}_{k:03d}.dcm"))
        writer.Execute(slice_image)
    return series_uid


@pytest.fixture
def two_series(tmp_path):
    from pydicom.uid import generate_uid

    study = generate_uid()
    folder = tmp_path / "dicom"
    first = write_dicom_series(sample_crop(9), folder, 3, "T2 HASTE cor", study)
    second = write_dicom_series(sample_crop(5, slices=3, side=48), folder, 4, "T2 HASTE ax", study)
    return folder, study, first, second


def test_a_folder_with_two_series_lists_them_and_never_picks_one(two_series, tmp_path, capsys):
    folder, _, first, second = two_series
    assert main(["superres", str(folder), str(tmp_path / "out.nii.gz"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "holds 2 DICOM series" in err and "--series" in err
    assert first in err and second in err and "T2 HASTE cor" in err and "T2 HASTE ax" in err
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("choice", ["uid", "4", "t2 haste ax"])
def test_series_is_chosen_by_uid_number_or_description(two_series, tmp_path, mrml_tiny_model_path, choice):
    folder, _, _, second = two_series
    wanted = second if choice == "uid" else choice
    out = tmp_path / "out.nii.gz"
    assert main(["superres", str(folder), str(out), "--series", wanted, "--device", "cpu",
                 "--model", str(mrml_tiny_model_path)]) == 0
    assert sitk.ReadImage(str(out)).GetSize() == (96, 96, 3)


def test_one_file_of_a_series_is_refused_naming_the_folder_and_series(two_series, tmp_path, capsys):
    folder, _, first, _ = two_series
    one = sorted(folder.glob("s3_*.dcm"))[1]
    assert main(["superres", str(one), str(tmp_path / "out.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert f"one file of DICOM series {first} (4 files in {folder})" in err and "give the folder" in err


def test_dicom_output_is_a_derived_series_on_the_exact_x2_grid(two_series, tmp_path, mrml_tiny_model_path, capsys):
    folder, study, _, second = two_series
    nifti, dicom = tmp_path / "out.nii.gz", tmp_path / "derived"
    common = ["--series", second, "--device", "cpu", "--model", str(mrml_tiny_model_path)]
    assert main(["superres", str(folder), str(nifti), *common]) == 0
    assert main(["superres", str(folder), str(dicom), "--output-format", "dicom", *common]) == 0
    assert "DICOM series of 3 slices" in capsys.readouterr().out

    reference = sitk.ReadImage(str(nifti))
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom))
    back = sitk.ReadImage(files)
    assert back.GetSize() == reference.GetSize() == (96, 96, 3)
    np.testing.assert_allclose(back.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(reference)), \
        "the uint16 result is stored exactly"

    source = pydicom.dcmread(sorted(folder.glob("s4_*.dcm"))[0])
    headers = [pydicom.dcmread(path) for path in files]
    assert len({h.SeriesInstanceUID for h in headers}) == 1 and headers[0].SeriesInstanceUID != second
    assert len({h.SOPInstanceUID for h in headers}) == 3
    for header in headers:
        assert header.StudyInstanceUID == study and header.PatientID == source.PatientID
        assert header.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert list(header.ImageType) == ["DERIVED", "SECONDARY", "OTHER"] and header.Modality == "MR"
        assert header.SeriesNumber == 1004 and header.SeriesDescription == "T2 HASTE ax RRLSRN x2"
        assert header.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert [float(v) for v in headers[0].PixelSpacing] == pytest.approx(list(reference.GetSpacing()[:2]))


def recode_patient_text(folder: Path, character_set: str, patient: str, institution: str) -> None:
    """Rewrite a series' names in ``character_set`` (pydicom encodes them as the header declares)."""
    for path in folder.glob("*.dcm"):
        header = pydicom.dcmread(path)
        header.SpecificCharacterSet = character_set
        header.PatientName, header.InstitutionName = patient, institution
        header.save_as(path)


@pytest.mark.parametrize(("character_set", "codec", "patient", "institution"), [
    ("ISO_IR 192", "utf-8", "山田^花子", "東京大学病院"),
    ("ISO_IR 100", "latin-1", "Müller^Zoë", "Hôpital Necker-Enfants malades"),
])
def test_names_outside_ascii_survive_the_derived_series(two_series, tmp_path, mrml_tiny_model_path,
                                                        character_set, codec, patient, institution):
    folder, _, _, second = two_series
    recode_patient_text(folder, character_set, patient, institution)
    derived = tmp_path / "derived"
    assert main(["superres", str(folder), str(derived), "--output-format", "dicom", "--series", second,
                 "--device", "cpu", "--model", str(mrml_tiny_model_path)]) == 0
    for path in sorted(derived.iterdir()):
        header = pydicom.dcmread(path)
        assert header.SpecificCharacterSet == character_set
        assert str(header.PatientName) == patient and header.InstitutionName == institution
        assert patient.encode(codec) in path.read_bytes(), "stored in the declared repertoire, not as '?'"


def test_float_results_go_to_dicom_within_half_a_quantisation_step(tmp_path, mrml_tiny_model_path):
    voxels = np.random.default_rng(3).normal(100.0, 30.0, (3, 16, 20)).astype(np.float32)
    source = write_image(tmp_path / "float.nii.gz", voxels, (1.0, 1.2, 3.0))
    nifti, dicom = tmp_path / "out.nii.gz", tmp_path / "derived"
    common = ["--device", "cpu", "--model", str(mrml_tiny_model_path)]
    assert main(["superres", str(source), str(nifti), *common]) == 0
    assert main(["superres", str(source), str(dicom), "--output-format", "dicom", *common]) == 0
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti)))
    back = sitk.GetArrayFromImage(sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom))))
    step = (expected.max() - expected.min()) / 65535
    assert np.abs(back - expected).max() <= 0.5 * step * 1.01
    header = pydicom.dcmread(sorted(dicom.iterdir())[0])
    assert header.PatientName == "" and header.StudyInstanceUID  # a new study for a non-DICOM input


@pytest.mark.parametrize(("output", "extra", "message"), [
    ("out.xyz", [], "cannot tell the format"),
    ("noextension", [], "cannot tell the format"),
    ("out.dcm", [], "cannot tell the format"),
    ("out.nrrd", ["--output-format", "nifti"], "does not end in .nii.gz or .nii"),
    ("out.nii.gz", ["--output-format", "dicom"], "writes a folder"),
])
def test_an_unwritable_output_is_refused_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, output, extra,
                                                                     message):
    import RRLSRNSuperResLib.pipeline.stack as stack

    monkeypatch.setattr(stack, "superresolve_acquired", lambda *a, **k: pytest.fail("the work started"))
    source = write_image(tmp_path / "in.nii.gz", np.ones((2, 8, 8), np.float32), (1, 1, 3))
    assert main(["superres", str(source), str(tmp_path / output), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_folder_we_may_not_write_into_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Root may write anywhere, so the refusal of the operating system is simulated."""
    import RRLSRNSuperResLib.io.formats as formats

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    source = write_image(tmp_path / "in.nii.gz", np.ones((2, 8, 8), np.float32), (1, 1, 3))
    monkeypatch.setattr(formats.Path, "touch", refuse)
    assert main(["superres", str(source), str(tmp_path / "out.nii.gz")]) == 2
    assert "cannot write into" in capsys.readouterr().err


def test_auto_output_type_keeps_integer_types_and_the_wrote_lines_name_every_file(tmp_path, capsys):
    out, mask_out = tmp_path / "out.nii.gz", tmp_path / "mask_x2.nii.gz"
    assert main(["superres", str(sample_volume_path()), str(out), "--device", "cpu", "--mask",
                 str(sample_mask_path()), "--mask-output", str(mask_out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (uint16)" in printed and f"wrote {mask_out} (uint8 brain mask on the x2 grid)" in printed
    assert sitk.ReadImage(str(out)).GetPixelID() == sitk.sitkUInt16
    assert main(["superres", str(sample_volume_path()), str(tmp_path / "f.nii.gz"), "--device", "cpu",
                 "--mask", str(sample_mask_path()), "--output-type", "float32"]) == 0
    as_float = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "f.nii.gz")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))),
                                  np.clip(np.rint(as_float), 0, 65535).astype(np.uint16))


def test_auto_output_type_keeps_integers_unless_the_top_of_the_type_would_clip():
    from RRLSRNSuperResLib.pipeline.stack import output_voxels

    undershoot = np.array([-3.6, 0.4, 254.6], np.float32)  # a dark background's undershoot is clipped
    kept, notes = output_voxels(undershoot, np.dtype(np.uint8), "auto")
    assert kept.dtype == np.uint8 and kept.tolist() == [0, 0, 255] and notes == []
    overshoot = np.array([0.0, 120.0, 256.0], np.float32)  # a bright overshoot would be lost signal
    kept, notes = output_voxels(overshoot, np.dtype(np.uint8), "auto")
    assert kept.dtype == np.float32 and "kept float32" in notes[0]
    assert output_voxels(overshoot, np.dtype(np.uint8), "input")[0].tolist() == [0, 120, 255]
    signed = np.array([-40000.0, 3.0], np.float32)  # below a signed type's range: float32
    assert output_voxels(signed, np.dtype(np.int16), "auto")[0].dtype == np.float32
    assert output_voxels(undershoot, np.dtype(np.float32), "auto")[0] is undershoot
    assert output_voxels(undershoot, np.dtype(np.uint16), "float32")[0] is undershoot


def test_mask_grid_errors_say_what_differs_and_by_how_much(tmp_path, capsys):
    voxels = np.ones((3, 10, 10), np.float32)
    source = write_image(tmp_path / "in.nii.gz", voxels, (1, 1, 3))
    shifted = write_image(tmp_path / "shifted.nii.gz", voxels, (1, 1, 3), origin=(0.0, 2.0, 0.0))
    rotated = write_image(tmp_path / "rotated.nii.gz", voxels, (1.5, 1, 3),
                          direction=np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]))
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--mask", str(shifted)]) == 2
    assert "origin is 2 mm away" in capsys.readouterr().err
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--mask", str(rotated)]) == 2
    err = capsys.readouterr().err
    assert "spacing differs by up to 0.5 mm" in err and "rotated by up to 90 degrees" in err


def test_superres_refuses_an_empty_mask_and_warns_on_a_small_one(tmp_path, capsys, mrml_tiny_model_path):
    voxels = np.ones((3, 10, 10), np.float32)
    source = write_image(tmp_path / "in.nii.gz", voxels, (1, 1, 3))
    empty = write_image(tmp_path / "empty.nii.gz", np.zeros_like(voxels), (1, 1, 3))
    small = np.zeros_like(voxels)
    small[1, 4:6, 4:6] = 1
    small_path = write_image(tmp_path / "small.nii.gz", small, (1, 1, 3))
    common = ["--device", "cpu", "--model", str(mrml_tiny_model_path)]
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--mask", str(empty), *common]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--mask", str(small_path), *common]) == 0
    assert "warning: mask" in capsys.readouterr().err


def test_mask_without_a_fetal_brain_fails_or_warns_loudly(tmp_path, capsys):
    """A big bright ball (an adult-sized head, 1.8 L) in noise: no fetal brain."""
    k, j, i = np.meshgrid(np.arange(40), np.arange(128), np.arange(128), indexing="ij")
    ball = ((i - 64) * 1.2) ** 2 + ((j - 64) * 1.2) ** 2 + ((k - 20) * 3.0) ** 2 < 75.0**2
    voxels = (ball * 600 + np.random.default_rng(1).normal(50, 10, ball.shape)).astype(np.float32)
    source = write_image(tmp_path / "adult.nii.gz", voxels, (1.2, 1.2, 3.0))
    status = main(["mask", str(source), str(tmp_path / "mask.nii.gz")])
    err = capsys.readouterr().err
    assert status == 2 and "error:" in err or status == 0 and "warning:" in err, (status, err)


def test_seed_outside_the_volume_is_reported_in_plain_numbers(capsys):
    assert main(["mask", str(sample_volume_path()), "/tmp/never.nii.gz", "--seed=900,0,0"]) == 2
    err = capsys.readouterr().err
    assert "np.float64" not in err and "seed (IJK " in err


def test_help_is_fast_imports_no_torch_and_version_exists():
    code = ("import sys\nfrom RRLSRNSuperResLib.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip().splitlines()[-1] == "False False"
    version = subprocess.run([sys.executable, "-m", "RRLSRNSuperResLib.cli.main", "--version"],
                             capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("rrlsrn ")


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.2])
def test_ctrl_c_at_start_up_gives_one_line_and_ends_by_sigint(tmp_path, delay):
    """Whether it lands in the imports, in torch's or in the reading: one line, then death by SIGINT
    (returncode -2 here; a shell reports it as status 130 and stops its loop)."""
    noise = np.random.default_rng(0).random((12, 256, 256)).astype(np.float32)  # seconds of work: never done first
    source = write_image(tmp_path / "in.nii.gz", noise, (1, 1, 3))
    process = subprocess.Popen([sys.executable, "-m", "RRLSRNSuperResLib.cli.main", "superres", str(source),
                                str(tmp_path / "out.nii.gz")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT, err
    assert err.strip().splitlines() == [
        "error: interrupted; no partially written file was left (finished outputs are kept)"]
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("inherited", [
    signal.default_int_handler,  # imports: end at once; the command: raise it again, so writes clean up
    signal.SIG_IGN,  # started with Ctrl-C ignored (a background job): it stays ignored throughout
])
def test_the_programs_ctrl_c_handler_during_imports_gives_way_when_the_command_starts(monkeypatch, inherited):
    from RRLSRNSuperResLib.cli import main as program
    from RRLSRNSuperResLib.cli import superres

    seen, build_parser = [], program.build_parser
    monkeypatch.setattr(superres, "run", lambda args: seen.append(signal.getsignal(signal.SIGINT)) or 0)
    monkeypatch.setattr(sys, "argv", ["rrlsrn", "superres", "a.nii.gz", "b.nii.gz"])
    monkeypatch.setattr(program, "build_parser", lambda selected: (
        seen.append(signal.getsignal(signal.SIGINT)), build_parser(selected))[1])
    previous = signal.signal(signal.SIGINT, inherited)
    try:
        with pytest.raises(SystemExit) as ended:
            program.entry_point()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ended.value.code == 0
    expected_at_import = program._end_at_once_on_ctrl_c if inherited is signal.default_int_handler else inherited
    assert seen == [expected_at_import, inherited]


@pytest.mark.parametrize("words, reason", [
    (["reconstruct", "a.nii.gz", "b.nii.gz", "--output", "o.nii.gz", "--scale", "4"], "--scale does not apply here: "
     "each stack is super-resolved x2 in-plane, as the reconstruction expects"),
    (["evaluate", "hr.nii.gz", "--acquisition=as-is"], "--acquisition does not apply here: the simulated LR"),
    (["demo", "--batch", "8"], "--batch does not apply here: the demo runs the defaults"),
])
def test_an_engine_option_a_command_does_not_apply_is_refused_with_the_reason(words, reason, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(words)
    assert stopped.value.code == 2
    assert reason in capsys.readouterr().err


def test_options_a_command_does_not_apply_are_hidden_and_left_out_of_its_engine_options(capsys):
    from RRLSRNSuperResLib.cli.engine_options import engine_options_from_args
    from RRLSRNSuperResLib.cli.main import build_parser

    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    shown = capsys.readouterr().out
    assert "[--adapt SECONDS]" in shown and "[--scale" not in shown
    args = build_parser("reconstruct").parse_args(["reconstruct", "a.nii.gz", "b.nii.gz", "--output", "o.nii.gz"])
    assert not hasattr(args, "scale") and engine_options_from_args(args).scale == 2


def test_an_empty_dicom_folder_is_one_error_line_without_itk_warnings(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "-m", "RRLSRNSuperResLib.cli.main", "superres", str(tmp_path / "empty"),
                             str(tmp_path / "out.nii.gz")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: folder {tmp_path / 'empty'} holds no DICOM series"]


def test_evaluate_takes_a_mask_before_its_volume(tmp_path, mrml_tiny_model_path):
    image = sample_crop(8, slices=3, side=64)
    hr = tmp_path / "hr.nii.gz"
    sitk.WriteImage(image, str(hr))
    mask = tmp_path / "mask.nii.gz"
    reference = sitk.ReadImage(str(sample_mask_path()))
    sitk.WriteImage(sitk.RegionOfInterest(reference, [64, 64, 3], [128, 128, 8]), str(mask))
    report = tmp_path / "r.json"
    assert main(["evaluate", "--mask", str(mask), str(hr), "--device", "cpu", "--model", str(mrml_tiny_model_path),
                 "--json", str(report)]) == 0
    assert json.loads(report.read_text())["volumes"][0]["mask"] == str(mask)


def test_bench_reports_rates_beside_matmuls_of_the_same_precision_and_memory(tmp_path):
    source = tmp_path / "crop.nii.gz"
    sitk.WriteImage(sample_crop(9, slices=2, side=48), str(source))
    report = tmp_path / "bench.json"
    assert main(["bench", str(source), "--device", "cpu", "--precision", "bf16", "--repeats", "1",
                 "--json", str(report)]) == 0
    figures = json.loads(report.read_text())
    assert figures["precision"] == "bf16" and figures["slices_per_second"] > 0
    assert figures["matmul_bf16_gflops"] > 0 and figures["matmul_fp32_gflops"] > 0
    # Every figure is printed rounded (GFLOP/s to 0.01, the fraction to 0.001): the fraction must lie in the
    # interval the rounded rates allow, widened by its own rounding; exact at the printed precision, also on a
    # loaded machine where the fraction is small.
    achieved, ceiling = figures["achieved_gflops"], figures["matmul_bf16_gflops"]
    lowest, highest = (achieved - 0.005) / (ceiling + 0.005), (achieved + 0.005) / (ceiling - 0.005)
    assert lowest - 0.0005 <= figures["fraction_of_same_precision_matmul"] <= highest + 0.0005
    assert figures["peak_host_memory_mb"] > 100
    assert (figures["consistency"], figures["views"], figures["detail"]) == ("kspace", 2, "auto")
    assert main(["bench", str(source), "--device", "cpu", "--repeats", "1", "--views", "1", "--json", str(report)]) == 0
    single = json.loads(report.read_text())
    assert single["model_gflop_fp32_counted"] == pytest.approx(figures["model_gflop_fp32_counted"] / 2, rel=0.02)


def test_bench_times_the_model_it_is_given(tmp_path, mrml_tiny_model_path):
    """A candidate architecture is timed through the same engine as the bundled model."""
    source = tmp_path / "crop.nii.gz"
    sitk.WriteImage(sample_crop(9, slices=2, side=32), str(source))
    figures = {}
    for name, extra in (("bundled", []), ("tiny", ["--model", str(mrml_tiny_model_path)])):
        report = tmp_path / f"{name}.json"
        assert main(["bench", str(source), "--device", "cpu", "--repeats", "1", "--views", "1", *extra,
                     "--json", str(report)]) == 0
        figures[name] = json.loads(report.read_text())
    assert figures["tiny"]["model"] == mrml_tiny_model_path.stem != figures["bundled"]["model"]
    assert figures["tiny"]["model_gflop_fp32_counted"] < figures["bundled"]["model_gflop_fp32_counted"]


def test_a_dicom_series_is_sliced_along_its_slice_normal(tmp_path, mrml_tiny_model_path, capsys):
    """Rectangular 1.0 x 1.5 mm pixels, slices 1.2 mm apart: by spacing j would be the slice axis."""
    from pydicom.uid import generate_uid

    image = sample_crop(9, slices=4, side=32)
    image.SetSpacing((1.0, 1.5, 1.2))
    folder = tmp_path / "dicom"
    write_dicom_series(image, folder, 7, "T2 rectangular FOV", generate_uid())
    out = tmp_path / "out.nii.gz"
    assert main(["superres", str(folder), str(out), "--device", "cpu", "--model", str(mrml_tiny_model_path)]) == 0
    assert sitk.ReadImage(str(out)).GetSize() == (64, 64, 4)
    assert "slice axis the DICOM slice normal" in capsys.readouterr().out
