"""Point spread function quadrature of a slice: Gaussian slice profile and in-plane pixel PSF.

A slice pixel is the volume averaged by a 3D Gaussian aligned with the stack's axes:
FWHM = slice thickness along the slice normal and FWHM = pixel size in-plane. We sample it
at ``Q`` points (offsets in mm, LPS, in the slice's nominal frame) with normalised weights;
trilinear interpolation of the volume between them is the remaining smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
TRUNCATION_SIGMAS = 2.0


@dataclass(frozen=True)
class PsfSampling:
    """How densely the PSF is sampled: ``z_step_mm`` along the slice normal; in-plane samples
    (3 Gauss-Hermite points per axis) only where the pixel's sigma exceeds ``inplane_sigma_mm``."""

    z_step_mm: float
    inplane_sigma_mm: float


def gaussian_samples(sigma: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and normalised weights of a Gaussian sampled every <= ``step`` over +-2 sigma (odd count)."""
    count = int(np.ceil(2 * TRUNCATION_SIGMAS * sigma / step)) + 1
    count += 1 - count % 2
    offsets = np.linspace(-TRUNCATION_SIGMAS * sigma, TRUNCATION_SIGMAS * sigma, count) if count > 1 else np.zeros(1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return offsets, weights / weights.sum()


def gauss_hermite_3(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Three points that integrate polynomials up to degree 5 against a Gaussian exactly."""
    return np.array([-np.sqrt(3.0) * sigma, 0.0, np.sqrt(3.0) * sigma]), np.array([1.0, 4.0, 1.0]) / 6.0


def stack_psf(pixel_mm: tuple[float, float], thickness_mm: float, direction: np.ndarray,
              sampling: PsfSampling) -> tuple[np.ndarray, np.ndarray]:
    """PSF offsets (Q, 3) in LPS mm and weights (Q,) for a stack with IJK ``direction`` (3x3 columns)."""
    axes = []
    for size in pixel_mm:
        sigma = size * FWHM_TO_SIGMA
        axes.append(gauss_hermite_3(sigma) if sigma > sampling.inplane_sigma_mm else (np.zeros(1), np.ones(1)))
    axes.append(gaussian_samples(thickness_mm * FWHM_TO_SIGMA, sampling.z_step_mm))
    grids = np.meshgrid(*[offsets for offsets, _ in axes], indexing="ij")
    weight_grids = np.meshgrid(*[weights for _, weights in axes], indexing="ij")
    local = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.prod(np.stack([w.ravel() for w in weight_grids], axis=1), axis=1)
    return local @ np.asarray(direction, dtype=float).T, weights
