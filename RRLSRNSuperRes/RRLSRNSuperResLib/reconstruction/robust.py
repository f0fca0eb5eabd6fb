"""Robust weights from the residuals: outlier pixels (EM) and corrupted or misplaced slices.

Pixels (Kuklisova-Murgasova et al. 2012): the residual of an inlier is Gaussian N(0, sigma^2),
of an outlier uniform over the intensity range; a few EM steps give each pixel its posterior
probability of being an inlier. Slices: the root-mean-square residual against the prediction;
slices far above the others (robust z-score with the median absolute deviation) are
down-weighted, then rejected. A per-slice intensity scale absorbs the
scanner's slice-to-slice gain changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .observations import Observations

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class RobustSettings:
    """Slices whose residual error has a robust z-score up to ``keep_z`` keep weight 1, from ``reject_z`` on 0."""

    em_iterations: int = 4
    keep_z: float = 3.0
    reject_z: float = 6.0
    relative_spread: float = 0.15
    pixel_tolerance: float = 3.0
    scale_limits: tuple[float, float] = (0.7, 1.4)


def inlier_probabilities(residuals: torch.Tensor, value_range: float, iterations: int,
                         tolerance: float = 1.0) -> torch.Tensor:
    """Posterior inlier probability of each pixel's residual (Gaussian inliers, uniform outliers).

    ``tolerance`` widens the fitted inlier Gaussian for the final posteriors: model error at
    edges is not noise, and cutting those pixels blurs the edges that caused them.
    """
    sigma = MAD_TO_SIGMA * float((residuals - residuals.median()).abs().median()) + 1e-6
    inlier_share = 0.9
    outlier_density = 1.0 / max(value_range, 1e-6)
    probabilities = torch.ones_like(residuals)
    for _ in range(iterations):
        gaussian = torch.exp(-0.5 * (residuals / sigma) ** 2) / (sigma * 2.5066282746)
        probabilities = inlier_share * gaussian / (inlier_share * gaussian + (1 - inlier_share) * outlier_density)
        sigma = float(torch.sqrt((probabilities * residuals**2).sum() / probabilities.sum().clamp(min=1e-6))) + 1e-6
        inlier_share = float(probabilities.mean().clamp(0.05, 0.999))
    sigma *= tolerance
    gaussian = torch.exp(-0.5 * (residuals / sigma) ** 2) / (sigma * 2.5066282746)
    return inlier_share * gaussian / (inlier_share * gaussian + (1 - inlier_share) * outlier_density)


def slice_errors(observations: Observations, residuals: torch.Tensor) -> torch.Tensor:
    """Root-mean-square residual of each slice, (S,)."""
    counts = observations.slice_sums(torch.ones_like(residuals)).clamp(min=1.0)
    return torch.sqrt(observations.slice_sums(residuals**2) / counts)


def slice_weights(errors: torch.Tensor, settings: RobustSettings) -> torch.Tensor:
    """1 for typical slices, falling linearly to 0 between ``keep_z`` and ``reject_z`` robust z-scores above.

    The spread is the errors' median absolute deviation, but at least ``relative_spread`` of their
    median: with near-identical good slices the deviation alone would reject sound ones.
    """
    median = errors.median()
    spread = torch.maximum(MAD_TO_SIGMA * (errors - median).abs().median(), settings.relative_spread * median)
    excess = (errors - median) / spread.clamp(min=1e-12)
    return ((settings.reject_z - excess) / (settings.reject_z - settings.keep_z)).clamp(0.0, 1.0)


def slice_scales(observations: Observations, observed: torch.Tensor, predicted: torch.Tensor,
                 weights: torch.Tensor, limits: tuple[float, float]) -> torch.Tensor:
    """Gain s per slice, observed ~ s * predicted, as a ratio of (weighted) means clipped to ``limits``.

    Means, not least squares: a blurred prediction would bias a least-squares gain.
    """
    sums = observations.slice_sums
    scale = sums(weights * observed) / sums(weights * predicted).clamp(min=1e-12)
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
    residuals = observed - scales[index] * predicted
    probabilities = inlier_probabilities(residuals, value_range, settings.em_iterations, settings.pixel_tolerance)
    weights = slice_weights(slice_errors(observations, residuals), settings)
    pixel_scales = scales[index]
    return RobustWeights(observed / pixel_scales, probabilities * weights[index] * pixel_scales**2, weights, scales)
