"""Data consistency (``imaging.consistency``) and the flipped-view self-ensemble (``engine.self_ensemble``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from RRLSRNSuperResLib.engine.self_ensemble import VIEW_COUNTS, forward_views
from RRLSRNSuperResLib.imaging.consistency import project_onto_measurement
from RRLSRNSuperResLib.imaging.degrade import downsample_slices, zero_fill_upsample_slices
from RRLSRNSuperResLib.training.consistent_output import project_batch


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


def test_none_returns_the_estimate_and_a_wrong_grid_is_refused():
    estimate, lr = np.ones((1, 8, 8), np.float32), np.ones((1, 4, 4), np.float32)
    assert project_onto_measurement(estimate, lr, "none") is estimate
    with pytest.raises(ValueError, match="x2 grid"):
        project_onto_measurement(estimate, np.ones((1, 4, 5), np.float32), "kspace")
    with pytest.raises(ValueError, match="unknown consistency"):
        project_onto_measurement(estimate, lr, "sinc")


@pytest.mark.parametrize("model", ["kspace", "bicubic"])
def test_the_training_projection_is_the_engine_projection_on_band_limited_images(model):
    estimate = _smooth_images(2, 64, 48, seed=4)
    lr = _smooth_images(2, 32, 24, seed=5)
    trained = project_batch(torch.from_numpy(estimate)[:, None], torch.from_numpy(lr)[:, None], model)[:, 0]
    np.testing.assert_allclose(trained.numpy(), project_onto_measurement(estimate, lr, model), atol=2e-3)
    assert trained.requires_grad is False


def test_the_training_projection_passes_gradients_to_the_prediction():
    prediction = torch.rand(2, 1, 16, 16, requires_grad=True)
    project_batch(prediction, torch.rand(2, 1, 8, 8), "bicubic").sum().backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


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


@pytest.mark.parametrize("lr_shape", [(32, 24), (31, 27), (32, 27)])
def test_the_closed_form_kspace_pseudo_inverse_is_the_conjugate_gradient_one(lr_shape):
    from RRLSRNSuperResLib.imaging.consistency import conjugate_gradient_pseudo_inverse, kspace_pseudo_inverse

    residual = torch.rand(2, 1, *lr_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    general = conjugate_gradient_pseudo_inverse(residual, (2 * lr_shape[0], 2 * lr_shape[1]), "kspace")
    np.testing.assert_allclose(kspace_pseudo_inverse(residual).numpy(), general.numpy(), atol=1e-9)
