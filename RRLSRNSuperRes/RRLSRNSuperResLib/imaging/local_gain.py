"""The local least-squares gain of one image's part against another: where does an estimate agree?

``g(x) = G * (t a)(x) / (G * (a a)(x) + floor)``, ``G`` a Gaussian in the slice plane: the
share of ``a`` (e.g. the detail a network added) that best explains ``t`` (what it should
have added) around each pixel. Pure numerics on ``S x H x W`` stacks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def local_gain(target: np.ndarray, added: np.ndarray, sigma_pixels: float, floor: float = 1e-3) -> np.ndarray:
    """Per-pixel least-squares gain of ``added`` against ``target`` (both ``S x H x W``), smoothed in-plane
    by a Gaussian of ``sigma_pixels``; ``floor`` (a share of the mean energy) keeps it near 0 where
    ``added`` has no energy."""
    sigma = (0.0, sigma_pixels, sigma_pixels)
    agreement = ndimage.gaussian_filter(np.asarray(target, dtype=np.float64) * added, sigma)
    energy = ndimage.gaussian_filter(np.asarray(added, dtype=np.float64) ** 2, sigma)
    return agreement / (energy + floor * max(float(energy.mean()), np.finfo(float).tiny))
