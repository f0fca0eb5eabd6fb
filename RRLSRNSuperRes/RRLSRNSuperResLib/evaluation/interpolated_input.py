"""Scored on a scanner-interpolated input: does super-resolution add detail the scanner's zero-fill lacks?

The protocol: the HR stack (in-plane sizes cropped to a multiple of 4) is made into what a
scanner reconstructs from a matrix half as fine, by k-space LR followed by zero-fill back to
the HR grid. That interpolated stack is super-resolved as users run it (including the
``acquisition`` handling), the x2 output is band-limited back to the HR grid with the k-space
degradation, and both it and the interpolated stack itself are scored against HR with the
masked PSNR and SSIM of ``metrics``. A positive gain is detail the zero-fill did not hold.

Arrays are numpy [k, j, i]; spacings IJK in mm.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..engine.acquisition import superresolve_acquired
from ..engine.options import DEFAULT_OPTIONS, EngineOptions
from ..errors import Progress
from ..imaging import degrade
from ..imaging.geometry import numpy_axis, slice_axis
from . import metrics

PROTOCOL = ("HR in-plane cropped to a multiple of 4; input = zero-fill x2 of its k-space LR (the HR grid); "
            "output band-limited back to the HR grid by the k-space degradation; scored against HR")


def evaluate_interpolated(hr_voxels_kji: np.ndarray, spacing_ijk, mask_kji: np.ndarray | None = None,
                          options: EngineOptions = DEFAULT_OPTIONS, progress: Progress | None = None) -> dict:
    """PSNR/SSIM of the interpolated input and of the band-limited super-resolved output; the engine runs
    with ``options`` (its ``acquisition`` included, as ``rrlsrn superres`` runs it)."""
    hr_voxels_kji = np.asarray(hr_voxels_kji)
    axis = slice_axis(spacing_ijk, options.plane, size=hr_voxels_kji.shape[::-1])
    through = numpy_axis(axis)
    hr = np.moveaxis(hr_voxels_kji, through, 0).astype(np.float32)
    hr = hr[:, : hr.shape[1] // 4 * 4, : hr.shape[2] // 4 * 4]
    interpolated = degrade.zero_fill_upsample_slices(degrade.downsample_slices(hr, "kspace"))
    result = superresolve_acquired(np.moveaxis(interpolated, 0, through), spacing_ijk,
                                   replace(options, plane="ijk"[axis]), progress=progress)
    restored = degrade.downsample_slices(np.moveaxis(result.voxels, through, 0), "kspace")
    mask = None if mask_kji is None else np.moveaxis(np.asarray(mask_kji) > 0.5, through, 0)[:, : hr.shape[1],
                                                                                          : hr.shape[2]]
    region, peak = metrics.evaluation_region(hr, mask), metrics.data_range(hr)
    psnr = {"interpolated_input": metrics.psnr(hr, interpolated, region, peak),
            "rrlsrn": metrics.psnr(hr, restored, region, peak)}
    ssim = {"interpolated_input": metrics.ssim(hr, interpolated, region, peak),
            "rrlsrn": metrics.ssim(hr, restored, region, peak)}
    return {"slice_axis": "ijk"[axis], "evaluated_shape_shw": list(hr.shape), "acquisition": options.acquisition,
            "region": "dilated brain mask" if mask is not None else "Otsu foreground", "data_range": peak,
            "psnr": psnr, "ssim": ssim, "psnr_gain_db": psnr["rrlsrn"] - psnr["interpolated_input"],
            "ssim_gain": ssim["rrlsrn"] - ssim["interpolated_input"], "notes": list(result.notes),
            "seconds": round(result.seconds, 2)}
