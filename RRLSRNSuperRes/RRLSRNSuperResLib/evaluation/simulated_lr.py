"""Simulated-LR evaluation: degrade an HR volume x2 (or x4) in-plane, restore it four ways, score each.

The comparison of docs/design.md ("Evaluation conventions"): LR is simulated from HR with the
bicubic or the k-space degradation, then brought back to the HR grid by cubic spline, by
bicubic interpolation, by zero-fill (sinc) interpolation and by the model, and each is scored
against HR with the masked PSNR and SSIM of ``metrics``. Each degradation has its honest
baseline (:data:`REFERENCE_BASELINE`): cubic spline for bicubic LR; for k-space LR zero-fill,
which is what the scanner itself does and the exact inverse of that degradation. The model
runs through ``engine.superresolve`` on the LR *volume*, the code path users run, with the
whole slices and no mask (the normalisation the model was trained with), so the scores
measure what ``rrlsrn superres`` delivers. The engine is told the degradation the LR came
through (``consistency="matched"``): its output is made consistent with the LR under that
degradation, as ``rrlsrn superres`` does under the k-space model of a real acquisition. The
factor is the engine's ``scale``: at 4 the LR is the x1/4 degradation (k-space: the central
quarter per axis; bicubic: antialiased x1/4), the baselines interpolate x4, and the model runs
as the two-level cascade ``rrlsrn superres --scale 4`` runs.

Arrays are numpy; volumes are [k, j, i] (KJI), spacings IJK in mm. Internally the volume is
handled as a stack ``S x H x W`` of slices along the acquisition's slice axis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Dict

import numpy as np
import torch

from ..engine.options import EngineOptions
from ..errors import Progress, UserInputError
from ..imaging import degrade
from ..imaging.geometry import numpy_axis, slice_axis
from . import metrics

METHODS = ("cubic_spline", "bicubic", "sinc", "rrlsrn")
BASELINES = ("cubic_spline", "bicubic", "sinc")
REFERENCE_BASELINE = {"bicubic": "cubic_spline", "kspace": "sinc"}
MATCHED = "matched"  # consistency with the degradation that made the LR
DEGRADATION_DESCRIPTIONS = {
    "bicubic": "torch interpolate x1/f, bicubic, antialias=True, align_corners=False, per slice",
    "kspace": "central 1/f of the 2D spectrum on each axis, +(f-1)/2 HR-pixel phase shift, real part of the "
              "inverse FFT, / f^2",
}
METHOD_DESCRIPTIONS = {
    "cubic_spline": "scipy.ndimage.zoom(lr, f, order=3, mode='reflect', grid_mode=True) per slice",
    "bicubic": "torch interpolate xf, bicubic, align_corners=False",
    "sinc": "zero-fill interpolation: the LR spectrum, -(f-1)/2 HR-pixel phase, zero-padded to the HR size "
            "(the exact inverse of the k-space degradation)",
    "rrlsrn": "engine.superresolve on the LR volume (whole slices, no mask; output made consistent with the LR "
              "under the simulated degradation unless --consistency none; --views self-ensemble views; "
              "--adapt: after adapting to it; at f = 4 two cascaded x2 levels)",
}


@dataclass
class Comparison:
    """HR, simulated LR and the x2 estimates of every method as ``S x H x W`` float32 stacks.

    ``region`` is the boolean set of included pixels (``metrics.evaluation_region``);
    ``slice_axis`` is the IJK axis the stacks were taken along (0=i, 1=j, 2=k);
    ``seconds`` the wall-clock time of each estimate (the model's as the engine reports it).
    """

    hr: np.ndarray
    lr: np.ndarray
    estimates: Dict[str, np.ndarray]
    region: np.ndarray
    slice_axis: int
    degradation: str
    mask_given: bool
    engine: dict = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)


def conventions(degradation: str, scale: int = 2) -> dict:
    """Everything a reader needs to reproduce the numbers: degradation, methods (f = ``scale``), metric rules."""
    return {
        "scale": scale,
        "grid": f"LR pixel j centred on HR pixels {scale}j to {scale}j+{scale - 1} on both in-plane axes",
        "degradation": degradation,
        "degradation_definition": DEGRADATION_DESCRIPTIONS[degradation],
        "methods": METHOD_DESCRIPTIONS,
        "in_plane_crop": f"HR in-plane sizes cropped to multiples of {scale} (last rows/columns dropped)",
        **metrics.conventions(),
    }


def to_slices(volume_kji: np.ndarray, axis_ijk: int, scale: int = 2) -> np.ndarray:
    """Slices along IJK ``axis_ijk`` first, in-plane sizes cropped to multiples of ``scale``: ``S x H x W``."""
    return degrade.crop_to_multiple(np.moveaxis(np.asarray(volume_kji), numpy_axis(axis_ijk), 0), scale)


def lr_spacing(spacing_ijk: tuple[float, float, float], axis_ijk: int,
               scale: int = 2) -> tuple[float, float, float]:
    """Spacing (IJK, mm) of the simulated LR volume: x``scale`` on the two in-plane axes."""
    return tuple(float(s) * (1.0 if axis == axis_ijk else scale) for axis, s in enumerate(spacing_ijk))


def cubic_spline_baseline(lr_slices: np.ndarray, scale: int = 2) -> np.ndarray:
    """Cubic spline x``scale`` of every slice of an ``S x h x w`` stack."""
    return np.stack([degrade.cubic_spline_upsample_slice(s, scale) for s in lr_slices]).astype(np.float32)


def bicubic_baseline(lr_slices: np.ndarray, scale: int = 2) -> np.ndarray:
    """Bicubic x``scale`` (``align_corners=False``) of every slice of an ``S x h x w`` stack."""
    with torch.no_grad():
        lr = torch.from_numpy(np.ascontiguousarray(lr_slices, dtype=np.float32))[:, None]
        return degrade.bicubic_upsample(lr, scale)[:, 0].numpy()


def model_estimate(lr_slices: np.ndarray, spacing_ijk: tuple[float, float, float], axis_ijk: int,
                   options: EngineOptions, progress: Progress | None = None) -> tuple[np.ndarray, dict]:
    """Run the engine on the LR volume (back in KJI order) and return its x2 (x4) slices and run facts."""
    from ..engine.volume import superresolve

    lr_kji = np.moveaxis(lr_slices, 0, numpy_axis(axis_ijk))
    result = superresolve(lr_kji, lr_spacing(spacing_ijk, axis_ijk, options.scale),
                          replace(options, plane="ijk"[axis_ijk]), progress=progress)
    if result.slice_axis != axis_ijk:
        raise RuntimeError(f"engine sliced along IJK axis {result.slice_axis}, evaluation along {axis_ijk}")
    facts = {"device": result.device, "precision": result.precision, "seconds": result.seconds,
             "consistency": options.consistency, "views": options.views, "detail_gain": result.detail_gain,
             "scale": options.scale,
             "notes": list(result.notes)}
    return np.moveaxis(result.voxels, numpy_axis(axis_ijk), 0), facts


def simulate(hr_voxels_kji: np.ndarray, spacing_ijk: tuple[float, float, float], mask_kji: np.ndarray | None = None,
             degradation: str = "bicubic", options: EngineOptions | None = None,
             progress: Progress | None = None) -> Comparison:
    """Degrade HR x2 (``options.scale`` 4: x4) in-plane, restore it with every baseline and the model
    (see module docstring).

    ``options``: how the engine runs the model (its ``plane`` also picks the HR slice axis); None:
    the defaults, the output made consistent with the LR under ``degradation`` (``matched``).
    """
    if degradation not in degrade.DEGRADATIONS:
        raise UserInputError(f"unknown degradation {degradation!r}; choose one of {', '.join(degrade.DEGRADATIONS)}")
    options = options if options is not None else EngineOptions(consistency=degradation)
    hr_voxels_kji = np.asarray(hr_voxels_kji)
    if mask_kji is not None and np.shape(mask_kji) != hr_voxels_kji.shape:
        raise UserInputError(f"mask shape {np.shape(mask_kji)} differs from the volume's {hr_voxels_kji.shape}")
    axis = slice_axis(spacing_ijk, options.plane, size=hr_voxels_kji.shape[::-1])
    scale = options.scale
    hr = to_slices(hr_voxels_kji, axis, scale).astype(np.float32)
    mask = None if mask_kji is None else to_slices(np.asarray(mask_kji) > 0.5, axis, scale)
    lr = degrade.downsample_slices(hr, degradation, scale)
    rrlsrn, engine = model_estimate(lr, spacing_ijk, axis, options, progress)
    estimates, seconds = {}, {}
    for name, baseline in (("cubic_spline", cubic_spline_baseline), ("bicubic", bicubic_baseline),
                           ("sinc", degrade.zero_fill_upsample_slices)):
        started = time.perf_counter()
        estimates[name] = baseline(lr, scale)
        seconds[name] = time.perf_counter() - started
    estimates["rrlsrn"], seconds["rrlsrn"] = rrlsrn, engine["seconds"]
    return Comparison(hr=hr, lr=lr, estimates=estimates, region=metrics.evaluation_region(hr, mask),
                      slice_axis=axis, degradation=degradation, mask_given=mask is not None, engine=engine,
                      seconds=seconds)


def matched_consistency(consistency: str, degradation: str) -> str:
    """The engine's consistency model for LR made by ``degradation`` (``matched``: that degradation)."""
    return degradation if consistency == MATCHED else consistency


def score(comparison: Comparison) -> dict:
    """PSNR (dB) and SSIM of each method against HR, and the model's gains over the baselines.

    ``reference_baseline`` names the baseline the degradation is fairly compared with.
    """
    peak = metrics.data_range(comparison.hr)
    region = comparison.region
    psnr = {name: metrics.psnr(comparison.hr, comparison.estimates[name], region, peak) for name in METHODS}
    ssim = {name: metrics.ssim(comparison.hr, comparison.estimates[name], region, peak) for name in METHODS}
    return {
        "slice_axis": "ijk"[comparison.slice_axis],
        "evaluated_shape_shw": list(comparison.hr.shape),
        "degradation": comparison.degradation,
        "reference_baseline": REFERENCE_BASELINE[comparison.degradation],
        "region": "dilated brain mask" if comparison.mask_given else "Otsu foreground",
        "data_range": peak,
        "included_slices": int(region.any(axis=(1, 2)).sum()),
        "included_pixels": int(region.sum()),
        "psnr": psnr,
        "ssim": ssim,
        "psnr_gain_db": {f"over_{name}": psnr["rrlsrn"] - psnr[name] for name in BASELINES},
        "ssim_gain": {f"over_{name}": ssim["rrlsrn"] - ssim[name] for name in BASELINES},
        "engine": comparison.engine,
    }


def evaluate_volume(hr_voxels_kji: np.ndarray, spacing_ijk: tuple[float, float, float],
                    mask_kji: np.ndarray | None = None, degradation: str = "bicubic",
                    options: EngineOptions | None = None, progress: Progress | None = None) -> dict:
    """Simulated-LR scores of one HR volume (KJI voxels, IJK spacing in mm); see ``score``.

    ``mask_kji`` (same shape, > 0.5 is brain) selects the region, else the Otsu foreground;
    ``options`` as for ``simulate``. Use ``simulate`` and ``score`` separately to keep the image
    stacks (e.g. for a figure).
    """
    return score(simulate(hr_voxels_kji, spacing_ijk, mask_kji, degradation, options, progress))
