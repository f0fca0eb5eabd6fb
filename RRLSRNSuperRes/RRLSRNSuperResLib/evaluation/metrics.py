"""PSNR and SSIM inside the brain, and a summary with a 95% confidence interval (docs/design.md contract).

All functions take stacks of 2D slices, ``S x H x W`` with the slice axis first (the caller
moves the acquisition's slice axis there), so that "in-plane" always means the last two axes.
Intensities are in the HR volume's own units; PSNR is in dB.

Conventions, as named constants so reports can quote them:

- the region is the brain mask dilated by ``MASK_DILATION_PIXELS`` in-plane (2D, per slice:
  the slices of a fetal stack are acquired, and misregistered, independently), or, without a
  mask, the foreground above the Otsu threshold;
- ``BORDER_PIXELS`` are shaved off each in-plane edge (interpolators differ most there and the
  brain is never there);
- slices whose region covers under ``MIN_SLICE_FRACTION`` of the slice are skipped (a sliver of
  brain gives a noisy, unrepresentative score);
- the data range is HR max - min of the whole volume, so PSNR is comparable between methods
  of one volume (the gain in dB between two methods does not depend on it);
- PSNR pools the squared error over all included pixels of the volume; SSIM uses Gaussian
  weights (sigma ``SSIM_SIGMA``, population covariance, as in Wang et al. 2004) on each full 2D
  slice and averages the SSIM map over the same included pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import UserInputError

MASK_DILATION_PIXELS = 3
BORDER_PIXELS = 4
MIN_SLICE_FRACTION = 0.02
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # an 11-tap window at sigma 1.5, as Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03
CONFIDENCE = 0.95


def conventions() -> dict:
    """The metric conventions, for the JSON reports."""
    return {
        "region": "brain mask dilated in-plane (2D disk), else foreground above the Otsu threshold",
        "mask_dilation_pixels": MASK_DILATION_PIXELS,
        "border_pixels": BORDER_PIXELS,
        "min_slice_fraction": MIN_SLICE_FRACTION,
        "data_range": "HR max - min of the volume",
        "psnr": "pooled over all included pixels of the volume",
        "ssim": {"gaussian_weights": True, "sigma": SSIM_SIGMA, "truncate": SSIM_TRUNCATE, "k1": SSIM_K1,
                 "k2": SSIM_K2, "use_sample_covariance": False,
                 "pooling": "SSIM map of each full slice averaged over the included pixels"},
        "confidence": CONFIDENCE,
    }


def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint of ``radius`` pixels."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def dilate_in_plane(mask_slices: np.ndarray, radius: int = MASK_DILATION_PIXELS) -> np.ndarray:
    """Dilate each slice of a boolean ``S x H x W`` stack by a 2D disk (never across slices)."""
    from scipy import ndimage

    mask = np.asarray(mask_slices, dtype=bool)
    if radius <= 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=disk(radius)[None])


def foreground_mask(hr_slices: np.ndarray) -> np.ndarray:
    """Voxels above the Otsu threshold of the volume: the region when no brain mask is given."""
    from ..imaging.intensity import foreground_threshold

    return np.asarray(hr_slices) > foreground_threshold(hr_slices)


def shave_border(mask_slices: np.ndarray, border: int = BORDER_PIXELS) -> np.ndarray:
    """Clear ``border`` pixels at each in-plane edge of a boolean stack."""
    shaved = np.zeros_like(mask_slices, dtype=bool)
    h, w = mask_slices.shape[-2:]
    if h > 2 * border and w > 2 * border:
        shaved[:, border : h - border, border : w - border] = mask_slices[:, border : h - border, border : w - border]
    return shaved


def skip_small_slices(mask_slices: np.ndarray, min_fraction: float = MIN_SLICE_FRACTION) -> np.ndarray:
    """Clear slices whose region covers less than ``min_fraction`` of the slice area (H x W)."""
    fractions = mask_slices.reshape(mask_slices.shape[0], -1).mean(axis=1)
    return mask_slices & (fractions >= min_fraction)[:, None, None]


def evaluation_region(hr_slices: np.ndarray, mask_slices: np.ndarray | None = None) -> np.ndarray:
    """The included pixels: dilated mask (or foreground), border shaved, small slices skipped."""
    if mask_slices is None:
        region = foreground_mask(hr_slices)
    else:
        if np.shape(mask_slices) != np.shape(hr_slices):
            raise ValueError(f"mask shape {np.shape(mask_slices)} differs from image shape {np.shape(hr_slices)}")
        region = dilate_in_plane(mask_slices)
    return skip_small_slices(shave_border(region))


def data_range(hr_slices: np.ndarray) -> float:
    """HR max - min of the volume (the PSNR peak); 1 for a constant volume, which has no range."""
    values = np.asarray(hr_slices, dtype=np.float64)
    span = float(values.max() - values.min())
    return span if span > 0 else 1.0


def check_region(region: np.ndarray) -> None:
    """An empty region (an empty or misplaced mask) cannot be scored: say so, the user can fix it."""
    if not np.any(region):
        raise UserInputError(
            f"no slice has {MIN_SLICE_FRACTION:.0%} of its area in the brain mask or foreground; "
            "check that the mask belongs to this volume and is not empty"
        )


def psnr(hr_slices: np.ndarray, estimate_slices: np.ndarray, region: np.ndarray, peak: float) -> float:
    """PSNR in dB of the squared error pooled over the ``region`` pixels; inf when identical."""
    check_region(region)
    error = np.asarray(estimate_slices, dtype=np.float64)[region] - np.asarray(hr_slices, dtype=np.float64)[region]
    mse = float(np.mean(error**2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def ssim_map(hr_slice: np.ndarray, estimate_slice: np.ndarray, peak: float) -> np.ndarray:
    """SSIM map of one full 2D slice: Gaussian window (sigma 1.5), population covariance.

    Wang et al. 2004 with the window of scikit-image's ``structural_similarity(...,
    gaussian_weights=True, use_sample_covariance=False, full=True)`` (truncated at 3.5 sigma,
    reflecting edges), written with scipy because Slicer's Python has no scikit-image.
    """
    from scipy import ndimage

    x = np.asarray(hr_slice, dtype=np.float64)
    y = np.asarray(estimate_slice, dtype=np.float64)

    def window(values: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(values, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)

    mean_x, mean_y = window(x), window(y)
    var_x = window(x * x) - mean_x * mean_x
    var_y = window(y * y) - mean_y * mean_y
    cov_xy = window(x * y) - mean_x * mean_y
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    return ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))


def ssim(hr_slices: np.ndarray, estimate_slices: np.ndarray, region: np.ndarray, peak: float) -> float:
    """Mean SSIM over the ``region`` pixels, the map computed per slice on the full slice."""
    check_region(region)
    total, count = 0.0, 0
    for index in np.flatnonzero(region.any(axis=(1, 2))):
        inside = region[index]
        total += float(ssim_map(hr_slices[index], estimate_slices[index], peak)[inside].sum())
        count += int(inside.sum())
    return total / count


def summarise(values: Sequence[float]) -> dict:
    """Mean, sample SD and t-distribution 95% CI of the mean; SD and CI are None below 2 values."""
    from scipy import stats

    data = np.asarray(values, dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return {"mean": None, "sd": None, "ci95_low": None, "ci95_high": None, "n": 0}
    mean = float(data.mean())
    if n < 2:
        return {"mean": mean, "sd": None, "ci95_low": None, "ci95_high": None, "n": n}
    sd = float(data.std(ddof=1))
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sd / math.sqrt(n)) if sd > 0 else (mean, mean)
    return {"mean": mean, "sd": sd, "ci95_low": float(low), "ci95_high": float(high), "n": n}

