"""A stack of thick 2D slices with its header geometry, mask and slice thickness.

Slices always lie along the IJK ``k`` axis (numpy axis 0 of ``voxels_kji``). Files sliced along
``i`` or ``j`` are brought to that layout by :func:`stack_from_image`, which permutes the axes
(columns of the direction matrix with them) so every voxel keeps its exact physical position.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import UserInputError
from ..imaging.geometry import Geometry, numpy_axis, slice_axis, upsampled_geometry
from ..masks.transfer import mask_to_upsampled_grid

MIN_STACKS = 2
# In-plane PSF FWHM of a stack made x2 in-plane, as a fraction of the acquired stack's. Zero-fill adds no
# frequency beyond the acquired band: 1. RRLSRN restores part of the band beyond it: its equivalent
# bandwidth per in-plane axis (``evaluation.in_plane_bandwidth``) is 0.279-0.293 cycles per x2 pixel
# against 0.250-0.253 for zero-fill (noise-free and 2%-noise stacks simulated from the GA28 spina-bifida
# atlas, not an evaluation volume), so its PSF is 0.86-0.89 as wide: 0.9 to one digit. Modelling it by
# the x2 pixel (0.5) claims detail it lacks.
ZERO_FILL_PSF_FRACTION = 1.0
RRLSRN_PSF_FRACTION = 0.9


@dataclass(frozen=True, eq=False)
class Stack:
    """Voxels (float32, numpy [k, j, i]), LPS geometry, optional brain mask, slice profile FWHM (mm)."""

    voxels_kji: np.ndarray
    geometry: Geometry
    mask_kji: Optional[np.ndarray] = None
    thickness_mm: Optional[float] = None  # None: the slice spacing
    name: str = field(default="stack")
    in_plane_psf_mm: Optional[tuple[float, float]] = None  # in-plane PSF FWHM (mm) along i, j; None: the spacing

    def __post_init__(self) -> None:
        voxels = np.asarray(self.voxels_kji, dtype=np.float32)
        if voxels.ndim != 3:
            raise UserInputError(f"{self.name}: a stack must be a 3D volume, this one has {voxels.ndim} dimensions")
        if tuple(reversed(voxels.shape)) != tuple(self.geometry.size):
            raise ValueError(f"{self.name}: voxels {voxels.shape} (KJI) do not match size {self.geometry.size} (IJK)")
        object.__setattr__(self, "voxels_kji", voxels)
        if self.mask_kji is not None:
            mask = np.asarray(self.mask_kji) > 0
            if mask.shape != voxels.shape:
                raise UserInputError(f"{self.name}: the mask's grid {mask.shape} differs from the stack's")
            object.__setattr__(self, "mask_kji", mask)
        if self.thickness_mm is None:
            object.__setattr__(self, "thickness_mm", float(self.geometry.spacing[2]))
        if not self.thickness_mm > 0:
            raise UserInputError(f"{self.name}: slice thickness must be positive, not {self.thickness_mm}")
        if self.in_plane_psf_mm is None:
            object.__setattr__(self, "in_plane_psf_mm", tuple(float(s) for s in self.geometry.spacing[:2]))

    @property
    def slice_count(self) -> int:
        return int(self.voxels_kji.shape[0])

    def brain_mask(self) -> np.ndarray:
        """The mask, or every voxel when none was given."""
        return self.mask_kji if self.mask_kji is not None else np.ones(self.voxels_kji.shape, dtype=bool)


def stack_from_image(image: sitk.Image, mask: Union[sitk.Image, np.ndarray, None] = None,
                     thickness: Optional[float] = None, name: str = "stack") -> Stack:
    """A :class:`Stack` from a 3D SimpleITK image (LPS), its slices moved to the ``k`` axis.

    ``mask`` is an image on the same grid or a KJI array of the image's shape.
    """
    if image.GetDimension() != 3:
        raise UserInputError(f"{name}: a stack must be a 3D volume, this one is {image.GetDimension()}D")
    voxels = sitk.GetArrayFromImage(image)
    geometry = Geometry(size=tuple(image.GetSize()), spacing=tuple(image.GetSpacing()),
                        origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()))
    return stack_from_arrays(voxels, geometry, _mask_array(mask, voxels.shape, name), thickness, name)


def stack_from_arrays(voxels_kji: np.ndarray, geometry: Geometry, mask_kji: Optional[np.ndarray] = None,
                      thickness: Optional[float] = None, name: str = "stack") -> Stack:
    """A :class:`Stack` from voxels (numpy [k, j, i]) on ``geometry`` (LPS), its slices moved to the ``k`` axis.

    The slice axis is ``imaging.geometry.slice_axis`` (the thickest, or the one across square
    pixels); the axes are permuted with the direction's columns, so every voxel keeps its position.
    """
    size = tuple(geometry.size)
    if np.ndim(voxels_kji) != 3:
        raise UserInputError(f"{name}: a stack must be a 3D volume, this one has {np.ndim(voxels_kji)} dimensions")
    if min(size) < 2:
        raise UserInputError(f"{name}: a stack needs at least 2 slices and 2x2 pixels, this one is {size}; "
                             "give a 3D stack, not a single 2D slice")
    axis = slice_axis(geometry.spacing, "auto", size)
    order_ijk = [a for a in range(3) if a != axis] + [axis]  # new i, j, k as old IJK axes
    order_numpy = [numpy_axis(a) for a in reversed(order_ijk)]  # new numpy [k, j, i] from old numpy axes
    permuted = Geometry(
        size=tuple(size[a] for a in order_ijk),
        spacing=tuple(geometry.spacing[a] for a in order_ijk),
        origin=geometry.origin,
        direction=tuple(geometry.direction_matrix[:, order_ijk].ravel()),
    )
    voxels = np.ascontiguousarray(np.transpose(np.asarray(voxels_kji, dtype=np.float32), order_numpy))
    mask = None if mask_kji is None else np.ascontiguousarray(np.transpose(np.asarray(mask_kji) > 0, order_numpy))
    return Stack(voxels, permuted, mask, thickness, name)


def _mask_array(mask: Union[sitk.Image, np.ndarray, None], shape: tuple[int, ...], name: str) -> Optional[np.ndarray]:
    if mask is None:
        return None
    array = sitk.GetArrayFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask)
    if array.shape != shape:
        raise UserInputError(f"{name}: the mask's grid {array.shape[::-1]} differs from the stack's {shape[::-1]}")
    return array > 0


def validate_stacks(stacks: Sequence[Stack]) -> None:
    """One-line :class:`UserInputError` for inputs no reconstruction can use."""
    if len(stacks) < MIN_STACKS:
        raise UserInputError(f"a 3D reconstruction needs at least {MIN_STACKS} stacks (got {len(stacks)}); "
                             "give stacks in several orientations")
    for stack in stacks:
        if stack.mask_kji is not None and not stack.mask_kji.any():
            raise UserInputError(f"{stack.name}: the brain mask is empty; give a mask that covers the brain")
        if not np.isfinite(stack.voxels_kji).all():
            raise UserInputError(f"{stack.name}: the stack holds NaN or Inf values; replace them first")


def crop_to_mask(stack: Stack, margin_mm: float) -> Stack:
    """The stack cut in-plane to its mask's bounding box plus ``margin_mm``; every slice is kept (k unchanged).

    The origin moves to the first kept voxel so physical positions are unchanged.
    """
    mask = stack.brain_mask()
    spacing_kji = np.asarray(stack.geometry.spacing[::-1])
    margin = np.ceil(margin_mm / spacing_kji).astype(int)
    present = np.argwhere(mask)
    low = np.maximum(present.min(axis=0) - margin, 0)
    high = np.minimum(present.max(axis=0) + margin + 1, mask.shape)
    low[0], high[0] = 0, mask.shape[0]
    box = tuple(slice(a, b) for a, b in zip(low, high))
    origin = stack.geometry.index_to_physical(low[::-1].astype(float))[0]
    geometry = replace(stack.geometry, size=tuple(int(s) for s in (high - low)[::-1]), origin=tuple(origin))
    cropped_mask = None if stack.mask_kji is None else stack.mask_kji[box]
    return replace(stack, voxels_kji=stack.voxels_kji[box], geometry=geometry, mask_kji=cropped_mask)


def on_x2_grid(stack: Stack, voxels_kji: np.ndarray, suffix: str, psf_fraction: float) -> Stack:
    """``stack`` made x2 in-plane (by RRLSRN or an interpolation) with these voxels: the exact x2 grid of
    ``imaging.geometry`` (slices, thickness and positions unchanged), the mask carried over, and an in-plane
    PSF ``psf_fraction`` times the acquired one (the detail the x2 voxels really carry, not their pixel)."""
    mask = None if stack.mask_kji is None else mask_to_upsampled_grid(stack.mask_kji, 2).astype(bool)
    return Stack(voxels_kji=voxels_kji, geometry=upsampled_geometry(stack.geometry, 2), mask_kji=mask,
                 thickness_mm=stack.thickness_mm, name=f"{stack.name}-{suffix}",
                 in_plane_psf_mm=tuple(psf_fraction * fwhm for fwhm in stack.in_plane_psf_mm))
