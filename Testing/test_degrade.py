"""HR -> LR degradations and x2 baselines against analytic values: they prove the shared grid.

Positions are in HR pixel units with HR pixel ``n`` centred at ``n``; LR pixel ``j`` is centred
at ``2j + 1/2`` (docs/design.md), and output pixel ``n`` of an x2 baseline is back at ``n``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from RRLSRNSuperResLib.imaging import degrade

HR_SHAPE = (32, 48)
# (cycles along rows, cycles along columns, amplitude, phase) per period of the HR slice:
# all well inside the kept half of the spectrum (|cycles| < size / 4), so the signal is band-limited.
COSINES = ((0, 0, 1.0, 0.0), (3, 0, 0.5, 0.3), (0, 5, 0.4, -0.7), (2, -4, 0.25, 1.1), (6, 9, 0.1, 2.0))


def cosine_sum(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The band-limited test signal at (continuous) HR positions."""
    h, w = HR_SHAPE
    value = np.zeros(np.broadcast(rows, cols).shape)
    for cy, cx, amplitude, phase in COSINES:
        value += amplitude * np.cos(2 * np.pi * (cy * rows / h + cx * cols / w) + phase)
    return value


def lr_centres(size: int) -> np.ndarray:
    """HR positions of the LR pixel centres along an axis of HR ``size``."""
    return 2 * np.arange(size // 2) + 0.5


def test_kspace_downsample_samples_band_limited_signal_at_lr_centres():
    h, w = HR_SHAPE
    hr = cosine_sum(np.arange(h)[:, None], np.arange(w)[None, :])
    lr = degrade.downsample_slices(hr[None], "kspace")[0]
    expected = cosine_sum(lr_centres(h)[:, None], lr_centres(w)[None, :])
    assert lr.shape == (h // 2, w // 2)
    np.testing.assert_allclose(lr, expected, atol=1e-6)


def test_kspace_downsample_keeps_dc():
    hr = torch.full((2, 1, 16, 20), 3.25)
    np.testing.assert_allclose(degrade.kspace_downsample(hr).numpy(), 3.25, atol=1e-6)


@pytest.mark.parametrize("degradation", degrade.DEGRADATIONS)
def test_degradation_of_constant_is_that_constant(degradation):
    lr = degrade.downsample_slices(np.full((2, 24, 30), 7.5, dtype=np.float32), degradation)
    assert lr.shape == (2, 12, 15)
    np.testing.assert_allclose(lr, 7.5, rtol=1e-6)


def test_bicubic_downsample_of_ramp_lands_on_lr_centres():
    hr = np.broadcast_to(0.5 + 0.25 * np.arange(64), (1, 16, 64))
    lr = degrade.downsample_slices(hr, "bicubic")[0, 4]
    inside = slice(4, -4)  # the antialiased kernel reaches 4 HR pixels; the edges are clamped
    np.testing.assert_allclose(lr[inside], (0.5 + 0.25 * lr_centres(64))[inside], atol=1e-5)


def test_cubic_spline_baseline_of_ramp_is_the_ramp_on_the_x2_grid():
    lr = np.broadcast_to(1.0 + 0.5 * lr_centres(128), (8, 64))
    sr = degrade.cubic_spline_upsample_slice(np.ascontiguousarray(lr))
    assert sr.shape == (16, 128)
    inside = slice(24, -24)  # the reflected boundary's influence on the spline decays as 0.27 per LR pixel
    np.testing.assert_allclose(sr[4, inside], (1.0 + 0.5 * np.arange(128))[inside], atol=1e-4)


def test_bicubic_baseline_of_ramp_is_centred_on_the_x2_grid():
    """Torch's bicubic (Keys, a = -0.75) bends a ramp by +-3/32 of a step, but without any shift."""
    lr = torch.from_numpy(np.broadcast_to(1.0 + 0.5 * lr_centres(64), (1, 1, 4, 32)).astype(np.float32).copy())
    sr = degrade.bicubic_upsample(lr)[0, 0, 2].numpy()
    error = (sr - (1.0 + 0.5 * np.arange(64)))[4:-4]
    np.testing.assert_allclose(error[0::2] + error[1::2], 0.0, atol=1e-5)
    assert np.abs(error).max() < 0.5 * 0.1


def test_crop_to_multiple_drops_last_row_and_column():
    slices = np.zeros((3, 11, 8))
    assert degrade.crop_to_multiple(slices).shape == (3, 10, 8)


def test_unknown_degradation_is_refused():
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade.downsample(torch.zeros(1, 1, 4, 4), "nearest")


def _without_nyquist(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its Nyquist row and column of the spectrum removed (even sizes)."""
    spectrum = torch.fft.fft2(x)
    spectrum[..., x.shape[-2] // 2, :] = 0
    spectrum[..., :, x.shape[-1] // 2] = 0
    return torch.fft.ifft2(spectrum).real


@pytest.mark.parametrize("lr_shape", [(16, 24), (10, 14), (9, 13)])
def test_kspace_degradation_undoes_zero_fill_exactly(lr_shape):
    """kspace(zero_fill(x)) == x: zero-fill is the exact inverse of the k-space degradation."""
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 1, *lr_shape)))
    if lr_shape[0] % 2 == 0:
        x = _without_nyquist(x)
    up = degrade.zero_fill_upsample(x)
    assert up.shape[-2:] == (2 * lr_shape[0], 2 * lr_shape[1])
    np.testing.assert_allclose(degrade.kspace_downsample(up).numpy(), x.numpy(), atol=1e-12)


def test_zero_fill_restores_a_band_limited_slice_on_the_shared_grid():
    """The HR cosines lie inside the kept band, so k-space LR then zero-fill gives them back."""
    h, w = HR_SHAPE
    hr = cosine_sum(np.arange(h)[:, None], np.arange(w)[None, :])
    lr = degrade.downsample_slices(hr[None], "kspace")
    np.testing.assert_allclose(degrade.zero_fill_upsample_slices(lr)[0], hr, atol=1e-5)
    np.testing.assert_allclose(degrade.zero_fill_upsample_slices(np.full((1, 5, 6), 2.5, np.float32)), 2.5,
                               atol=1e-6)
