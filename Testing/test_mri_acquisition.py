"""The training's MRI acquisition model and the noise estimate its noise range comes from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from noise_estimate import haar_noise_sd
from RRLSRNSuperResLib.imaging.degrade import kspace_downsample
from RRLSRNSuperResLib.imaging.mri_acquisition import AcquisitionRanges, phase_encoding_weights, simulate_acquisition

NO_LOSS = AcquisitionRanges(t2_decay=(0.0, 0.0), partial_fourier_probability=0.0, noise_probability=0.0)


def smooth_images(count: int, side: int = 32) -> torch.Tensor:
    y, x = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    images = [0.5 + 0.3 * np.sin(7 * x + n) * np.cos(5 * y) for n in range(count)]
    return torch.from_numpy(np.stack(images)[:, None].astype(np.float32))


def test_without_losses_it_is_the_ideal_kspace_acquisition():
    hr = smooth_images(3)
    lr = simulate_acquisition(hr, np.random.default_rng(0), NO_LOSS)
    torch.testing.assert_close(lr, kspace_downsample(hr), atol=1e-6, rtol=0)


def test_phase_encoding_weights_model_t2_decay_and_partial_fourier():
    weights = phase_encoding_weights(16, t2_decay=1.0, partial_fourier_share=1.0)
    k = np.fft.fftfreq(16) * 16
    np.testing.assert_allclose(weights, np.exp(-np.abs(k) / 8))
    assert weights[0] == 1.0 and weights[8] == pytest.approx(np.exp(-1.0))  # centre and edge
    half = phase_encoding_weights(16, t2_decay=0.0, partial_fourier_share=0.625)  # 10 of 16 lines
    np.testing.assert_allclose(half, np.where(np.abs(k) > 2, 0.5, 1.0))  # |k| <= 2 read on both sides


def test_t2_decay_blurs_along_one_random_axis_and_noise_has_the_drawn_sd():
    hr = torch.from_numpy(np.random.default_rng(0).random((16, 1, 32, 32)).astype(np.float32))
    blur_only = AcquisitionRanges(t2_decay=(2.0, 2.0), partial_fourier_probability=0.0, noise_probability=0.0)
    lr = simulate_acquisition(hr, np.random.default_rng(1), blur_only)
    ideal = kspace_downsample(hr)
    ratio = (torch.fft.fft2(lr.double()).abs() / torch.fft.fft2(ideal.double()).abs()).numpy()[:, 0]
    line_weights = phase_encoding_weights(16, t2_decay=2.0, partial_fourier_share=1.0)
    axes = []
    for image_ratio in ratio:
        if np.allclose(image_ratio, line_weights[:, None] * np.ones(16), atol=1e-5):
            axes.append(0)
        elif np.allclose(image_ratio, line_weights[None, :] * np.ones((16, 1)), atol=1e-5):
            axes.append(1)
    assert len(axes) == 16 and set(axes) == {0, 1}  # every image blurred along one axis; both occur

    noise_only = AcquisitionRanges(t2_decay=(0.0, 0.0), partial_fourier_probability=0.0, noise_probability=1.0,
                                   noise_sd=(0.02, 0.02))
    noisy = simulate_acquisition(hr, np.random.default_rng(2), noise_only)
    assert float((noisy - ideal).std()) == pytest.approx(0.02, rel=0.05)


def test_haar_noise_estimate_recovers_white_noise_on_smooth_anatomy():
    rng = np.random.default_rng(3)
    k, j, i = np.meshgrid(np.arange(12), np.linspace(0, 1, 96), np.linspace(0, 1, 96), indexing="ij")
    anatomy = np.where((j - 0.5) ** 2 + (i - 0.5) ** 2 < 0.16, 400 + 100 * np.sin(5 * i + k), 0.0)
    for sd in (4.0, 12.0):
        estimate = haar_noise_sd(anatomy + sd * rng.standard_normal(anatomy.shape), slice_axis=0)
        assert estimate == pytest.approx(sd, rel=0.1)
