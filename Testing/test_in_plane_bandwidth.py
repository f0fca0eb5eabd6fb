"""Equivalent in-plane bandwidth: exact for an ideal low-pass, blind to added noise."""

from __future__ import annotations

import numpy as np
import pytest
from RRLSRNSuperResLib.evaluation.in_plane_bandwidth import equivalent_bandwidth


def _low_passed(voxels: np.ndarray, axis: int, cutoff: float) -> np.ndarray:
    spectrum = np.fft.fft2(voxels)
    shape = [1, 1, 1]
    shape[axis] = voxels.shape[axis]
    keep = (np.abs(np.fft.fftfreq(voxels.shape[axis])) < cutoff).reshape(shape)
    return np.real(np.fft.ifft2(spectrum * keep))


def test_an_ideal_low_pass_has_its_cutoff_along_its_axis():
    reference = np.random.default_rng(0).normal(size=(3, 40, 60))
    half_band = _low_passed(reference, 2, 0.25)  # along i (numpy axis 2) only
    assert equivalent_bandwidth(half_band, reference, "i") == pytest.approx(0.25, abs=1e-9)
    assert equivalent_bandwidth(reference, reference, "i") == pytest.approx(0.5, abs=1e-9)
    # along j every band loses the half of its (white) power beyond the i cutoff
    assert equivalent_bandwidth(half_band, reference, "j") == pytest.approx(0.25, abs=0.02)


def test_noise_does_not_count_as_bandwidth():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(4, 64, 64))
    noisy = _low_passed(reference, 1, 0.25) + rng.normal(scale=0.5, size=reference.shape)
    assert equivalent_bandwidth(noisy, reference, "j") == pytest.approx(0.25, abs=0.02)
