"""``rrlsrn demo``: the bundled fetal sample, end to end, in one folder.

Three results, so a new user sees both what the tool does and how well:

1. the real stack super-resolved x2 in-plane, as ``rrlsrn superres`` makes it (NIfTI, the input's
   integer type kept where the values fit);
2. the simulated-LR evaluation of the same stack (bicubic degradation, manual brain mask
   dilated) against cubic spline and bicubic (JSON, as ``rrlsrn evaluate`` writes it);
3. a PNG figure on a central brain slice, cropped to the brain: LR (nearest-upsampled to the
   HR grid) | cubic spline | RRLSRN | HR, and below the absolute errors of cubic spline and
   RRLSRN on one shared scale (bright = large error).

The figure is drawn by ``comparison_figure`` (with Pillow).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, List

from ..errors import UserInputError
from ..evaluation import simulated_lr
from .comparison_figure import Panel, comparison_panels, compose, save_png
from .engine_options import ENGINE_OPTIONS, add_engine_options, engine_options_from_args

if TYPE_CHECKING:
    from ..engine.options import EngineOptions

SAMPLE_NAME = "sub-01_run-1_T2w"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("rrlsrn-demo"),
                        help="folder for the results (created; default: rrlsrn-demo in the current folder)")
    add_engine_options(parser, omit={name: "the demo runs the defaults" for name in ENGINE_OPTIONS if name != "device"})


def figure_panels(comparison: simulated_lr.Comparison, scores: dict) -> List[List[Panel]]:
    """LR | cubic spline | RRLSRN | HR on the central brain slice, their errors below, the PSNRs as caption."""
    psnr = scores["psnr"]
    caption = (f"along {scores['slice_axis']}\n\nvolume PSNR\n({scores['degradation']} LR):\n"
               f"cubic spline {psnr['cubic_spline']:.2f} dB\nRRLSRN {psnr['rrlsrn']:.2f} dB")
    return comparison_panels(comparison, {"cubic_spline": "cubic spline", "rrlsrn": "RRLSRN"}, caption)


def superresolve_sample(options: EngineOptions, path: Path) -> dict:
    """Step 1: the real stack x2, exactly as ``rrlsrn superres`` makes it (same pipeline, same pixel type)."""
    from ..pipeline.stack import StackOptions, superresolve_file
    from ..resources import sample_volume_path
    from .progress_bar import terminal_progress

    result = superresolve_file(sample_volume_path(), path, options=StackOptions(engine=options),
                               progress_for=lambda label: terminal_progress("super-resolving the sample"))
    return {"path": path, "output_size": result.geometry.size, "slice_axis": "ijk"[result.slice_axis],
            "device": result.device, "seconds": round(result.seconds, 2), "written": result.written,
            "notes": list(result.notes)}


def print_scores(scores: dict) -> None:
    psnr, ssim = scores["psnr"], scores["ssim"]
    print(f"simulated LR ({scores['degradation']} x1/2), {scores['included_slices']} slices inside the "
          "dilated brain mask:")
    for name, label in (("cubic_spline", "cubic spline"), ("bicubic", "bicubic"), ("rrlsrn", "RRLSRN")):
        print(f"  {label:<12} PSNR {psnr[name]:6.2f} dB  SSIM {ssim[name]:.4f}")
    print(f"  RRLSRN gain over cubic spline: {scores['psnr_gain_db']['over_cubic_spline']:+.2f} dB PSNR, "
          f"{scores['ssim_gain']['over_cubic_spline']:+.4f} SSIM")


def output_folder(out: Path) -> Path:
    """Create the results folder (and its parents); a file of that name is a user error."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; give a folder for the demo's results")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args: argparse.Namespace) -> int:
    from ..io.atomic_files import write_json
    from ..io.volumes import read_volume
    from ..model.artifact import model_identity
    from ..resources import sample_mask_path, sample_volume_path
    from .progress_bar import terminal_progress

    out = output_folder(args.out)
    volume = read_volume(sample_volume_path())
    mask = read_volume(sample_mask_path()).voxels > 0.5

    options = engine_options_from_args(args)
    superres = superresolve_sample(options, out / f"{SAMPLE_NAME}_rrlsrn_x2.nii.gz")
    print(f"super-resolved {sample_volume_path().name}: {volume.geometry.size} -> {superres['output_size']} "
          f"voxels (slices along {superres['slice_axis']}) in {superres['seconds']:.1f} s on {superres['device']}")
    print(f"  wrote {superres['written'][0]}")

    comparison = simulated_lr.simulate(volume.voxels, volume.geometry.spacing, mask, "bicubic",
                                       replace(options, consistency="bicubic"),
                                       terminal_progress("simulated-LR evaluation"))
    scores = simulated_lr.score(comparison)
    metrics_path = out / "metrics.json"
    write_json(metrics_path, {"command": "rrlsrn demo", "hr": sample_volume_path(), "mask": sample_mask_path(),
                              "model": model_identity(None), "evaluation_model": model_identity(None, "bicubic"),
                              "superresolution": superres,
                              "conventions": simulated_lr.conventions("bicubic"), "evaluation": scores})
    print_scores(scores)
    print(f"  wrote {metrics_path}")

    figure_path = out / "comparison.png"
    save_png(compose(figure_panels(comparison, scores)), figure_path)
    print(f"  wrote {figure_path}")
    return 0
