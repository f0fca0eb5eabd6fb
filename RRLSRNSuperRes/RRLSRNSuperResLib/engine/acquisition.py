"""Super-resolution of scanner-interpolated stacks on the grid they were acquired on.

A stack zero-fill interpolated by the scanner has no detail at its finest scale. The network
looks for missing detail one octave below its input's Nyquist, so on such a stack it finds
none. With ``EngineOptions.acquisition="auto"`` an interpolated stack (see ``imaging.bandwidth``) is brought
down to its acquisition matrix by k-space cropping (which loses nothing: that band is
empty), super-resolved there, and zero-filled to the promised x2 (or x4) grid of the input. The
output grid contract of ``engine.volume.superresolve`` does not change.

Only stacks interpolated on both in-plane axes are handled this way (the scanner's
reconstruction-matrix zero-fill). A band that ends early on one axis only (a reduced
phase-encoding matrix) is named in a note and processed as it is: the network was trained
on square acquisition pixels.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..errors import Progress
from ..imaging.bandwidth import INTERPOLATED_FACTOR, InPlaneBandwidth, estimate_bandwidth
from ..imaging.degrade import fourier_resample_slices
from ..imaging.geometry import numpy_axis, slice_axis
from ..imaging.intensity import cast_to
from .options import DEFAULT_OPTIONS, EngineOptions
from .volume import SuperResolutionResult, superresolve


def superresolve_acquired(voxels_kji: np.ndarray, spacing_ijk, options: EngineOptions = DEFAULT_OPTIONS, *,
                          mask_kji: np.ndarray | None = None, progress: Progress | None = None,
                          output_dtype=None) -> SuperResolutionResult:
    """``engine.volume.superresolve``, on the acquisition grid when the stack is interpolated.

    ``options.acquisition``: ``auto`` (default) detects scanner interpolation; ``as-is`` runs the
    network on the grid as given. The other options and keywords are ``superresolve``'s.
    """
    voxels = np.asarray(voxels_kji)
    axis = slice_axis(spacing_ijk, options.plane, size=voxels.shape[::-1])
    options = replace(options, plane="ijk"[axis])
    if options.acquisition == "as-is" or voxels.ndim != 3:
        return superresolve(voxels, spacing_ijk, options, mask_kji=mask_kji, progress=progress,
                            output_dtype=output_dtype)
    band = estimate_bandwidth(voxels, spacing_ijk, axis)
    if not (band.measured and min(band.factors) >= INTERPOLATED_FACTOR):
        result = superresolve(voxels, spacing_ijk, options, mask_kji=mask_kji, progress=progress,
                              output_dtype=output_dtype)
        if band.interpolated:
            result.notes.insert(0, f"{band.describe()}: processed as given")
        return result
    return _on_acquisition_grid(voxels, spacing_ijk, axis, band, options, mask_kji, progress, output_dtype)


def _on_acquisition_grid(voxels: np.ndarray, spacing_ijk, axis: int, band: InPlaneBandwidth, options: EngineOptions,
                         mask: np.ndarray | None, progress: Progress | None, output_dtype) -> SuperResolutionResult:
    started = time.monotonic()
    through = numpy_axis(axis)
    slices = np.moveaxis(voxels, through, 0)
    height, width = slices.shape[1:]
    # numpy rows run along the in-plane IJK axis band.axes[1], columns along band.axes[0].
    acquired_size = (band.acquisition_sizes[1], band.acquisition_sizes[0])
    acquired = np.moveaxis(fourier_resample_slices(slices, acquired_size), 0, through)
    acquired_spacing = list(spacing_ijk)
    for in_plane, size, acquired_pixels in zip(band.axes, band.sizes, band.acquisition_sizes):
        acquired_spacing[in_plane] = spacing_ijk[in_plane] * size / acquired_pixels
    if mask is not None:
        mask = np.moveaxis(_nearest_slices(np.moveaxis(np.asarray(mask) > 0, through, 0), acquired_size), 0, through)
    result = superresolve(acquired, tuple(acquired_spacing), options, mask_kji=mask, progress=progress)
    factor = options.scale
    upsampled = fourier_resample_slices(np.moveaxis(result.voxels, through, 0), (factor * height, factor * width))
    output = np.moveaxis(upsampled, 0, through)
    note = (f"{band.describe()}: super-resolved on its {acquired_size[1]} x {acquired_size[0]} acquisition grid, "
            f"then zero-filled to the x{factor} grid ({factor * width} x {factor * height})")
    return SuperResolutionResult(cast_to(output, output_dtype), axis, result.device, time.monotonic() - started,
                                 result.scale, [note] + result.notes, result.precision, result.detail_gain)


def _nearest_slices(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask on the acquisition grid: each pixel takes the input pixel nearest its centre."""
    rows = np.minimum(((np.arange(size[0]) + 0.5) * mask.shape[1] / size[0]).astype(int), mask.shape[1] - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * mask.shape[2] / size[1]).astype(int), mask.shape[2] - 1)
    return mask[:, rows][:, :, cols]
