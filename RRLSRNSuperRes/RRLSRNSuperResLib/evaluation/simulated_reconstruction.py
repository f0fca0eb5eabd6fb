"""One volume of ``rrlsrn evaluate-reconstruction``: simulate stacks, reconstruct each variant, score all methods.

Methods: the reconstruction (motion correction on, stacks as simulated), the same without motion
correction, optionally with the RRLSRN x2 in-plane step on each stack first (the engine, k-space
consistency) and, as its control, with zero-fill (sinc) x2 instead: the reconstruction gains from
finer stack pixels alone, so RRLSRN's own share is its gain over zero-fill. Plus the baselines of
``evaluation.reconstruction``. Gains are PSNR differences (dB) over the naive fusion of the stacks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..reconstruction.simulation import SimulationSettings, simulate_from_arrays
from . import reconstruction as scoring

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationSettings:
    """What to simulate, how to reconstruct, and whether to run the (slow on CPU) RRLSRN variant."""

    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    options: object = None  # reconstruction.reconstruct.ReconstructionOptions to start from; None: the defaults
    resolution_mm: Optional[float] = None  # None: the truth's mean spacing
    superres_variant: bool = True
    model: Optional[Path] = None
    device: str = "auto"  # for the engine and the reconstruction (engine.devices)


def superresolved(stack, model: Optional[Path], device: str):
    """The stack x2 in-plane through the engine as ``rrlsrn reconstruct`` runs it (RRLSRN, k-space consistency)."""
    from ..engine.acquisition import superresolve_acquired
    from ..engine.options import EngineOptions
    from ..reconstruction.stacks import RRLSRN_PSF_FRACTION, on_x2_grid

    options = EngineOptions(model=model, device=device, plane="k", consistency="kspace")
    result = superresolve_acquired(stack.voxels_kji, stack.geometry.spacing, options, mask_kji=stack.mask_kji)
    return on_x2_grid(stack, result.voxels, "rrlsrn", RRLSRN_PSF_FRACTION)


def zero_filled(stack):
    """The stack x2 in-plane by zero-fill (sinc): the control that says what RRLSRN adds beyond a finer grid."""
    from ..imaging.degrade import zero_fill_upsample_slices
    from ..reconstruction.stacks import ZERO_FILL_PSF_FRACTION, on_x2_grid

    return on_x2_grid(stack, zero_fill_upsample_slices(stack.voxels_kji), "zerofill", ZERO_FILL_PSF_FRACTION)


def reconstruction_options(settings: EvaluationSettings, spacing: tuple[float, float, float]):
    """The settings' options (or the core's defaults) at their resolution (or the truth's) on their device."""
    from ..engine.devices import select_device
    from ..reconstruction.reconstruct import ReconstructionOptions

    resolution = settings.resolution_mm or float(np.mean(spacing))
    return dataclasses.replace(settings.options or ReconstructionOptions(), resolution_mm=resolution,
                               device=str(select_device(settings.device)))


def reconstruct_variants(stacks: list, settings: EvaluationSettings, spacing, log: Log) -> dict:
    """name -> (ReconstructionResult, the stacks it was made from)."""
    from ..reconstruction.reconstruct import reconstruct

    options = reconstruction_options(settings, spacing)
    variants = {"reconstruction": (stacks, dataclasses.replace(options, motion_correction=True)),
                "no_motion_correction": (stacks, dataclasses.replace(options, motion_correction=False))}
    if settings.superres_variant:
        log("RRLSRN x2 in-plane on each stack")
        variants["with_rrlsrn"] = ([superresolved(s, settings.model, settings.device) for s in stacks], options)
        variants["with_zero_fill"] = ([zero_filled(s) for s in stacks], options)
    results = {}
    for name, (inputs, variant_options) in variants.items():
        log(f"reconstructing: {name}")
        results[name] = (reconstruct(inputs, variant_options), inputs)
    return results


def evaluate_simulated(voxels_kji: np.ndarray, brain_kji: np.ndarray, geometry, settings: EvaluationSettings,
                       log: Log = print) -> dict:
    """Every method's PSNR/SSIM (and pose errors) for one truth volume, as a JSON-able dict."""
    started = time.monotonic()
    log("simulating stacks")
    simulated = simulate_from_arrays(voxels_kji, brain_kji, geometry, settings.simulation)
    stacks = [item.stack for item in simulated]
    poses = [item.transforms for item in simulated]
    truth = scoring.truth_of(voxels_kji, brain_kji, geometry)
    methods = scoring.score_baselines(truth, stacks, poses)
    for name, (result, inputs) in reconstruct_variants(stacks, settings, geometry.spacing, log).items():
        methods[name] = scoring.score_result(truth, result, inputs, poses)
    naive = methods["naive_fusion"]["psnr"]
    return {"methods": methods, "psnr_gain_over_naive_db": {name: m["psnr"] - naive for name, m in methods.items()},
            "rrlsrn_gain_db": _gains(methods, "with_rrlsrn", ("reconstruction", "with_zero_fill")),
            "stacks": [{"name": s.stack.name, "orientation": s.orientation, "shape_kji": list(s.stack.voxels_kji.shape),
                        "spacing_ijk": list(s.stack.geometry.spacing), "thickness_mm": s.stack.thickness_mm,
                        "slices_with_brain": int(s.stack.brain_mask().any(axis=(1, 2)).sum())}
                       for s in simulated],
            "truth_shape_kji": list(truth.voxels_kji.shape), "seconds": time.monotonic() - started}


def block_mean(voxels_kji: np.ndarray, brain_kji: np.ndarray, geometry, factor: int):
    """A coarser truth for short runs: means of ``factor``^3 voxel blocks (mask: block mean > 0.5), same field.

    The new voxel 0 is the centre of the first block: origin moved by (factor - 1) / 2 old voxels per axis.
    """
    from ..imaging.geometry import Geometry

    if factor <= 1:
        return voxels_kji, brain_kji, geometry
    shape = np.array(voxels_kji.shape) // factor

    def reduce(values: np.ndarray) -> np.ndarray:
        cut = values[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor].astype(np.float64)
        return cut.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))

    shift = geometry.index_to_physical(np.full(3, (factor - 1) / 2.0))[0]
    coarse = Geometry(size=tuple(int(s) for s in shape[::-1]),
                      spacing=tuple(float(s) * factor for s in geometry.spacing),
                      origin=tuple(float(v) for v in shift), direction=geometry.direction)
    return reduce(voxels_kji).astype(np.float32), reduce(brain_kji) > 0.5, coarse


def _gains(methods: dict, method: str, references: tuple) -> dict:
    """PSNR gain (dB) of ``method`` over each reference, when all were run."""
    if method not in methods:
        return {}
    return {f"over_{name}": methods[method]["psnr"] - methods[name]["psnr"] for name in references if name in methods}
