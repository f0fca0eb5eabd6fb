"""``rrlsrn evaluate-reconstruction``: simulated motion-corrupted stacks from 3D volumes, reconstructed and scored.

Each volume (the truth) gives ``--stacks`` orthogonal thick-slice stacks (``reconstruction.simulation``);
the reconstruction, its variants and the baselines are scored against the truth inside its brain mask
(``evaluation.reconstruction``). ``--leave-one-out`` runs the real-data check instead
(``evaluation.leave_one_out``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..engine.devices import DEVICES

TABLE_METHODS = (("naive_fusion", "naive"), ("best_stack_linear", "stack lin"), ("best_stack_cubic", "stack cub"),
                 ("no_motion_correction", "no MC"), ("reconstruction", "recon"), ("with_zero_fill", "recon+ZF"),
                 ("with_rrlsrn", "recon+SR"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..reconstruction.motion import MOTION_LEVELS
    from ..reconstruction.simulation import NOISE_KINDS

    parser.add_argument("volumes", nargs="*", type=Path, metavar="VOLUME", help="3D truth volume(s) to simulate from")
    parser.add_argument("--mask", action="append", type=Path, metavar="MASK",
                        help="brain mask on a VOLUME's grid, once per volume in the same order (default: Otsu "
                             "foreground)")
    parser.add_argument("--motion", choices=tuple(MOTION_LEVELS), default="moderate",
                        help="moderate: 2 deg / 1 mm RMS drift plus 2 jumps of 3 deg / 1.5 mm per stack; severe: "
                             "5 deg / 2.5 mm drift plus 3 jumps of 8 deg / 4 mm; none")
    parser.add_argument("--stacks", type=int, default=3, help="simulated stacks per volume (axial, coronal, "
                        "sagittal, then again; default 3)")
    parser.add_argument("--noise", type=float, default=0.02,
                        help="noise SD as a fraction of the brain's bright-tissue level (default 0.02)")
    parser.add_argument("--noise-kind", choices=NOISE_KINDS, default="gaussian")
    parser.add_argument("--in-plane-factor", type=float, default=2.0, help="stack pixel / volume spacing (default 2)")
    parser.add_argument("--slice-factor", type=float, default=4.0,
                        help="slice spacing and thickness / volume spacing (default 4)")
    parser.add_argument("--obliquity", type=float, default=0.0, metavar="DEG",
                        help="tilt each stack by this angle about a random axis (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    parser.add_argument("--truth-downsample", type=int, default=1, metavar="N",
                        help="average N^3 voxel blocks of each truth first (shorter runs; default 1: as read)")
    parser.add_argument("--resolution", type=float, metavar="MM",
                        help="reconstruction voxel size (default: the truth's spacing)")
    parser.add_argument("--no-superres-variant", action="store_true",
                        help="skip the variants with RRLSRN x2 in-plane on each stack (slow on a CPU) and with "
                             "zero-fill x2, its control")
    parser.add_argument("--model", type=Path, help="TorchScript x2 model for that variant (default: the bundled one)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="for the reconstruction and the RRLSRN step (auto: CUDA where usable, else CPU)")
    parser.add_argument("--leave-one-out", nargs="+", type=Path, metavar="STACK",
                        help="real-data check instead of simulation: for each of these real stacks (masks with "
                             "--mask, in the same order), reconstruct from the others, predict it through its "
                             "registered poses, and compare with it (NCC, PSNR) against naive fusion")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")


def settings_of(args: argparse.Namespace):
    """The evaluation settings the options ask for."""
    from ..evaluation.simulated_reconstruction import EvaluationSettings
    from ..reconstruction.motion import MOTION_LEVELS
    from ..reconstruction.simulation import SimulationSettings

    simulation = SimulationSettings(stacks=args.stacks, in_plane_factor=args.in_plane_factor,
                                    slice_factor=args.slice_factor, noise_fraction=args.noise,
                                    noise_kind=args.noise_kind, motion=MOTION_LEVELS[args.motion],
                                    obliquity_deg=args.obliquity, seed=args.seed)
    return EvaluationSettings(simulation=simulation, resolution_mm=args.resolution,
                              superres_variant=not args.no_superres_variant, model=args.model, device=args.device)


def table_header() -> str:
    names = " ".join(f"{label:>9}" for _, label in TABLE_METHODS)
    return (f"{'volume':<28} | PSNR dB: {names} | gain/naive | SSIM: {names} | "
            f"pose err median/p90: {'deg':>9} {'mm':>9}")


def table_row(name: str, scores: dict) -> str:
    """One volume's PSNR and SSIM of each method, the reconstruction's gain over naive fusion, its pose errors."""
    methods = scores["methods"]

    def cells(key: str, digits: int) -> str:
        return " ".join(f"{methods[m][key]:>9.{digits}f}" if m in methods else f"{'-':>9}" for m, _ in TABLE_METHODS)

    poses = methods["reconstruction"]["pose_errors"]
    gain = scores["psnr_gain_over_naive_db"]["reconstruction"]
    return (f"{name[:28]:<28} | PSNR dB: {cells('psnr', 2)} | {gain:>+10.2f}"
            f" | SSIM: {cells('ssim', 4)} | pose err median/p90: "
            f"{poses['rotation_deg_median']:>4.2f}/{poses['rotation_deg_p90']:<4.2f} "
            f"{poses['translation_mm_median']:>4.2f}/{poses['translation_mm_p90']:<4.2f}")


def summary_of(results: list) -> dict:
    """Mean, SD and 95% CI over the volumes of each method's PSNR, SSIM and gain over naive fusion."""
    from ..evaluation import metrics

    names = [m for m, _ in TABLE_METHODS if all(m in r["methods"] for r in results)]
    summary = {f"{kind}:{m}": metrics.summarise([r["methods"][m][kind] for r in results])
               for m in names for kind in ("psnr", "ssim")}
    gains = "psnr_gain_over_naive_db"
    summary.update({f"{gains}:{m}": metrics.summarise([r[gains][m] for r in results]) for m in names})
    for key in ("rotation_deg_median", "translation_mm_median"):
        summary[f"pose_error:{key}"] = metrics.summarise([r["methods"]["reconstruction"]["pose_errors"][key]
                                                          for r in results])
    for key in results[0]["rrlsrn_gain_db"]:
        summary[f"rrlsrn_gain_db:{key}"] = metrics.summarise([r["rrlsrn_gain_db"][key] for r in results])
    return summary


def print_summary(summary: dict, results: list) -> None:
    """The reconstruction's gain over naive fusion and, when run, the RRLSRN step's own gains."""
    gain = summary["psnr_gain_over_naive_db:reconstruction"]
    print(f"reconstruction PSNR gain over naive fusion: mean {gain['mean']:+.2f} dB over {gain['n']} volume(s), "
          f"lowest {min(r['psnr_gain_over_naive_db']['reconstruction'] for r in results):+.2f} dB")
    for key in results[0]["rrlsrn_gain_db"]:
        stats = summary[f"rrlsrn_gain_db:{key}"]
        print(f"RRLSRN step PSNR gain {key.replace('_', ' ')}: mean {stats['mean']:+.2f} dB (n={stats['n']})")


def run_simulated(args: argparse.Namespace) -> dict:
    """Evaluate each volume, printing its row as soon as it is done; the JSON report."""
    import dataclasses

    from ..evaluation import metrics
    from ..evaluation.reconstruction import ALIGNMENT, REGION
    from ..evaluation.simulated_reconstruction import block_mean, evaluate_simulated
    from .evaluate import read_inputs, volume_name

    settings = settings_of(args)
    results = []
    rows = []
    print(f"scored inside: {REGION}\nframes: {ALIGNMENT}")
    for path, (volume, mask) in zip(args.volumes, read_inputs(args.volumes, args.mask)):
        brain = mask if mask is not None else metrics.foreground_mask(volume.voxels)
        truth = block_mean(volume.voxels.astype(np.float32), brain, volume.geometry, args.truth_downsample)
        name = volume_name(path)
        scores = evaluate_simulated(*truth, settings, log=lambda text, n=name: print(f"{n}: {text}", flush=True))
        results.append({"volume": str(path), "truth_spacing_ijk": list(truth[2].spacing), **scores})
        rows.append(table_row(name, scores))
        print("\n".join([table_header(), *rows]), flush=True)
    summary = summary_of(results)
    print_summary(summary, results)
    conventions = {**metrics.conventions(), "region": REGION, "mask_dilation_pixels": 0}
    return {"command": "rrlsrn evaluate-reconstruction", "settings": dataclasses.asdict(settings),
            "alignment": ALIGNMENT, "conventions": conventions, "volumes": results, "summary": summary}


def run(args: argparse.Namespace) -> int:
    from ..errors import UserInputError
    from ..io.atomic_files import write_json
    from ..io.formats import check_output_path

    inputs = [*(args.volumes or []), *(args.leave_one_out or []), *(args.mask or [])]
    if args.json is not None:
        check_output_path(args.json, inputs)
    if args.leave_one_out:
        if args.volumes:
            raise UserInputError("give either VOLUME(s) to simulate from or --leave-one-out STACK ..., not both")
        from .evaluate_reconstruction_real import run_leave_one_out

        report = run_leave_one_out(args)
    elif not args.volumes:
        raise UserInputError("give at least one 3D VOLUME to simulate stacks from (or --leave-one-out STACK ...)")
    else:
        report = run_simulated(args)
    report["command_line"] = getattr(args, "command_line", None)
    if args.json is not None:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
