"""Robust weights from the residuals: outlier pixels (EM) and corrupted or misplaced slices.

Pixels (Kuklisova-Murgasova et al. 2012): the residual of an inlier is Gaussian N(0, sigma^2),
of an outlier uniform over the intensity range; a few EM steps give each pixel its posterior
probability of being an inlier. Slices: the normalised cross-correlation between a slice and
its prediction; slices far below the others (robust z-score with the median absolute
deviation) are down-weighted, then rejected. A per-slice intensity scale absorbs the
scanner's slice-to-slice gain changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .observations import Observations, segment_sums

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class RobustSettings:
    """Slices with a z-score of their NCC deficit up to ``keep_z`` keep weight 1, from ``reject_z`` weight 0."""

    em_iterations: int = 4
    keep_z: float = 2.5
    reject_z: float = 4.5
    scale_limits: tuple[float, float] = (0.7, 1.4)


def inlier_probabilities(residuals: torch.Tensor, value_range: float, iterations: int) -> torch.Tensor:
    """Posterior inlier probability of each pixel's residual (Gaussian inliers, uniform outliers)."""
    sigma = MAD_TO_SIGMA * float((residuals - residuals.median()).abs().median()) + 1e-6
    inlier_share = 0.9
    outlier_density = 1.0 / max(value_range, 1e-6)
    probabilities = torch.ones_like(residuals)
    for _ in range(iterations):
        gaussian = torch.exp(-0.5 * (residuals / sigma) ** 2) / (sigma * 2.5066282746)
        probabilities = inlier_share * gaussian / (inlier_share * gaussian + (1 - inlier_share) * outlier_density)
        sigma = float(torch.sqrt((probabilities * residuals**2).sum() / probabilities.sum().clamp(min=1e-6))) + 1e-6
        inlier_share = float(probabilities.mean().clamp(0.05, 0.999))
    return probabilities


def slice_correlations(slice_index: torch.Tensor, slice_count: int, observed: torch.Tensor,
                       predicted: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted normalised cross-correlation of each slice with its prediction, (S,) in [-1, 1]; differentiable."""

    def sums(per_pixel: torch.Tensor) -> torch.Tensor:
        return segment_sums(per_pixel, slice_index, slice_count)

    total = sums(weights).clamp(min=1e-6)
    mean_observed = sums(weights * observed) / total
    mean_predicted = sums(weights * predicted) / total
    centred_observed = observed - mean_observed[slice_index]
    centred_predicted = predicted - mean_predicted[slice_index]
    covariance = sums(weights * centred_observed * centred_predicted)
    variances = sums(weights * centred_observed**2) * sums(weights * centred_predicted**2)
    return covariance / torch.sqrt(variances.clamp(min=1e-12))


def slice_weights(correlations: torch.Tensor, settings: RobustSettings) -> torch.Tensor:
    """1 for typical slices, falling linearly to 0 between ``keep_z`` and ``reject_z`` robust z-scores below."""
    median = correlations.median()
    spread = MAD_TO_SIGMA * (correlations - median).abs().median() + 1e-3
    deficit = (median - correlations) / spread
    return ((settings.reject_z - deficit) / (settings.reject_z - settings.keep_z)).clamp(0.0, 1.0)


def slice_scales(observations: Observations, observed: torch.Tensor, predicted: torch.Tensor,
                 weights: torch.Tensor, limits: tuple[float, float]) -> torch.Tensor:
    """Least-squares gain s per slice with observed ~ s * predicted, clipped to ``limits``."""
    sums = observations.slice_sums
    scale = sums(weights * observed * predicted) / sums(weights * predicted**2).clamp(min=1e-12)
    return scale.clamp(*limits)


@dataclass(frozen=True, eq=False)
class RobustWeights:
    """What the next SRR solve uses: observations divided by their slice gain, and pixel weights
    (inlier probability x slice weight x gain^2, so the data term is unchanged by the division)."""

    observed: torch.Tensor  # (P,)
    pixel_weights: torch.Tensor  # (P,)
    slice_weights: torch.Tensor  # (S,)
    slice_scales: torch.Tensor  # (S,)


def uniform_weights(observations: Observations) -> RobustWeights:
    """Every pixel and slice weight 1, no gain correction (before the first prediction, or robustness off)."""
    ones = torch.ones(observations.slice_count, device=observations.values.device)
    return RobustWeights(observations.values, torch.ones_like(observations.values), ones, ones)


def robust_weights(observations: Observations, predicted: torch.Tensor, settings: RobustSettings) -> RobustWeights:
    """Slice gains, pixel inlier probabilities and slice weights from the current prediction ``A x`` (P,)."""
    observed = observations.values
    index = observations.slice_index
    scales = slice_scales(observations, observed, predicted, torch.ones_like(observed), settings.scale_limits)
    value_range = float(observed.max() - observed.min())
    probabilities = inlier_probabilities(observed - scales[index] * predicted, value_range, settings.em_iterations)
    correlations = slice_correlations(index, observations.slice_count, observed, predicted, probabilities)
    weights = slice_weights(correlations, settings)
    pixel_scales = scales[index]
    return RobustWeights(observed / pixel_scales, probabilities * weights[index] * pixel_scales**2, weights, scales)
