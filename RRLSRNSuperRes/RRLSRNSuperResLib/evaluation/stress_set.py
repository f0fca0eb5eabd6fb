"""The stress set: smooth, high-SNR, well-resolved fetal stacks on which a network may invent detail.

Issue 27: on a smooth clinical fetal stack (0.78 mm pixels, 142 x 142 x 32, LR 71 wide) the
default engine lost to zero-fill (sinc) on k-space LR. The developers' stacks (1.125 mm,
noisy) do not show it, so this set makes stacks like that one from openly licensed MRI:

- slices of 3D fetal reconstructions and atlas volumes: resampled to ``IN_PLANE_MM`` in-plane,
  ``SLICE_MM`` thick (a box slice profile: consecutive thin slices averaged), cropped around
  the brain to an HR size whose LR is odd (142 -> 71) or even (140 -> 70, 136 -> 68);
- clinical MIALSRTK stacks, denoised in-plane (Gaussian), so they are smooth and high-SNR, and
  zero-fill interpolated to 0.78 mm pixels as scanners deliver them (no detail beyond the
  acquired 1.125 mm: the network must not invent it);
- noisier variants (Rician noise, SD a fraction of the brain median).

Everything here is a function of arrays (numpy ``[k, j, i]``, spacings IJK in mm); the
``rrlsrn stress-set`` command reads the shared files and writes the stacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from ..imaging.degrade import fourier_resample_slices
from ..imaging.geometry import numpy_axis

IN_PLANE_MM = 0.8
SLICE_MM = 3.2
ODD_LR_SIZE = 142  # HR in-plane size whose k-space LR is 71 wide, the width of a clinical stack that lost to zero-fill
MIN_BRAIN_SHARE = 0.02  # slices with less brain than this are left out of a stack


@dataclass(frozen=True)
class StressStack:
    """One HR stack of the set (KJI voxels, IJK spacing in mm, brain mask on the same grid)."""

    name: str
    voxels: np.ndarray
    spacing_ijk: tuple[float, float, float]
    mask: np.ndarray


def thick_slices(volume_kji: np.ndarray, spacing_ijk, through_ijk: int, in_plane_mm: float = IN_PLANE_MM,
                 slice_mm: float = SLICE_MM) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A thick-slice stack cut from a 3D volume: slices along IJK ``through_ijk``, ``slice_mm`` thick.

    In-plane axes are resampled to ``in_plane_mm`` (cubic spline) when their spacing differs by
    over 1%; the slices are averages of consecutive thin slices (a box profile), so the through
    spacing is ``round(slice_mm / spacing) * spacing``. Returns KJI voxels (float32) and IJK spacing.
    """
    volume = np.asarray(volume_kji, dtype=np.float32)
    zoom = [1.0, 1.0, 1.0]
    spacing = list(map(float, spacing_ijk))
    for axis_ijk in range(3):
        if axis_ijk != through_ijk and abs(spacing[axis_ijk] / in_plane_mm - 1) > 0.01:
            zoom[numpy_axis(axis_ijk)] = spacing[axis_ijk] / in_plane_mm
            spacing[axis_ijk] = in_plane_mm
    if zoom != [1.0, 1.0, 1.0]:
        volume = ndimage.zoom(volume, zoom, order=3, mode="nearest", grid_mode=True).astype(np.float32)
    group = max(1, int(round(slice_mm / spacing[through_ijk])))
    through = numpy_axis(through_ijk)
    slices = np.moveaxis(volume, through, 0)
    count = len(slices) // group
    thick = slices[: count * group].reshape(count, group, *slices.shape[1:]).mean(axis=1)
    spacing[through_ijk] *= group
    return np.moveaxis(thick, 0, through).astype(np.float32), (spacing[0], spacing[1], spacing[2])


def crop_around_brain(voxels_kji: np.ndarray, mask_kji: np.ndarray, through_ijk: int,
                      size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size x size`` in-plane around the mask's box centre (zero-padded where the view ends),
    keeping only slices with at least ``MIN_BRAIN_SHARE`` of the brain's largest slice."""
    through = numpy_axis(through_ijk)
    slices = np.moveaxis(np.asarray(voxels_kji, dtype=np.float32), through, 0)
    masks = np.moveaxis(np.asarray(mask_kji) > 0, through, 0)
    area = masks.sum(axis=(1, 2))
    keep = area >= MIN_BRAIN_SHARE * max(area.max(), 1)
    slices, masks = slices[keep], masks[keep]
    rows, cols = np.flatnonzero(masks.any(axis=(0, 2))), np.flatnonzero(masks.any(axis=(0, 1)))
    top = (rows[0] + rows[-1] + 1) // 2 - size // 2
    left = (cols[0] + cols[-1] + 1) // 2 - size // 2
    padding = ((0, 0), (max(-top, 0), size), (max(-left, 0), size))
    top, left = max(top, 0), max(left, 0)  # in the padded arrays
    window = (slice(None), slice(top, top + size), slice(left, left + size))
    out_v = np.pad(slices, padding)[window]
    out_m = np.pad(masks, padding)[window].astype(np.uint8)
    return np.moveaxis(out_v, 0, through), np.moveaxis(out_m, 0, through)


def interpolate_in_plane(voxels_kji: np.ndarray, mask_kji: np.ndarray, spacing_ijk, through_ijk: int,
                         pixel_mm: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Zero-fill (sinc) interpolation of each slice to about ``pixel_mm`` pixels over the same field of
    view, as a scanner reconstructs onto a finer matrix (the mask: interpolated, > 0.5)."""
    through = numpy_axis(through_ijk)
    slices = np.moveaxis(np.asarray(voxels_kji, dtype=np.float32), through, 0)
    in_plane = [axis for axis in range(3) if axis != through_ijk]  # IJK; numpy columns run along in_plane[0]
    spacing = list(map(float, spacing_ijk))
    size = tuple(int(round(n * spacing[axis] / pixel_mm)) for n, axis in zip(slices.shape[1:], in_plane[::-1]))
    for n, new, axis in zip(slices.shape[1:], size, in_plane[::-1]):
        spacing[axis] *= n / new
    voxels = fourier_resample_slices(slices, size)
    mask = fourier_resample_slices(np.moveaxis(np.asarray(mask_kji, dtype=np.float32), through, 0), size) > 0.5
    return np.moveaxis(voxels, 0, through), np.moveaxis(mask, 0, through), (spacing[0], spacing[1], spacing[2])


def denoise_in_plane(voxels_kji: np.ndarray, through_ijk: int, sigma_pixels: float) -> np.ndarray:
    """Gaussian smoothing in the slice plane only: a smooth, high-SNR version of a clinical stack."""
    sigma = [sigma_pixels] * 3
    sigma[numpy_axis(through_ijk)] = 0.0
    return ndimage.gaussian_filter(np.asarray(voxels_kji, dtype=np.float32), sigma, mode="nearest")


def add_rician_noise(voxels_kji: np.ndarray, mask_kji: np.ndarray, fraction: float,
                     rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of SD ``fraction`` x the brain median."""
    rng = rng or np.random.default_rng(0)
    voxels = np.asarray(voxels_kji, dtype=np.float64)
    sd = fraction * float(np.median(voxels[np.asarray(mask_kji) > 0]))
    real = voxels + rng.normal(0.0, sd, voxels.shape)
    imaginary = rng.normal(0.0, sd, voxels.shape)
    return np.hypot(real, imaginary).astype(np.float32)
