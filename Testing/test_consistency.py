"""Data consistency (``imaging.consistency``) and the flipped-view self-ensemble (``engine.self_ensemble``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from RRLSRNSuperResLib.engine.self_ensemble import VIEW_COUNTS, forward_views
from RRLSRNSuperResLib.imaging.consistency import project, project_onto_measurement
from RRLSRNSuperResLib.imaging.degrade import downsample, downsample_slices, zero_fill_upsample_slices


def _smooth_images(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random images with energy well inside the band (like MRI slices, unlike white noise)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.normal(size=(count, height, width)))
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    return np.fft.ifft2(spectrum * np.exp(-(fy ** 2 + fx ** 2) / 0.02)).real.astype(np.float32)


@pytest.mark.parametrize("model", ["kspace", "bicubic"])
@pytest.mark.parametrize("lr_shape", [(32, 24), (31, 27)])
def test_the_projection_matches_the_measurement_and_is_idempotent(model, lr_shape):
    estimate = _smooth_images(3, 2 * lr_shape[0], 2 * lr_shape[1])
    lr = _smooth_images(3, *lr_shape, seed=1)
    projected = project_onto_measurement(estimate, lr, model)
    np.testing.assert_allclose(downsample_slices(projected, model), lr, atol=1e-5)
    np.testing.assert_allclose(project_onto_measurement(projected, lr, model), projected, atol=1e-5)


@pytest.mark.parametrize("model", ["kspace", "bicubic"])
def test_the_projection_brings_the_estimate_nearer_to_every_image_with_that_measurement(model):
    """An orthogonal projection onto {z : D z = lr}: no consistent image is farther after it."""
    truth = _smooth_images(2, 48, 40, seed=2)
    lr = downsample_slices(truth, model)
    estimate = truth + _smooth_images(2, 48, 40, seed=3)
    projected = project_onto_measurement(estimate, lr, model)
    for consistent in (truth, project_onto_measurement(zero_fill_upsample_slices(lr), lr, model)):
        assert np.linalg.norm(projected - consistent) < np.linalg.norm(estimate - consistent)
    # What the projection removes lies in the measured band: the unmeasured part is kept.
    np.testing.assert_allclose(downsample_slices(projected - estimate, model), lr - downsample_slices(estimate, model),
                               atol=1e-5)


def test_a_long_stack_is_projected_in_parts_like_one_slice_at_a_time():
    estimate, lr = _smooth_images(19, 32, 24, seed=6), _smooth_images(19, 16, 12, seed=7)
    whole = project_onto_measurement(estimate, lr, "kspace")
    single = np.concatenate([project_onto_measurement(estimate[i:i + 1], lr[i:i + 1], "kspace") for i in range(19)])
    np.testing.assert_allclose(whole, single, atol=1e-6)


def test_none_returns_the_estimate_and_a_wrong_grid_is_refused():
    estimate, lr = np.ones((1, 8, 8), np.float32), np.ones((1, 4, 4), np.float32)
    assert project_onto_measurement(estimate, lr, "none") is estimate
    with pytest.raises(ValueError, match="x2 or x4 grid"):
        project_onto_measurement(estimate, np.ones((1, 4, 5), np.float32), "kspace")
    with pytest.raises(ValueError, match="unknown consistency"):
        project_onto_measurement(estimate, lr, "sinc")


@pytest.mark.parametrize("model", ["kspace", "bicubic"])
@pytest.mark.parametrize(("lr_shape", "factor"), [((6, 4), 2), ((5, 3), 2), ((6, 5), 2), ((4, 3), 4), ((3, 4), 4)])
def test_the_correction_is_the_dense_pseudo_inverse_of_the_degradation(model, lr_shape, factor):
    """The closed forms against numpy's pinv of the degradation written out as a matrix, at x2 and x4."""
    hr_shape = (factor * lr_shape[0], factor * lr_shape[1])
    basis = torch.eye(hr_shape[0] * hr_shape[1], dtype=torch.float64).reshape(-1, 1, *hr_shape)
    matrix = downsample(basis, model, factor).reshape(len(basis), -1).T.numpy()  # LR pixels x HR pixels
    rng = np.random.default_rng(0)
    estimate, lr = rng.normal(size=(1, *hr_shape)), rng.normal(size=(1, *lr_shape))
    expected = estimate.ravel() + np.linalg.pinv(matrix) @ (lr.ravel() - matrix @ estimate.ravel())
    projected = project(torch.from_numpy(estimate)[:, None], torch.from_numpy(lr)[:, None], model)
    np.testing.assert_allclose(projected.numpy().ravel(), expected, atol=1e-10)


def test_the_projection_passes_gradients_to_the_estimate():
    for model in ("kspace", "bicubic"):
        estimate = torch.rand(2, 1, 16, 16, requires_grad=True)
        project(estimate, torch.rand(2, 1, 8, 8), model).square().sum().backward()
        assert estimate.grad is not None and estimate.grad.abs().sum() > 0


def _nearest_x2(batch: torch.Tensor) -> torch.Tensor:
    return batch.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.mark.parametrize("views", VIEW_COUNTS)
def test_every_view_is_undone_so_an_equivariant_forward_is_unchanged(views):
    """Nearest-neighbour x2 commutes with flips and transposes: the mean over views is itself,
    on a non-square batch, so a flip or transpose undone wrongly would show."""
    batch = torch.rand(2, 1, 6, 5)
    np.testing.assert_allclose(forward_views(_nearest_x2, batch, views).numpy(), _nearest_x2(batch).numpy(),
                               atol=1e-6)


def test_views_average_a_forward_that_is_not_equivariant():
    """A forward that adds a ramp along the columns: two views (identity, column flip) cancel the ramp."""
    def with_ramp(batch: torch.Tensor) -> torch.Tensor:
        return _nearest_x2(batch) + torch.arange(2 * batch.shape[-1], dtype=batch.dtype)

    batch = torch.rand(1, 1, 4, 3)
    two = forward_views(with_ramp, batch, 2)
    mean_ramp = (2 * batch.shape[-1] - 1) / 2
    np.testing.assert_allclose(two.numpy(), _nearest_x2(batch).numpy() + mean_ramp, atol=1e-5)
    np.testing.assert_allclose(forward_views(with_ramp, batch, 1).numpy(), with_ramp(batch).numpy())
    with pytest.raises(ValueError, match="views"):
        forward_views(with_ramp, batch, 3)


@pytest.mark.parametrize("hr_shape", [(16, 12), (20, 28)])
def test_two_kspace_x2_steps_are_one_x4_step(hr_shape):
    """So a cascade's x4 output consistent at factor 4 keeps exactly the LR's k-space band."""
    hr = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 1, *hr_shape)))
    np.testing.assert_allclose(downsample(downsample(hr, "kspace"), "kspace").numpy(),
                               downsample(hr, "kspace", 4).numpy(), atol=1e-12)
