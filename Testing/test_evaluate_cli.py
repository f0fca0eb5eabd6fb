"""``rrlsrn evaluate`` end to end on small synthetic volumes, and its user errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli import main as cli
from RRLSRNSuperResLib.cli.progress_bar import terminal_progress
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.evaluation import simulated_lr as evaluation
from RRLSRNSuperResLib.imaging import degrade
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.io.volumes import write_volume

SHAPE_KJI = (3, 41, 47)  # odd in-plane sizes: evaluation crops them to even
SPACING_IJK = (1.0, 1.0, 3.0)  # thick k: slices along k
CPU_BICUBIC = EngineOptions(device="cpu", consistency="bicubic")  # matched to the default bicubic LR


def phantom(shape_kji=SHAPE_KJI) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 'head' with some stripes, and its elliptic brain mask (KJI)."""
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape_kji), indexing="ij")
    inside = (j / 0.7) ** 2 + (i / 0.6) ** 2 < 1
    image = 400.0 * inside * (1.0 + 0.3 * np.cos(9 * j + 2 * k) * np.sin(7 * i)) + 20.0
    return image.astype(np.float32), inside.astype(np.float32)


def geometry_for(shape_kji, spacing_ijk=SPACING_IJK) -> Geometry:
    return Geometry(size=tuple(shape_kji[::-1]), spacing=spacing_ijk, origin=(0.0, 0.0, 0.0),
                    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture
def hr_and_mask(tmp_path: Path) -> tuple[Path, Path]:
    image, mask = phantom()
    hr_path, mask_path = tmp_path / "hr.nii.gz", tmp_path / "hr_mask.nii.gz"
    write_volume(hr_path, image, geometry_for(SHAPE_KJI))
    write_volume(mask_path, mask, geometry_for(SHAPE_KJI))
    return hr_path, mask_path


def test_evaluate_writes_json_with_scores_and_conventions(hr_and_mask, tmp_path, capsys):
    hr_path, mask_path = hr_and_mask
    out = tmp_path / "scores.json"
    status = cli.main(["evaluate", "--mask", str(mask_path), str(hr_path), str(hr_path), "--mask", str(mask_path),
                       "--degradation", "kspace", "--json", str(out), "--device", "cpu"])
    assert status == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"model", "conventions", "volumes", "summary"}
    assert report["conventions"]["degradation"] == "kspace"
    assert report["conventions"]["border_pixels"] == 4
    assert report["model"]["bundled"] is True and len(report["model"]["sha256"]) == 64
    volume = report["volumes"][0]
    assert volume["evaluated_shape_shw"] == [3, 40, 46]
    assert volume["slice_axis"] == "k"
    assert set(volume["psnr"]) == set(volume["ssim"]) == set(evaluation.METHODS)
    assert volume["psnr_gain_db"]["over_cubic_spline"] == pytest.approx(
        volume["psnr"]["rrlsrn"] - volume["psnr"]["cubic_spline"])
    assert report["summary"]["psnr_gain_db_over_cubic_spline"]["n"] == 2
    # k-space LR is compared with zero-fill, the scanner's own interpolation and that degradation's inverse.
    assert volume["reference_baseline"] == "sinc"
    assert volume["psnr_gain_db"]["over_sinc"] == pytest.approx(volume["psnr"]["rrlsrn"] - volume["psnr"]["sinc"])
    assert "zero-fill" in report["conventions"]["methods"]["sinc"]
    printed = capsys.readouterr().out
    assert "hr" in printed and "95% CI" in printed and str(out) in printed
    assert "gain over zero-fill (sinc)" in printed.split("(reference baseline)")[0].splitlines()[-1]
    assert "vs sinc" in printed


@pytest.mark.parametrize("degradation", ["kspace", "bicubic"])
def test_evaluate_scale_4_simulates_x4_lr_and_x4_baselines(hr_and_mask, tmp_path, degradation):
    hr_path, mask_path = hr_and_mask
    out = tmp_path / "scores.json"
    assert cli.main(["evaluate", str(hr_path), "--mask", str(mask_path), "--degradation", degradation, "--scale", "4",
                     "--json", str(out), "--device", "cpu", "--views", "1"]) == 0
    report = json.loads(out.read_text())
    assert report["conventions"]["scale"] == 4 and "multiples of 4" in report["conventions"]["in_plane_crop"]
    volume = report["volumes"][0]
    assert volume["evaluated_shape_shw"] == [3, 40, 44] and volume["engine"]["scale"] == 4
    image, mask = phantom()
    comparison = evaluation.simulate(image, SPACING_IJK, mask, degradation=degradation,
                                     options=EngineOptions(device="cpu", views=1, scale=4, consistency=degradation))
    assert comparison.lr.shape == (3, 10, 11)
    assert all(estimate.shape == (3, 40, 44) for estimate in comparison.estimates.values())
    np.testing.assert_allclose(comparison.estimates["sinc"], degrade.zero_fill_upsample_slices(comparison.lr, 4))
    np.testing.assert_allclose(degrade.downsample_slices(comparison.estimates["rrlsrn"], degradation, 4),
                               comparison.lr, atol=1e-3)
    reference = "sinc" if degradation == "kspace" else "cubic_spline"
    assert volume["reference_baseline"] == reference


def test_evaluate_adapt_runs_the_adaptation_and_records_it(hr_and_mask, tmp_path):
    hr_path, mask_path = hr_and_mask
    out = tmp_path / "adapted.json"
    assert cli.main(["evaluate", str(hr_path), "--mask", str(mask_path), "--degradation", "kspace", "--adapt", "0.5",
                     "--json", str(out), "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert report["adapt_seconds"] == 0.5
    assert report["volumes"][0]["engine"]["notes"][0].startswith("adapted to this scan:")


@pytest.mark.parametrize("option, expected", [([], "bicubic"), (["--consistency", "none"], "none")])
def test_evaluate_tells_the_engine_the_simulated_degradation_unless_asked_not_to(hr_and_mask, tmp_path, option,
                                                                                 expected):
    hr_path, mask_path = hr_and_mask
    out = tmp_path / "scores.json"
    assert cli.main(["evaluate", str(hr_path), "--mask", str(mask_path), "--json", str(out), "--device", "cpu",
                     "--views", "1", *option]) == 0
    report = json.loads(out.read_text())
    assert report["volumes"][0]["engine"]["consistency"] == expected and report["views"] == 1
    assert report["consistency_option"] == (option[-1] if option else "matched")


def test_mismatched_mask_is_one_error_line(hr_and_mask, tmp_path, capsys):
    hr_path, _ = hr_and_mask
    image, mask = phantom((3, 40, 46))
    wrong = tmp_path / "other_mask.nii.gz"
    write_volume(wrong, mask, geometry_for((3, 40, 46)))
    status = cli.main(["evaluate", str(hr_path), "--mask", str(wrong), "--json", str(tmp_path / "s.json")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("error: ") and error.count("\n") == 1
    assert "other_mask.nii.gz" in error and "47x41x3" in error
    assert not (tmp_path / "s.json").exists()


def test_mask_count_must_match(hr_and_mask, capsys):
    hr_path, mask_path = hr_and_mask
    assert cli.main(["evaluate", str(hr_path), str(hr_path), "--mask", str(mask_path)]) == 2
    assert "one mask per HR volume" in capsys.readouterr().err


def test_evaluation_follows_the_slice_axis():
    """Thick i: slices are taken along i, so the in-plane (cropped) axes are k and j."""
    image, mask = (np.moveaxis(array, 0, 2) for array in phantom((3, 40, 30)))  # KJI 40 x 30 x 3
    scores = evaluation.evaluate_volume(image, (3.0, 1.0, 1.0), mask, options=CPU_BICUBIC)
    assert scores["slice_axis"] == "i"
    assert scores["evaluated_shape_shw"] == [3, 40, 30]
    assert scores["included_slices"] == 3


def test_progress_bar_only_on_a_terminal():
    assert terminal_progress("x", io.StringIO()) is None


def test_demo_figure_has_two_rows_of_four_cells(tmp_path):
    from RRLSRNSuperResLib.cli import comparison_figure
    from RRLSRNSuperResLib.cli import demo as demo_command

    image, mask = phantom((3, 48, 48))
    comparison = evaluation.simulate(image, SPACING_IJK, mask, options=CPU_BICUBIC)
    first, second = demo_command.figure_panels(comparison, evaluation.score(comparison))
    assert [label for label, _ in first] == ["LR (nearest)", "cubic spline", "RRLSRN", "HR"]
    assert len(second) == 4 and second[1][1].dtype == np.uint8
    height, width = first[0][1].shape
    zoom = comparison_figure.PANEL_HEIGHT // height
    figure = comparison_figure.compose([first, second])
    assert figure.size == (4 * width * zoom, 2 * (height * zoom + 2 * comparison_figure.LABEL_HEIGHT))


def test_demo_writes_the_sample_as_superres_does_in_the_inputs_pixel_type(tmp_path, capsys):
    from RRLSRNSuperResLib.cli.main import main
    from RRLSRNSuperResLib.resources import sample_volume_path

    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    written = sitk.ReadImage(str(tmp_path / "sub-01_run-1_T2w_rrlsrn_x2.nii.gz"))
    source = sitk.ReadImage(str(sample_volume_path()))
    assert written.GetPixelID() == source.GetPixelID(), "not a float32 copy four times the input's size"
    assert written.GetSize() == (2 * source.GetSize()[0], 2 * source.GetSize()[1], source.GetSize()[2])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluation"]["psnr_gain_db"]["over_cubic_spline"] > 1.0
    assert (tmp_path / "comparison.png").stat().st_size > 0
