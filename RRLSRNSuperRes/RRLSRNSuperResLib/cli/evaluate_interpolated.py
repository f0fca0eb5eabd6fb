"""``rrlsrn evaluate-interpolated``: super-resolution of scanner-interpolated stacks, scored against HR.

See ``evaluation.interpolated_input`` for the protocol. One line per volume and the mean,
SD and t-distribution 95% CI of the gain over the interpolated input itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation import metrics
from ..io.atomic_files import write_json
from ..io.formats import check_output_path
from .engine_options import add_engine_options, engine_options_from_args
from .evaluate import read_inputs, summary_line, volume_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr", nargs="+", type=Path, metavar="HR", help="high-resolution stack(s) as acquired")
    parser.add_argument("--mask", action="append", type=Path, metavar="MASK",
                        help="brain mask on an HR grid, once per HR volume in the same order (default: Otsu)")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    # As rrlsrn superres, --acquisition included.
    add_engine_options(parser, omit={"scale": "this evaluation is x2 only"})


def run(args: argparse.Namespace) -> int:
    from ..evaluation.interpolated_input import PROTOCOL, evaluate_interpolated
    from ..model.artifact import model_identity

    if args.json is not None:
        check_output_path(args.json, [*args.hr, *(args.mask or [])])
    pairs = read_inputs(args.hr, args.mask)
    options = engine_options_from_args(args)
    print(f"protocol: {PROTOCOL}; acquisition: {args.acquisition}")
    print(f"{'volume':<32} | {'PSNR dB: input':>14} {'RRLSRN':>8} {'gain':>7} | {'SSIM: input':>11} {'RRLSRN':>8} "
          f"{'gain':>8}")
    results = []
    for index, (hr_path, (volume, mask)) in enumerate(zip(args.hr, pairs)):
        scores = evaluate_interpolated(volume.voxels, volume.geometry.spacing, mask, options)
        results.append({"hr": hr_path, "mask": args.mask[index] if args.mask else None, **scores})
        psnr, ssim = scores["psnr"], scores["ssim"]
        print(f"{volume_name(hr_path)[:32]:<32} | {psnr['interpolated_input']:>14.2f} {psnr['rrlsrn']:>8.2f} "
              f"{scores['psnr_gain_db']:>+7.3f} | {ssim['interpolated_input']:>11.4f} {ssim['rrlsrn']:>8.4f} "
              f"{scores['ssim_gain']:>+8.4f}", flush=True)
    summary = {"psnr_gain_db": metrics.summarise([r["psnr_gain_db"] for r in results]),
               "ssim_gain": metrics.summarise([r["ssim_gain"] for r in results])}
    print(summary_line("RRLSRN PSNR gain over the interpolated input", summary["psnr_gain_db"], " dB", 3))
    print(summary_line("RRLSRN SSIM gain over the interpolated input", summary["ssim_gain"], "", 4))
    if args.json is not None:
        write_json(args.json, {"command": "rrlsrn evaluate-interpolated",
                               "model": model_identity(args.model, args.consistency),
                               "protocol": PROTOCOL, "acquisition": args.acquisition,
                               "precision_option": args.precision,
                               "conventions": metrics.conventions(), "volumes": results, "summary": summary})
        print(f"wrote {args.json}")
    return 0
