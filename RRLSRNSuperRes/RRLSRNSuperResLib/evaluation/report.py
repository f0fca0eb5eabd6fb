"""The paper-style report: every method under both degradations, the ablations, and the runtimes.

Each HR volume is degraded by each degradation (``simulated_lr.simulate``: cubic spline,
bicubic, sinc and the RRLSRN model). SRCNN and every ablation model then run on the same LR
through the same engine path, and every estimate is scored with the masked PSNR and SSIM of
``metrics``. Over the volumes each figure is summarised by its mean, sample SD and the
t-distribution 95% CI of the mean (``metrics.summarise``); gains are paired per volume.

Runtimes are wall-clock seconds of each method on the LR stacks of the run's device, the
model's including the engine's normalisation, padding and batching.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..engine.options import EngineOptions
from . import metrics, simulated_lr

METHODS = ("cubic", "bicubic", "sinc", "srcnn", "rrlsrn")
REFERENCE = {"bicubic": "cubic", "kspace": "sinc"}  # simulated_lr.REFERENCE_BASELINE, in the report's names
_SIMULATED = {"cubic": "cubic_spline", "bicubic": "bicubic", "sinc": "sinc", "rrlsrn": "rrlsrn"}
# The paper's ablation gains of the full model (Song, Wang et al. 2022), bicubic LR.
PAPER_ABLATION_GAIN_DB = {"no_gdl": 0.1, "fixed_image_branch": 2.4}
ABLATION_REFERENCE = "ablation_reference"


@dataclass
class ReportModels:
    """The models the report runs: RRLSRN (None = bundled), SRCNN, and ablations by name.

    An ablation is compared with ``ablation_reference``: the full model trained by the same
    recipe (same data, steps and seed) but for the ablated part; without one, with RRLSRN.
    """

    srcnn: Path
    rrlsrn: Optional[Path] = None
    ablations: Dict[str, Path] = field(default_factory=dict)
    ablation_reference: Optional[Path] = None

    def extra_models(self) -> Dict[str, Path]:
        """Every model run besides RRLSRN, by label."""
        reference = {ABLATION_REFERENCE: self.ablation_reference} if self.ablation_reference else {}
        return {"srcnn": self.srcnn, **reference, **self.ablations}


@dataclass
class VolumeRun:
    """One volume under one degradation: scores and seconds per method, and the image stacks."""

    name: str
    degradation: str
    psnr: Dict[str, float]
    ssim: Dict[str, float]
    seconds: Dict[str, float]
    slices: int
    comparison: simulated_lr.Comparison


def run_volume(name: str, voxels: np.ndarray, spacing: tuple[float, float, float], mask: Optional[np.ndarray],
               degradation: str, models: ReportModels, options: EngineOptions, progress=None) -> VolumeRun:
    """Every method and ablation on one volume's simulated LR, scored against its HR. Every learned
    model runs with the same ``options`` (``simulated_lr.simulate``), the model swapped for each of ``models``."""
    comparison = simulated_lr.simulate(voxels, spacing, mask, degradation, replace(options, model=models.rrlsrn),
                                       progress)
    estimates = {method: comparison.estimates[simulated] for method, simulated in _SIMULATED.items()}
    seconds = {method: comparison.seconds[simulated] for method, simulated in _SIMULATED.items()}
    for label, path in models.extra_models().items():
        estimates[label], facts = simulated_lr.model_estimate(comparison.lr, spacing, comparison.slice_axis,
                                                              replace(options, model=path))
        seconds[label] = facts["seconds"]
    comparison.estimates.update(estimates)
    peak = metrics.data_range(comparison.hr)
    return VolumeRun(
        name=name, degradation=degradation,
        psnr={label: metrics.psnr(comparison.hr, image, comparison.region, peak) for label, image in estimates.items()},
        ssim={label: metrics.ssim(comparison.hr, image, comparison.region, peak) for label, image in estimates.items()},
        seconds=seconds, slices=len(comparison.hr), comparison=comparison)


def statistics(values: List[float]) -> dict:
    """``{"mean", "sd", "ci95": [lo, hi], "n"}`` (SD and CI None under two values)."""
    summary = metrics.summarise(values)
    return {"mean": summary["mean"], "sd": summary["sd"], "ci95": [summary["ci95_low"], summary["ci95_high"]],
            "n": summary["n"]}


def degradation_table(runs: List[VolumeRun]) -> dict:
    """Per method: PSNR and SSIM statistics; per method: the paired gain over the reference baseline."""
    degradation = runs[0].degradation
    reference = REFERENCE[degradation]
    return {
        "reference_baseline": reference,
        "methods": {method: {kind: statistics([getattr(run, kind)[method] for run in runs])
                             for kind in ("psnr", "ssim")} for method in METHODS},
        "gain_over_reference": {
            method: {"psnr_db": statistics([run.psnr[method] - run.psnr[reference] for run in runs]),
                     "ssim": statistics([run.ssim[method] - run.ssim[reference] for run in runs])}
            for method in METHODS if method != reference},
        "volumes": [{"name": run.name, "slice_axis": "ijk"[run.comparison.slice_axis], "psnr": run.psnr,
                     "ssim": run.ssim} for run in runs],
    }


def verdict(loss: dict, paper_db: Optional[float]) -> str:
    """Does removing the component cost PSNR here? From the paired 95% CI of full minus ablation."""
    low, high = loss["ci95"]
    if low is None:
        return "too few volumes to say"
    if low > 0:
        text = "yes: the full model is better"
        return text if paper_db is None or high >= paper_db else text + f", by less than the paper's +{paper_db} dB"
    return "no: the full model is not better" if high <= 0 else "inconclusive: the 95% CI includes 0"


def ablation_table(runs_by_degradation: Dict[str, List[VolumeRun]], models: ReportModels) -> dict:
    """Per ablation and degradation: its PSNR, and the full model's paired gain over it, with a verdict."""
    full = ABLATION_REFERENCE if models.ablation_reference else "rrlsrn"
    table = {}
    for name, path in models.ablations.items():
        entry: dict = {"model": str(path), "full_model": str(models.ablation_reference or models.rrlsrn or "bundled"),
                       "paper_gain_of_full_model_db": PAPER_ABLATION_GAIN_DB.get(name)}
        for degradation, runs in runs_by_degradation.items():
            gain = statistics([run.psnr[full] - run.psnr[name] for run in runs])
            entry[degradation] = {"psnr": statistics([run.psnr[name] for run in runs]),
                                  "full_model_psnr": statistics([run.psnr[full] for run in runs]),
                                  "ssim": statistics([run.ssim[name] for run in runs]),
                                  "full_model_gain_db": gain,
                                  "component_helps": verdict(gain, PAPER_ABLATION_GAIN_DB.get(name))}
        table[name] = entry
    return table


def runtime_table(runs: List[VolumeRun], device: str, precision: str) -> dict:
    """Seconds per stack (median over the volumes) and per slice (total / slices), per method."""
    total_slices = sum(run.slices for run in runs)
    labels = list(runs[0].seconds)
    return {"device": device, "precision": precision, "stacks": len(runs), "slices": total_slices,
            "methods": {label: {"seconds_per_stack_median": float(np.median([run.seconds[label] for run in runs])),
                                "seconds_per_slice": sum(run.seconds[label] for run in runs) / total_slices}
                        for label in labels}}
