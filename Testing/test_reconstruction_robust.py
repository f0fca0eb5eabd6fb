"""Robust weights: outlier pixels and a corrupted slice are down-weighted, sound ones kept."""

from __future__ import annotations

import numpy as np
import torch
from RRLSRNSuperResLib.reconstruction.robust import RobustSettings, inlier_probabilities, slice_weights


def test_pixels_far_outside_the_noise_are_outliers_and_noise_is_not():
    generator = torch.Generator().manual_seed(0)
    residuals = torch.randn(10000, generator=generator) * 0.05
    residuals[:200] = 0.8  # gross errors, 16 sigma
    probabilities = inlier_probabilities(residuals, value_range=2.0, iterations=4, tolerance=3.0)
    assert float(probabilities[:200].max()) < 0.05
    assert float(probabilities[200:].median()) > 0.95 and float((probabilities[200:] < 0.5).float().mean()) < 0.01


def test_only_slices_far_above_the_typical_error_lose_weight():
    errors = torch.tensor([0.090, 0.092, 0.088, 0.095, 0.091, 0.089, 0.093, 0.150, 0.300], dtype=torch.float64)
    weights = slice_weights(errors, RobustSettings()).numpy()
    np.testing.assert_array_equal(weights[:7], 1.0)  # spread floor: 15% of the median, not the tiny MAD
    assert 0.0 < weights[7] < 1.0 and weights[8] == 0.0
