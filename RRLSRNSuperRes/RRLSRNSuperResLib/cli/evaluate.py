"""``rrlsrn evaluate``: simulated-LR scores of RRLSRN against cubic spline, bicubic and zero-fill (sinc), at x2
or (``--scale 4``) x4.

Several HR volumes (each with its brain mask) are evaluated in one run, so a development
set gives a per-volume table and a summary of the gain (mean, SD, t-distribution 95% CI)
in one JSON report that also records every convention used.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..errors import UserInputError
from ..evaluation import metrics, simulated_lr
from ..imaging.consistency import CONSISTENCY_MODELS
from ..imaging.degrade import DEGRADATIONS
from ..io.atomic_files import write_json
from ..io.formats import check_output_path
from ..io.volumes import Volume, read_mask_on_grid, read_volume
from .engine_options import SIMULATED_LR_AS_GIVEN, add_engine_options, engine_options_from_args

SUMMARISED = tuple((kind, f"over_{baseline}") for kind in ("psnr_gain_db", "ssim_gain")
                   for baseline in simulated_lr.BASELINES)
BASELINE_LABELS = {"cubic_spline": "cubic spline", "bicubic": "bicubic", "sinc": "zero-fill (sinc)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr", nargs="+", type=Path, metavar="HR", help="high-resolution volume(s) to degrade")
    parser.add_argument("--mask", action="append", type=Path, metavar="MASK",
                        help="brain mask on an HR grid (> 0.5 is brain): give --mask once per HR volume, in "
                             "the same order, anywhere on the line; without masks the Otsu foreground is scored")
    parser.add_argument("--degradation", choices=DEGRADATIONS, default="bicubic",
                        help="how LR is simulated: the paper's bicubic or the MRI k-space model")
    parser.add_argument("--json", type=Path, help="write every number and convention to this JSON file")
    add_engine_options(parser, consistency_choices=(simulated_lr.MATCHED, *CONSISTENCY_MODELS),
                       omit={"acquisition": SIMULATED_LR_AS_GIVEN})


def read_inputs(hr_paths: List[Path], mask_paths: Optional[List[Path]]) -> List[Tuple[Volume, Optional[np.ndarray]]]:
    """Read every volume and mask first, so a bad input stops the run before hours of compute."""
    if mask_paths and len(mask_paths) != len(hr_paths):
        raise UserInputError(f"{len(hr_paths)} HR volume(s) but {len(mask_paths)} mask(s); give one mask per HR "
                             "volume, in the same order, or none")
    pairs = []
    for index, hr_path in enumerate(hr_paths):
        volume = read_volume(hr_path)
        if volume.components != 1:
            raise UserInputError(f"{hr_path} has {volume.components} components per voxel; give a scalar volume")
        pairs.append((volume, read_mask_on_grid(mask_paths[index], volume) if mask_paths else None))
    return pairs


def volume_name(path: Path) -> str:
    """File name without the image suffixes (``.nii.gz``, ``.nrrd``, ...)."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def table_header(degradation: str) -> str:
    gain = f"vs {'sinc' if simulated_lr.REFERENCE_BASELINE[degradation] == 'sinc' else 'cubic'}"
    return (f"{'volume':<32} {'axis':>4} {'slices':>7} | {'PSNR dB: cubic':>14} {'bicubic':>8} {'sinc':>8} "
            f"{'RRLSRN':>8} {gain:>8} | {'SSIM: cubic':>11} {'bicubic':>8} {'sinc':>8} {'RRLSRN':>8} {gain:>8} | "
            f"{'detail':>6}")


def table_row(name: str, scores: dict) -> str:
    """One volume's line: PSNR and SSIM of each method and the gain over the degradation's reference baseline."""
    psnr, ssim = scores["psnr"], scores["ssim"]
    reference = f"over_{scores['reference_baseline']}"
    slices = f"{scores['included_slices']}/{scores['evaluated_shape_shw'][0]}"
    return (f"{name[:32]:<32} {scores['slice_axis']:>4} {slices:>7} | {psnr['cubic_spline']:>14.2f} "
            f"{psnr['bicubic']:>8.2f} {psnr['sinc']:>8.2f} {psnr['rrlsrn']:>8.2f} "
            f"{scores['psnr_gain_db'][reference]:>+8.2f} | {ssim['cubic_spline']:>11.4f} {ssim['bicubic']:>8.4f} "
            f"{ssim['sinc']:>8.4f} {ssim['rrlsrn']:>8.4f} {scores['ssim_gain'][reference]:>+8.4f} | "
            f"{scores['engine'].get('detail_gain', 1.0):>6.2f}")


def summary_of(results: List[dict]) -> dict:
    """Mean, SD and 95% CI of each gain and of each method's PSNR and SSIM over the volumes."""
    summary = {f"{kind}_{baseline}": metrics.summarise([r[kind][baseline] for r in results])
               for kind, baseline in SUMMARISED}
    for kind in ("psnr", "ssim"):
        summary[kind] = {name: metrics.summarise([r[kind][name] for r in results]) for name in simulated_lr.METHODS}
    return summary


def summary_line(label: str, stats: dict, unit: str, digits: int) -> str:
    """``label: mean +x (SD s, 95% CI +a to +b, n=N)``; SD and CI only from two volumes on."""
    text = f"{label}: mean {stats['mean']:+.{digits}f}{unit}"
    if stats["sd"] is None:
        return f"{text} (n={stats['n']}; SD and CI need 2 volumes or more)"
    return (f"{text} (SD {stats['sd']:.{digits}f}, 95% CI {stats['ci95_low']:+.{digits}f} to "
            f"{stats['ci95_high']:+.{digits}f}, n={stats['n']})")


def print_summary(summary: dict, degradation: str) -> None:
    """Gains over every baseline, the degradation's reference baseline first and marked."""
    reference = simulated_lr.REFERENCE_BASELINE[degradation]
    baselines = [reference] + [name for name in simulated_lr.BASELINES if name != reference]
    width = max(len(label) for label in BASELINE_LABELS.values())
    for kind, label, unit, digits in (("psnr_gain_db", "PSNR", " dB", 2), ("ssim_gain", "SSIM", "", 4)):
        for name in baselines:
            mark = " (reference baseline)" if name == reference else ""
            text = summary_line(f"RRLSRN {label} gain over {BASELINE_LABELS[name]:<{width}}",
                                summary[f"{kind}_over_{name}"], unit, digits)
            print(text + mark)


def evaluate_all(args: argparse.Namespace, pairs: List[Tuple[Volume, Optional[np.ndarray]]]) -> List[dict]:
    """Evaluate each volume, printing its table row as soon as it is done."""
    from .progress_bar import terminal_progress

    options = engine_options_from_args(
        args, consistency=simulated_lr.matched_consistency(args.consistency, args.degradation))
    results = []
    print(f"degradation: {args.degradation} x{args.scale}; region: "
          f"{'dilated brain mask' if args.mask else 'Otsu foreground'}")
    print(table_header(args.degradation))
    for index, (hr_path, (volume, mask)) in enumerate(zip(args.hr, pairs)):
        name = volume_name(hr_path)
        scores = simulated_lr.evaluate_volume(volume.voxels, volume.geometry.spacing, mask, args.degradation,
                                              options, terminal_progress(name))
        results.append({"hr": hr_path, "mask": args.mask[index] if args.mask else None, **scores})
        print(table_row(name, scores), flush=True)
    return results


def run(args: argparse.Namespace) -> int:
    from ..model.artifact import model_identity

    if args.json is not None:
        check_output_path(args.json, [*args.hr, *(args.mask or [])])
    results = evaluate_all(args, read_inputs(args.hr, args.mask))
    summary = summary_of(results)
    print_summary(summary, args.degradation)
    if args.json is not None:
        report = {"command": "rrlsrn evaluate", "model": model_identity(args.model, simulated_lr.matched_consistency(
                      args.consistency, args.degradation), args.scale),
                  "device_option": args.device, "precision_option": args.precision, "plane_option": args.plane,
                  "adapt_seconds": args.adapt, "consistency_option": args.consistency, "views": args.views,
                  "detail_option": args.detail,
                  "conventions": simulated_lr.conventions(args.degradation, args.scale), "volumes": results,
                  "summary": summary}
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
