"""The slice-wise engine: progress and cancel, determinism, seamless windows, memory fallback."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.engine.slice_runner import BatchTooLarge, SliceRunner, Window, receptive_radius
from RRLSRNSuperResLib.engine.volume import brain_window, superresolve
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.resources import sample_mask_path, sample_volume_path


@pytest.fixture(scope="module")
def sample_crop():
    """Four central slices of the bundled fetal stack, its brain mask and spacing (IJK)."""
    image = sitk.ReadImage(str(sample_volume_path()))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_mask_path()))) > 0.5
    voxels = sitk.GetArrayFromImage(image)
    middle = int(np.argmax(mask.sum(axis=(1, 2))))
    picked = slice(middle - 2, middle + 2)
    return voxels[picked, 80:240, 80:240], mask[picked, 80:240, 80:240], image.GetSpacing()


def test_progress_rises_to_one_at_least_once_per_batch(sample_crop):
    voxels, _, spacing = sample_crop
    calls = []
    superresolve(voxels, spacing, EngineOptions(device="cpu", batch_size=1),
                 progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    assert sum(1 for f, m in calls if m.endswith("slices")) >= len(voxels)


def test_returning_false_cancels(sample_crop):
    voxels, _, spacing = sample_crop
    seen = []

    def cancel_after_first_batch(fraction, message):
        seen.append(fraction)
        return fraction < 0.25

    with pytest.raises(SuperResolutionCancelled):
        superresolve(voxels, spacing, EngineOptions(device="cpu", batch_size=1), progress=cancel_after_first_batch)
    assert max(seen) < 1.0


def test_same_input_gives_the_same_output(sample_crop):
    voxels, _, spacing = sample_crop
    first = superresolve(voxels, spacing, EngineOptions(device="cpu")).voxels
    np.testing.assert_array_equal(superresolve(voxels, spacing, EngineOptions(device="cpu")).voxels, first)
    # Another batch size may pick other kernels: equal to float tolerance, not bit for bit.
    np.testing.assert_allclose(superresolve(voxels, spacing, EngineOptions(device="cpu", batch_size=1)).voxels, first,
                               atol=1e-4 * np.ptp(voxels))


@pytest.fixture(scope="module")
def bundled_runner():
    """The bundled model's slice runner on the CPU."""
    from RRLSRNSuperResLib.engine.volume import resolve_model

    model, halo = resolve_model(None)
    return SliceRunner(model.to(memory_format=torch.channels_last), torch.device("cpu"), halo)


def _window_equals_whole_slice_run(runner: SliceRunner, slices: np.ndarray, window: Window) -> None:
    whole = runner.run(slices, Window(0, slices.shape[1], 0, slices.shape[2]))
    inside = (slice(None), slice(2 * window.top, 2 * window.bottom), slice(2 * window.left, 2 * window.right))
    np.testing.assert_allclose(runner.run(slices, window), whole[inside], atol=1e-3)


def test_brain_box_window_equals_the_whole_slice_run_inside_the_box(sample_crop, bundled_runner):
    voxels, mask, _ = sample_crop
    slices = (voxels / np.percentile(voxels, 99)).astype(np.float32)
    window = brain_window(mask)
    assert (window.bottom - window.top) * (window.right - window.left) < 0.6 * voxels[0].size
    _window_equals_whole_slice_run(bundled_runner, slices, window)


def test_a_box_at_the_slice_edge_equals_the_whole_slice_run_too(sample_crop, bundled_runner):
    voxels, _, _ = sample_crop
    slices = (voxels / np.percentile(voxels, 99)).astype(np.float32)
    corner = np.zeros(voxels.shape, bool)
    corner[:, :30, -25:] = True
    window = brain_window(corner)
    assert window.top == 0 and window.right == voxels.shape[2]
    _window_equals_whole_slice_run(bundled_runner, slices, window)


def test_the_brain_mask_sets_the_intensity_range_and_only_its_box_goes_through_the_network(sample_crop):
    from RRLSRNSuperResLib.imaging.degrade import cubic_spline_upsample_slice
    from RRLSRNSuperResLib.imaging.intensity import robust_scale

    voxels, mask, spacing = sample_crop
    # Without the consistency projection, which then spreads over the whole slice (tested below).
    boxed = superresolve(voxels, spacing, EngineOptions(device="cpu", consistency="none"), mask_kji=mask)
    assert boxed.scale == robust_scale(voxels, mask)
    assert boxed.scale.hi != pytest.approx(robust_scale(voxels).hi, rel=0.01), "the mask must matter"
    window = brain_window(mask)
    spline = np.stack([cubic_spline_upsample_slice(s.astype(np.float32)) for s in voxels])
    outside = np.ones(boxed.voxels.shape, bool)
    outside[:, 2 * window.top: 2 * window.bottom, 2 * window.left: 2 * window.right] = False
    np.testing.assert_array_equal(boxed.voxels[outside], spline[outside])
    network_part = superresolve(voxels, spacing, EngineOptions(device="cpu", consistency="none")).voxels
    assert not np.allclose(boxed.voxels[~outside], network_part[~outside], atol=1e-3 * np.ptp(voxels)), \
        "the masked intensity range should change the network's input, and so its output"


def test_tiles_are_seamless(sample_crop, mrml_tiny_model_path):
    model = torch.jit.load(str(mrml_tiny_model_path))
    slices = (sample_crop[0][:2] / 500.0).astype(np.float32)
    window = Window(0, slices.shape[1], 0, slices.shape[2])
    runner = SliceRunner(model, torch.device("cpu"), receptive_radius(model))
    whole = runner.run(slices, window)
    runner.tile_splits = 2
    np.testing.assert_allclose(runner.run(slices, window), whole, atol=1e-5)


class _OutOfMemoryOnce:
    """Stands in for a GPU window run (computed on the CPU): out of memory above a window size."""

    def __init__(self, runner: SliceRunner, max_pixels: int):
        self.max_pixels = max_pixels
        self.original = SliceRunner(runner.model, torch.device("cpu"), runner.halo)._run_window

    def __call__(self, slices, window):
        if len(slices) > 1 or (window.bottom - window.top) * (window.right - window.left) > self.max_pixels:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.original(slices, window)


def test_out_of_memory_shrinks_the_batch_then_tiles_then_uses_the_cpu(sample_crop, mrml_tiny_model_path):
    model = torch.jit.load(str(mrml_tiny_model_path))
    slices = (sample_crop[0][:2] / 500.0).astype(np.float32)
    window = Window(0, slices.shape[1], 0, slices.shape[2])
    reference = SliceRunner(model, torch.device("cpu"), receptive_radius(model)).run(slices[:1], window)

    # A "cuda" runner whose window runs are replaced by a CPU run that fails above a size.
    runner = SliceRunner(model, torch.device("cuda"), receptive_radius(model))
    runner._run_window = _OutOfMemoryOnce(runner, max_pixels=(window.bottom * window.right) // 10)
    with pytest.raises(BatchTooLarge):
        runner.run(slices, window)
    np.testing.assert_allclose(runner.run(slices[:1], window), reference, atol=1e-5)
    assert runner.tile_splits == 2 and any("tiling 4x4" in note for note in runner.notes)

    hopeless = SliceRunner(model, torch.device("cuda"), receptive_radius(model))
    hopeless._run_window = _OutOfMemoryOnce(hopeless, max_pixels=0)
    with pytest.raises(RuntimeError):
        hopeless.run(slices[:1], window)  # the CPU fallback cannot help a stand-in that always fails
    assert hopeless.device.type == "cpu" and "CPU" in hopeless.notes[-1]


def test_output_type_on_request_is_rounded_and_clipped(sample_crop):
    voxels, _, spacing = sample_crop
    result = superresolve(voxels[:1], spacing, EngineOptions(device="cpu"), output_dtype=voxels.dtype)
    assert result.voxels.dtype == voxels.dtype
    as_float = superresolve(voxels[:1], spacing, EngineOptions(device="cpu")).voxels
    np.testing.assert_array_equal(result.voxels,
                                  np.clip(np.rint(as_float), 0, np.iinfo(voxels.dtype).max).astype(voxels.dtype))


def test_model_beats_cubic_spline_on_a_simulated_low_resolution_slice(sample_crop):
    from RRLSRNSuperResLib.imaging.degrade import cubic_spline_upsample_slice, downsample_slices

    voxels, mask, spacing = sample_crop
    high = voxels.astype(np.float32)
    low = downsample_slices(high, "bicubic")
    sr = superresolve(low, (2 * spacing[0], 2 * spacing[1], spacing[2]), EngineOptions(device="cpu")).voxels
    spline = np.stack([cubic_spline_upsample_slice(s) for s in low])

    def error(estimate):
        return np.mean((estimate[mask] - high[mask]) ** 2)

    assert 10 * np.log10(error(spline) / error(sr)) > 0.5


@pytest.mark.parametrize(("voxels", "message"), [
    (np.zeros((2, 3)), "3D"),
    (np.full((2, 4, 4), np.nan, np.float32), "NaN"),
    (np.zeros((2, 4, 4), np.complex64), "real-valued"),
])
def test_bad_arrays_are_refused(voxels, message):
    with pytest.raises(UserInputError, match=message):
        superresolve(voxels, (1, 1, 1), EngineOptions(device="cpu"))


def test_mask_on_another_grid_or_empty_is_refused(sample_crop):
    voxels, mask, spacing = sample_crop
    with pytest.raises(UserInputError, match="mask shape"):
        superresolve(voxels, spacing, EngineOptions(device="cpu"), mask_kji=mask[:, :-1])
    with pytest.raises(UserInputError, match="empty"):
        superresolve(voxels, spacing, EngineOptions(device="cpu"), mask_kji=np.zeros_like(mask))


def test_bfloat16_stays_close_to_float32_and_keeps_the_image_branch_in_float32(sample_crop, bundled_runner):
    voxels, _, spacing = sample_crop
    reference = superresolve(voxels, spacing, EngineOptions(device="cpu", precision="fp32"))
    fast = superresolve(voxels, spacing, EngineOptions(device="cpu", precision="bf16"))
    assert (reference.precision, fast.precision) == ("fp32", "bf16")
    error = fast.voxels.astype(np.float64) - reference.voxels
    assert np.sqrt(np.mean(error**2)) < 2e-3 * np.ptp(voxels), "about 55 dB from the float32 result"
    slices = torch.from_numpy((voxels[:1] / np.percentile(voxels, 99)).astype(np.float32))[:, None]
    runner = SliceRunner(bundled_runner.model, torch.device("cpu"), bundled_runner.halo,
                         compute_dtype=torch.bfloat16)
    with torch.inference_mode():
        out = runner._forward(slices)
        assert out.dtype == torch.float32
        image_branch = bundled_runner.model.upsample_image(slices)
        residual = out - image_branch  # the sum and the image branch in float32: exactly the bf16 residual
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = bundled_runner.model.to_residual(bundled_runner.model.features(slices)).float()
    torch.testing.assert_close(residual, expected, atol=1e-6, rtol=0)


def test_fp16_is_refused_on_the_cpu(sample_crop):
    voxels, _, spacing = sample_crop
    with pytest.raises(UserInputError, match="CUDA GPUs only"):
        superresolve(voxels, spacing, EngineOptions(device="cpu", precision="fp16"))


@pytest.mark.parametrize("boxed", [False, True])
def test_the_output_is_consistent_with_the_input_under_the_kspace_model_by_default(sample_crop, boxed):
    """A real stack is the central k-space of its x2 output: the default output keeps it exactly."""
    from RRLSRNSuperResLib.imaging.degrade import downsample_slices

    voxels, mask, spacing = sample_crop
    free = superresolve(voxels, spacing, EngineOptions(device="cpu", consistency="none"),
                        mask_kji=mask if boxed else None)
    consistent = superresolve(voxels, spacing, EngineOptions(device="cpu"), mask_kji=mask if boxed else None)
    measured = voxels.astype(np.float32)
    assert np.abs(downsample_slices(free.voxels, "kspace") - measured).max() > 0.01 * np.ptp(voxels)
    np.testing.assert_allclose(downsample_slices(consistent.voxels, "kspace"), measured, atol=1e-4 * np.ptp(voxels))
    high_band = consistent.voxels - free.voxels  # the projection changes only what the input measured
    np.testing.assert_allclose(downsample_slices(high_band, "kspace"), measured - downsample_slices(
        free.voxels, "kspace"), atol=1e-4 * np.ptp(voxels))


def test_more_self_ensemble_views_change_the_output_but_not_its_place(sample_crop):
    voxels, _, spacing = sample_crop
    one, two = (superresolve(voxels, spacing, EngineOptions(device="cpu", views=v, consistency="none")).voxels
                for v in (1, 2))
    assert not np.allclose(one, two, atol=1e-3 * np.ptp(voxels)), "a second view must change the output"
    # Both are the same image on the same grid: they differ by the network's small asymmetry only.
    assert np.abs(one - two).mean() < 0.01 * np.ptp(voxels)


def test_without_a_model_bicubic_lr_goes_to_the_bundled_bicubic_model(sample_crop):
    """The consistency model names how the LR was made; it also picks the model trained for it."""
    from RRLSRNSuperResLib.resources import bundled_model_path

    voxels, _, spacing = sample_crop
    voxels = voxels[:1, :48, :48]

    def run(**options):
        engine = EngineOptions(device="cpu", views=1, consistency="bicubic", **options)
        return superresolve(voxels, spacing, engine).voxels

    default, mri = run(), run(model=bundled_model_path("kspace"))
    np.testing.assert_array_equal(default, run(model=bundled_model_path("bicubic")))
    assert not np.allclose(default, mri, atol=1e-3 * np.ptp(voxels)), "the two bundled models differ"


@pytest.mark.parametrize("options, message", [({"consistency": "sinc"}, "consistency"), ({"views": 3}, "views")])
def test_unknown_consistency_or_view_count_is_refused(sample_crop, options, message):
    voxels, _, spacing = sample_crop
    with pytest.raises(UserInputError, match=message):
        superresolve(voxels, spacing, EngineOptions(device="cpu", **options))


@pytest.mark.parametrize(("consistency", "boxed"), [("kspace", False), ("kspace", True), ("bicubic", False)])
def test_x4_cascade_is_consistent_with_the_input_at_factor_4(sample_crop, consistency, boxed):
    """Two x2 levels; the x4 output keeps the input's measurement (for k-space its central quarter)."""
    from RRLSRNSuperResLib.imaging.degrade import downsample_slices

    voxels, mask, spacing = sample_crop
    voxels, mask = voxels[:2, 40:104, 40:104], mask[:2, 40:104, 40:104]
    result = superresolve(voxels, spacing, EngineOptions(device="cpu", views=1, scale=4, consistency=consistency),
                          mask_kji=mask if boxed else None)
    assert result.voxels.shape == (2, 256, 256)
    np.testing.assert_allclose(downsample_slices(result.voxels, consistency, 4), voxels.astype(np.float32),
                               atol=1e-4 * np.ptp(voxels))
    assert any(f"x4: two cascaded x2 levels, the bundled second level, trained on the first level's output; the output "
               f"made consistent with the input at factor 4 ({consistency})" == note for note in result.notes)


def test_x4_with_detail_gain_0_is_the_measured_band_alone_and_full_detail_adds_to_it(sample_crop):
    """Gain 0 at both levels leaves ``D^+ lr`` at factor 4: zero-fill x4 with the LR's Nyquist doubled."""
    from RRLSRNSuperResLib.imaging.consistency import project_onto_measurement

    voxels, _, spacing = sample_crop
    voxels = voxels[:1, 40:88, 40:88]
    none, full = (superresolve(voxels, spacing, EngineOptions(device="cpu", views=1, scale=4, detail=gain)).voxels
                  for gain in (0.0, "full"))
    zero_fill = project_onto_measurement(np.zeros((1, 192, 192), np.float32), voxels.astype(np.float32), "kspace")
    np.testing.assert_allclose(none, zero_fill, atol=1e-4 * np.ptp(voxels))
    assert np.abs(full - zero_fill).mean() > 0.005 * np.ptp(voxels)


@pytest.mark.parametrize("consistency", ["kspace", "bicubic"])
def test_x4_with_the_bundled_model_runs_its_own_second_level(sample_crop, monkeypatch, consistency):
    """Without a model option the second level is the bundled second level for the consistency; with the
    x2 model put in its place the cascade is exactly the one a given x2 model runs at both levels."""
    from dataclasses import replace

    from RRLSRNSuperResLib.engine import volume as engine
    from RRLSRNSuperResLib.resources import bundled_model_path, bundled_second_level_path

    voxels, _, spacing = sample_crop
    voxels = voxels[:1, 40:88, 40:88]
    options = EngineOptions(device="cpu", views=1, scale=4, consistency=consistency, precision="fp32")
    default_run = superresolve(voxels, spacing, options)
    given_run = superresolve(voxels, spacing, replace(options, model=bundled_model_path(consistency)))
    default, given = default_run.voxels, given_run.voxels
    assert bundled_second_level_path(consistency).is_file()
    assert not np.allclose(default, given, atol=1e-3 * np.ptp(voxels)), "the second level is its own network"
    assert any("the bundled second level" in note for note in default_run.notes)
    assert any("the given model at both levels" in note for note in given_run.notes), "the user must be told"
    monkeypatch.setattr(engine, "bundled_second_level_path", bundled_model_path)
    np.testing.assert_array_equal(superresolve(voxels, spacing, options).voxels, given)


def test_x4_without_consistency_says_the_output_was_not_projected(sample_crop):
    voxels, _, spacing = sample_crop
    result = superresolve(voxels[:1, 40:72, 40:72], spacing,
                          EngineOptions(device="cpu", views=1, scale=4, consistency="none"))
    assert any(note.startswith("x4:") and note.endswith("not projected onto the input (--consistency none)")
               for note in result.notes), result.notes


def test_x4_progress_rises_to_one_through_both_levels(sample_crop):
    voxels, _, spacing = sample_crop
    calls = []
    superresolve(voxels[:2, 40:88, 40:88], spacing, EngineOptions(device="cpu", views=1, batch_size=1, scale=4),
                 progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [f for f, m in calls if m.endswith("slices")]
    assert fractions == pytest.approx([0.1, 0.2, 0.6, 1.0])


def test_a_scale_other_than_2_or_4_is_refused():
    with pytest.raises(UserInputError, match="scale must be one of 2, 4"):
        EngineOptions(scale=3)
