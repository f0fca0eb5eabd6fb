"""A thick-slice stack as the reconstruction sees it: voxels, LPS geometry, brain mask, slice profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..imaging.geometry import Geometry


@dataclass(frozen=True)
class Stack:
    """Slices lie along the IJK k axis; arrays are numpy [k, j, i]; geometry in LPS mm."""

    voxels_kji: np.ndarray  # float32
    geometry: Geometry
    mask_kji: np.ndarray | None  # bool, same shape, or None
    thickness_mm: float  # slice profile FWHM
    name: str
