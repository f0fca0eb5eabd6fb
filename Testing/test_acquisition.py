"""Scanner-interpolated stacks: the band limit measured from the data, and super-resolution on the acquisition grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.engine import acquisition
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.engine.volume import SuperResolutionResult, superresolve
from RRLSRNSuperResLib.imaging import degrade
from RRLSRNSuperResLib.imaging.bandwidth import estimate_bandwidth
from RRLSRNSuperResLib.resources import sample_mask_path, sample_volume_path

SPACING = (1.125, 1.125, 3.3)


@pytest.fixture(scope="module")
def sample():
    """The bundled stack (float32, KJI, in-plane cropped to a multiple of 4) and its brain mask."""
    voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_volume_path()))).astype(np.float32)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_mask_path()))) > 0.5
    return voxels[:, :320, :320], mask[:, :320, :320]


def zero_filled(slices: np.ndarray, factor: float) -> np.ndarray:
    """What a scanner does: acquire a matrix ``factor`` times coarser, zero-fill to this one."""
    import torch

    height, width = slices.shape[1:]
    acquired = (int(round(height / factor)), int(round(width / factor)))
    with torch.no_grad():
        image = torch.from_numpy(slices.astype(np.float64))[:, None]
        return degrade.fourier_resample(degrade.fourier_resample(image, acquired), (height, width))[:, 0].numpy()


@pytest.mark.parametrize("factor", [2.0, 1.5])
def test_band_limited_noise_shows_its_interpolation_factor(factor):
    noise = np.random.default_rng(1).normal(100.0, 10.0, (6, 192, 256))
    band = estimate_bandwidth(zero_filled(noise, factor), SPACING, 2)
    assert band.interpolated and band.measured
    np.testing.assert_allclose(band.factors, factor, rtol=0.05)
    np.testing.assert_allclose(band.effective_mm, np.multiply(SPACING[:2], factor), rtol=0.05)
    assert f"x{band.factors[0]:.2f}" in band.describe()


def test_a_stack_as_acquired_is_not_interpolated(sample):
    voxels, _ = sample
    band = estimate_bandwidth(voxels, SPACING, 2)
    assert band.measured and not band.interpolated and band.factors == (1.0, 1.0)
    assert band.describe() == "effective in-plane resolution 1.125 x 1.125 mm, as acquired"


@pytest.mark.parametrize("factor", [2.0, 1.5])
def test_the_sample_zero_filled_is_found_interpolated_even_cropped_or_masked(sample, factor):
    voxels, mask = sample
    interpolated = zero_filled(voxels, factor)
    # The sample's own phase-encoding band ends near x1.7 on one axis: x1.5 shows on the other.
    band = estimate_bandwidth(interpolated, SPACING, 2)
    assert band.interpolated and min(band.factors) == pytest.approx(factor, rel=0.1)
    cropped = interpolated[:, 37:251, 23:289]  # no longer periodic: its edges must not leak
    assert min(estimate_bandwidth(cropped, SPACING, 2).factors) == pytest.approx(factor, rel=0.1)
    from scipy import ndimage

    brain = ndimage.binary_dilation(mask, iterations=6)
    masked = estimate_bandwidth(np.round(interpolated) * brain, SPACING, 2)  # zero background, integer values
    assert masked.interpolated and min(masked.factors) == pytest.approx(factor, rel=0.1)


def test_a_stack_too_small_to_measure_says_so():
    band = estimate_bandwidth(np.ones((3, 20, 20)), SPACING, 2)
    assert not band.measured and not band.interpolated and "not measured" in band.describe()


def _zero_fill_network(voxels, spacing, options, *, mask_kji=None, progress=None, output_dtype=None):
    """A stand-in network that is exact zero-fill x2 (x4): the acquisition path must then be too."""
    axis = "ijk".index(options.plane)
    slices = np.moveaxis(voxels, 2 - axis, 0)
    up = degrade.zero_fill_upsample_slices(slices.astype(np.float32), options.scale)
    return SuperResolutionResult(np.moveaxis(up, 0, 2 - axis), axis, "cpu", 0.0, None, ["engine note"], "fp32")


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("slice_axis", [0, 2])
def test_the_acquisition_grid_path_keeps_the_output_grid_exactly(monkeypatch, slice_axis, scale):
    monkeypatch.setattr(acquisition, "superresolve", _zero_fill_network)
    lr = np.random.default_rng(2).normal(size=(4, 72, 88))
    stack = zero_filled(degrade.zero_fill_upsample_slices(lr.astype(np.float32)), 1.0)  # 144 x 176, x2
    spacing = (1.0, 1.0, 3.0)
    if slice_axis == 0:
        stack, spacing = np.moveaxis(stack, 0, 2), (3.0, 1.0, 1.0)
    result = acquisition.superresolve_acquired(stack.astype(np.float32), spacing, EngineOptions(scale=scale))
    expected = degrade.zero_fill_upsample_slices(np.moveaxis(stack, 2 - slice_axis, 0).astype(np.float32), scale)
    np.testing.assert_allclose(np.moveaxis(result.voxels, 2 - slice_axis, 0), expected, atol=1e-4)
    assert result.slice_axis == slice_axis
    assert "acquisition grid" in result.notes[0] and result.notes[1] == "engine note"


def test_a_stack_as_acquired_or_as_is_runs_exactly_as_before(sample, mrml_tiny_model_path):
    voxels, _ = sample
    crop = voxels[9:12, 80:240, 80:240]
    before = superresolve(crop, SPACING, EngineOptions(model=mrml_tiny_model_path, device="cpu", precision="fp32"))
    for mode in ("auto", "as-is"):
        options = EngineOptions(acquisition=mode, model=mrml_tiny_model_path, device="cpu", precision="fp32")
        after = acquisition.superresolve_acquired(crop, SPACING, options)
        np.testing.assert_array_equal(after.voxels, before.voxels)
        assert after.notes == before.notes
    interpolated = zero_filled(crop, 2.0).astype(np.float32)
    as_given = EngineOptions(acquisition="as-is", model=mrml_tiny_model_path, device="cpu", precision="fp32")
    as_is = acquisition.superresolve_acquired(interpolated, SPACING, as_given)
    np.testing.assert_array_equal(as_is.voxels, superresolve(interpolated, SPACING, as_given).voxels)
    with pytest.raises(Exception, match="acquisition must be one of"):
        acquisition.superresolve_acquired(crop, SPACING, EngineOptions(acquisition="guess"))


def test_superres_names_what_it_did_with_an_interpolated_stack(sample, tmp_path, capsys, mrml_tiny_model_path):
    voxels, _ = sample
    image = sitk.GetImageFromArray(zero_filled(voxels[8:12], 2.0).astype(np.float32))
    image.SetSpacing(SPACING)
    source = tmp_path / "zip.nii.gz"
    sitk.WriteImage(image, str(source))
    common = ["--model", str(mrml_tiny_model_path), "--device", "cpu"]
    assert main(["superres", str(source), str(tmp_path / "auto.nii.gz"), *common]) == 0
    out = capsys.readouterr().out
    assert "zero-fill interpolated x1.9" in out or "zero-fill interpolated x2.0" in out
    assert "acquisition grid, then zero-filled to the x2 grid (640 x 640)" in out
    assert sitk.ReadImage(str(tmp_path / "auto.nii.gz")).GetSize() == (640, 640, 4)
    assert main(["superres", str(source), str(tmp_path / "as_is.nii.gz"), "--acquisition", "as-is", *common]) == 0
    assert "acquisition grid" not in capsys.readouterr().out


def test_a_band_cut_on_one_axis_only_is_named_and_processed_as_given(mrml_tiny_model_path):
    """A reduced phase-encoding matrix: the network was trained on square acquisition pixels."""
    import torch

    noise = np.random.default_rng(4).normal(100.0, 10.0, (4, 192, 192))
    with torch.no_grad():
        image = torch.from_numpy(noise)[:, None]
        stack = degrade.fourier_resample(degrade.fourier_resample(image, (192, 120)), (192, 192))[:, 0].numpy()
    stack = stack.astype(np.float32)
    engine = EngineOptions(model=mrml_tiny_model_path, device="cpu", precision="fp32")
    result = acquisition.superresolve_acquired(stack, SPACING, engine)
    assert "one axis only" in result.notes[0] and result.notes[0].endswith("processed as given")
    np.testing.assert_array_equal(result.voxels, superresolve(stack, SPACING, engine).voxels)


def test_evaluate_interpolated_scores_the_gain_over_the_scanner_interpolated_input(sample, tmp_path, capsys,
                                                                                   mrml_tiny_model_path):
    import json

    voxels, mask = sample
    paths = []
    for name, array in (("hr.nii.gz", voxels[8:12, 60:260, 60:260]), ("mask.nii.gz", mask[8:12, 60:260, 60:260])):
        image = sitk.GetImageFromArray(array.astype(np.float32 if name == "hr.nii.gz" else np.uint8))
        image.SetSpacing(SPACING)
        sitk.WriteImage(image, str(tmp_path / name))
        paths.append(str(tmp_path / name))
    out = tmp_path / "scores.json"
    assert main(["evaluate-interpolated", paths[0], "--mask", paths[1], "--model", str(mrml_tiny_model_path),
                 "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    volume = report["volumes"][0]
    assert volume["evaluated_shape_shw"] == [4, 200, 200]
    assert volume["psnr_gain_db"] == pytest.approx(volume["psnr"]["rrlsrn"] - volume["psnr"]["interpolated_input"])
    assert "acquisition grid" in volume["notes"][0]  # the interpolated input was recognised
    assert report["summary"]["psnr_gain_db"]["n"] == 1
    assert "gain over the interpolated input" in capsys.readouterr().out
