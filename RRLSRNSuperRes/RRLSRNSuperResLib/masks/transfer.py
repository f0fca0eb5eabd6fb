"""Masks moved between grids: the input stack's and the x2 (or x4) super-resolution grid."""

from __future__ import annotations

import numpy as np

from ..imaging.geometry import numpy_axis


def mask_to_upsampled_grid(mask_kji: np.ndarray, slice_axis: int, scale: int = 2) -> np.ndarray:
    """A 0/1 mask on the x``scale`` super-resolution grid (``geometry.upsampled_geometry``).

    On that grid output voxels ``scale n`` to ``scale n + scale - 1`` along an upsampled axis all
    lie inside input voxel n (at x2 their centres are at n - 1/4 and n + 1/4), so nearest-neighbour
    upsampling is exact: ``np.repeat`` by ``scale`` along the two in-plane numpy axes. ``slice_axis``
    is the IJK axis (0=i, 1=j, 2=k) that keeps its size; the result is numpy KJI like the input.
    """
    through = numpy_axis(slice_axis)
    upsampled = np.asarray(mask_kji)
    for axis in (a for a in range(3) if a != through):
        upsampled = np.repeat(upsampled, scale, axis=axis)
    return upsampled
