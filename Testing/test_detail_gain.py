"""The detail gain (engine.detail_gain): the share of the network's out-of-band detail kept, per stack."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.engine.detail_gain import AUTO_SHRINK, calibrate_gain, keep_detail, parse_detail
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.engine.volume import superresolve
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.imaging.consistency import project_onto_measurement
from RRLSRNSuperResLib.imaging.degrade import downsample_slices, zero_fill_upsample_slices


def smooth_detailed_stack(seed: int = 0, count: int = 3, side: int = 48) -> np.ndarray:
    """Slices with real detail at every scale (blobs and edges of many sizes), float32."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:side, :side]
    stack = np.zeros((count, side, side), dtype=np.float32)
    for index in range(count):
        for _ in range(30):
            r, c, radius = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(1.0, side / 4)
            stack[index] += rng.uniform(0.2, 1.0) * (((rows - r) ** 2 + (cols - c) ** 2) < radius ** 2)
    return stack


def test_parse_detail_accepts_auto_full_and_gains_from_0_to_1():
    assert parse_detail("auto") == "auto" and parse_detail("full") == "full"
    assert parse_detail("0.25") == 0.25 and parse_detail(1) == 1.0 and parse_detail("0") == 0.0
    for bad in ("1.5", "-0.1", "some", "nan"):
        with pytest.raises(UserInputError):
            parse_detail(bad)


def test_keep_detail_scales_only_the_out_of_band_part_and_stays_consistent():
    rng = np.random.default_rng(1)
    lr = rng.normal(size=(2, 9, 12)).astype(np.float32)  # odd and even sizes
    estimate = project_onto_measurement(rng.normal(size=(2, 18, 24)).astype(np.float32), lr, "kspace")
    base = project_onto_measurement(np.zeros_like(estimate), lr, "kspace")
    half = keep_detail(estimate, lr, 0.5, "kspace")
    np.testing.assert_allclose(downsample_slices(half, "kspace"), lr, atol=1e-5)  # still the measurement
    np.testing.assert_allclose(half - base, 0.5 * (estimate - base), atol=1e-5)
    np.testing.assert_allclose(keep_detail(estimate, lr, 0.0, "kspace"), base, atol=1e-6)
    assert keep_detail(estimate, lr, 1.0, "kspace") is estimate


def test_calibration_keeps_real_detail_and_drops_invented_detail():
    """A network that restores the true finer band (an oracle) keeps AUTO_SHRINK of it; one that
    adds detail a band-limited stack does not have (noise beyond the band) keeps almost none."""
    detailed = smooth_detailed_stack()
    oracle = calibrate_gain(lambda lower: detailed.copy(), detailed)
    assert oracle.shape == detailed.shape and np.median(oracle) == pytest.approx(AUTO_SHRINK, abs=0.01)

    band_limited = zero_fill_upsample_slices(downsample_slices(detailed, "kspace"))  # no out-of-band content
    rng = np.random.default_rng(3)

    def inventor(lower: np.ndarray) -> np.ndarray:
        return zero_fill_upsample_slices(lower) + 0.3 * rng.normal(size=(len(lower), 2 * lower.shape[1],
                                                                          2 * lower.shape[2]))
    invented = calibrate_gain(inventor, band_limited)
    print(invented.mean(), invented.max())
    assert invented.mean() < 0.05


@pytest.fixture
def volume() -> np.ndarray:
    return smooth_detailed_stack(seed=4, count=2, side=24)* 100 + 10


def test_engine_gain_zero_is_the_pseudo_inverse_and_full_is_the_network(volume, mrml_tiny_model_path):
    common = dict(model=mrml_tiny_model_path, device="cpu", precision="fp32", plane="k")
    full = superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(detail="full", **common))
    none = superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(detail=0.0, **common))
    half = superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(detail=0.5, **common))
    base = project_onto_measurement(np.zeros_like(full.voxels), volume, "kspace")
    np.testing.assert_allclose(none.voxels, base, atol=2e-3)
    np.testing.assert_allclose(half.voxels - base, 0.5 * (full.voxels - base), atol=2e-3)
    assert (full.detail_gain, none.detail_gain, half.detail_gain) == (1.0, 0.0, 0.5)
    assert "detail gain 0.50 (given)" in half.notes


def test_engine_auto_calibrates_under_kspace_only(volume, mrml_tiny_model_path):
    common = dict(model=mrml_tiny_model_path, device="cpu", precision="fp32", plane="k")
    auto = superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(**common))
    assert 0.0 <= auto.detail_gain <= 1.0
    assert any(note.startswith(f"detail gain {auto.detail_gain:.2f} on average") and "auto" in note
               for note in auto.notes)
    bicubic = superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(consistency="bicubic", **common))
    assert bicubic.detail_gain == 1.0
    with pytest.raises(UserInputError, match="needs a consistency projection"):
        superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(consistency="none", detail=0.5, **common))


def test_superres_cli_takes_detail_and_prints_the_gain(tmp_path, mrml_tiny_model_path, capsys, volume):
    source = tmp_path / "in.nii.gz"
    image = sitk.GetImageFromArray(volume.astype(np.float32))
    image.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(image, str(source))
    common = ["--device", "cpu", "--model", str(mrml_tiny_model_path)]
    assert main(["superres", str(source), str(tmp_path / "a.nii.gz"), "--detail", "0.4", *common]) == 0
    assert "detail gain 0.40 (given)" in capsys.readouterr().out
    assert main(["superres", str(source), str(tmp_path / "b.nii.gz"), *common]) == 0
    assert ", detail gain " in capsys.readouterr().out.splitlines()[0]
    with pytest.raises(SystemExit) as exit_info:
        main(["superres", str(source), str(tmp_path / "c.nii.gz"), "--detail", "2", *common])
    assert exit_info.value.code == 2 and "detail gain must be from 0 to 1" in capsys.readouterr().err


def test_evaluate_json_records_the_detail_gain(tmp_path, mrml_tiny_model_path, volume):
    source, report = tmp_path / "hr.nii.gz", tmp_path / "scores.json"
    image = sitk.GetImageFromArray(np.repeat(np.repeat(volume, 2, axis=1), 2, axis=2).astype(np.float32))
    image.SetSpacing((0.5, 0.5, 3.0))
    sitk.WriteImage(image, str(source))
    assert main(["evaluate", str(source), "--degradation", "kspace", "--detail", "0.3", "--device", "cpu",
                 "--model", str(mrml_tiny_model_path), "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["detail_option"] == 0.3 and scores["volumes"][0]["engine"]["detail_gain"] == 0.3


def test_cancelling_during_the_calibration_stops_the_run(volume, mrml_tiny_model_path):
    from RRLSRNSuperResLib.errors import SuperResolutionCancelled

    messages = []

    def progress(fraction, message):
        messages.append(message)
        return message != "calibrating the detail gain"

    with pytest.raises(SuperResolutionCancelled):
        superresolve(volume, (1.0, 1.0, 3.0), EngineOptions(model=mrml_tiny_model_path, device="cpu", plane="k"),
                     progress=progress)
    assert messages[-1] == "calibrating the detail gain"


@pytest.mark.parametrize("command, inputs", [("report", ["hr.nii.gz", "--out", "out"]), ("bench", [])])
def test_report_and_bench_take_the_shared_detail_option(command, inputs):
    from RRLSRNSuperResLib.cli.engine_options import engine_options_from_args
    from RRLSRNSuperResLib.cli.main import build_parser

    args = build_parser(command).parse_args([command, *inputs, "--detail", "full"])
    assert engine_options_from_args(args, consistency="kspace").detail == "full"
    assert build_parser(command).parse_args([command, *inputs, "--detail", "0.25"]).detail == 0.25
