"""``rrlsrn report``: the paper's comparison measured here, as JSON, Markdown and PNG figures.

Cubic spline, bicubic, zero-fill (sinc), SRCNN and RRLSRN under the bicubic and the k-space
degradation, the ablation models given with ``--ablation``, and the runtimes, over several
HR volumes (``evaluation.report``). ``DIR/report.md`` is what docs/results.md
shows; rerunning the same command reproduces it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

from ..errors import UserInputError
from ..evaluation.simulated_lr import MATCHED
from ..imaging.degrade import DEGRADATIONS
from .engine_options import SIMULATED_LR_AS_GIVEN, add_engine_options

LABELS = {"cubic": "cubic spline", "bicubic": "bicubic", "sinc": "zero-fill (sinc)", "srcnn": "SRCNN",
          "rrlsrn": "RRLSRN"}
ABLATION_LABELS = {"ablation_reference": "full model of the ablations' recipe",
                   "no_gdl": "without GDL (--gdl-weight 0)",
                   "fixed_image_branch": "fixed bilinear image branch (--no-image-branch)"}
DEGRADATION_LABELS = {"bicubic": "bicubic LR (the paper's degradation)",
                      "kspace": "k-space LR (the MRI acquisition model)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr", nargs="+", type=Path, metavar="HR", help="high-resolution volume(s) to degrade")
    parser.add_argument("--mask", action="append", type=Path, metavar="MASK",
                        help="brain mask of each HR volume, in the same order (> 0.5 is brain)")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json, report.md and figures")
    parser.add_argument("--srcnn", type=Path, help="SRCNN TorchScript model (default: the bundled report baseline)")
    parser.add_argument("--ablation", action="append", default=[], metavar="NAME=MODEL",
                        help="an ablation model, e.g. no_gdl=run-nogdl/rrlsrn_x2.pt or fixed_image_branch=...; "
                             "compared with --ablation-reference")
    parser.add_argument("--ablation-reference", type=Path, metavar="MODEL",
                        help="the full model trained by the same recipe as the ablations (default: --model)")
    parser.add_argument("--degradation", choices=DEGRADATIONS, action="append",
                        help="only this degradation (repeatable; default: both)")
    # --model is RRLSRN's; every learned model runs with the same options. Simulated LR: no --acquisition.
    add_engine_options(parser, consistency_choices=(MATCHED, "none"), omit={"acquisition": SIMULATED_LR_AS_GIVEN})


def parse_ablations(values: List[str]) -> Dict[str, Path]:
    ablations = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not name or not path:
            raise UserInputError(f"--ablation {value!r}: write NAME=MODEL, e.g. no_gdl=run/rrlsrn_x2.pt")
        if name in LABELS or name in ablations:
            raise UserInputError(f"--ablation name {name!r} is taken; give each ablation its own name")
        if not Path(path).is_file():
            raise UserInputError(f"--ablation {name}: model {path} does not exist")
        ablations[name] = Path(path)
    return ablations


def _stat(stats: dict, digits: int, signed: bool = False) -> str:
    if stats["mean"] is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{stats['mean']:{sign}.{digits}f}"
    if stats["sd"] is None:
        return text
    low, high = stats["ci95"]
    return f"{text} +- {stats['sd']:.{digits}f} ({low:{sign}.{digits}f} to {high:{sign}.{digits}f})"


def _learned_models_line(report: dict) -> str:
    options = report["learned_models"]
    consistency = ("made consistent with the LR under the simulated degradation (`--consistency matched`)"
                   if options["consistency"] == MATCHED else "as the networks give them (`--consistency none`)")
    files = {degradation: Path(report["models"][f"rrlsrn_{degradation}"]["path"]).name
             for degradation in report["degradations"]}
    rrlsrn = "; ".join(f"{DEGRADATION_LABELS[degradation]}: `{file}`" for degradation, file in files.items())
    return (f"Learned models (SRCNN, RRLSRN, ablations): outputs {consistency}, {options['views']}-view self-ensemble, "
            f"detail `{options.get('detail', 'full')}` (`--detail`). RRLSRN model for {rrlsrn}.")


def markdown(report: dict) -> str:
    """The report as Markdown tables (mean +- SD (95% CI) over the volumes)."""
    lines = [f"Made by `{report['command']}`.", "",
             f"Scale: x{report.get('scale', 2)} in-plane. Volumes: {len(report['volumes'])}. "
             f"Region: {report['region']}. Cells: mean +- SD (95% CI of the "
             "mean, t-distribution over volumes). PSNR in dB, data range = HR max - min per volume.", "",
             _learned_models_line(report), ""]
    for degradation, table in report["degradations"].items():
        reference = LABELS[table["reference_baseline"]]
        lines += [f"### {DEGRADATION_LABELS[degradation]}", "",
                  f"| method | PSNR | SSIM | PSNR gain over {reference} | SSIM gain over {reference} |",
                  "|---|---|---|---|---|"]
        for method, scores in table["methods"].items():
            gain = table["gain_over_reference"].get(method)
            lines.append(f"| {LABELS[method]} | {_stat(scores['psnr'], 2)} | {_stat(scores['ssim'], 4)} | "
                         f"{_stat(gain['psnr_db'], 2, True) if gain else 'reference'} | "
                         f"{_stat(gain['ssim'], 4, True) if gain else 'reference'} |")
        lines += ["", "| volume | " + " | ".join(LABELS[m] for m in table["methods"]) + " |",
                  "|---|" + "---|" * len(table["methods"])]
        lines += [f"| {volume['name']} | " + " | ".join(f"{volume['psnr'][m]:.2f}" for m in table["methods"]) + " |"
                  for volume in table["volumes"]]
        lines.append("")
    if report["ablations"]:
        lines += ["### Ablations (PSNR gain of the full model over the ablation, paired per volume)", "",
                  "| ablation | degradation | full model PSNR | ablation PSNR | full model gain | paper "
                  "| does the component help? |", "|---|---|---|---|---|---|---|"]
        for name, entry in report["ablations"].items():
            paper = entry["paper_gain_of_full_model_db"]
            for degradation in report["degradations"]:
                row = entry[degradation]
                lines.append(f"| {ABLATION_LABELS.get(name, name)} | {degradation} | "
                             f"{_stat(row['full_model_psnr'], 2)} | {_stat(row['psnr'], 2)} | "
                             f"{_stat(row['full_model_gain_db'], 2, True)} | "
                             f"{'+' + str(paper) + ' dB' if paper is not None else '-'} | {row['component_helps']} |")
        lines.append("")
    runtime = report["runtime"]
    lines += [f"### Runtime ({runtime['device']}, {runtime['precision']}; {runtime['stacks']} LR stacks, "
              f"{runtime['slices']} slices, wall clock)", "", "| method | s per stack (median) | ms per slice |",
              "|---|---|---|"]
    lines += [f"| {LABELS.get(label, ABLATION_LABELS.get(label, label))} | {row['seconds_per_stack_median']:.2f} | "
              f"{1000 * row['seconds_per_slice']:.1f} |" for label, row in runtime["methods"].items()]
    return "\n".join(lines) + "\n"


def report_models(args: argparse.Namespace):
    """RRLSRN (``--model``), SRCNN and the ablations, each checked to exist."""
    from ..evaluation.report import ReportModels
    from ..resources import bundled_srcnn_path

    models = ReportModels(srcnn=args.srcnn or bundled_srcnn_path(), rrlsrn=args.model,
                          ablations=parse_ablations(args.ablation), ablation_reference=args.ablation_reference)
    if args.ablation_reference and not args.ablation_reference.is_file():
        raise UserInputError(f"--ablation-reference {args.ablation_reference} does not exist")
    if not models.srcnn.is_file():
        raise UserInputError(f"SRCNN model {models.srcnn} does not exist; train one with rrlsrn train --arch srcnn")
    return models


def run_all(args: argparse.Namespace, models, pairs) -> dict:
    """Every volume under every degradation (``evaluation.report.run_volume``), a line printed per run."""
    from ..evaluation.report import run_volume
    from ..evaluation.simulated_lr import matched_consistency
    from .engine_options import engine_options_from_args
    from .evaluate import volume_name
    from .progress_bar import terminal_progress

    runs_by_degradation = {}
    for degradation in args.degradation or DEGRADATIONS:
        options = engine_options_from_args(args, consistency=matched_consistency(args.consistency, degradation))
        runs = []
        for path, (volume, mask) in zip(args.hr, pairs):
            name = volume_name(path)
            runs.append(run_volume(name, volume.voxels, volume.geometry.spacing, mask, degradation, models, options,
                                   terminal_progress(f"{name} ({degradation})")))
            print(f"{degradation:>8} {name}: " + ", ".join(f"{label} {value:.2f}"
                                                        for label, value in runs[-1].psnr.items()), flush=True)
        runs_by_degradation[degradation] = runs
    return runs_by_degradation


def report_of(args: argparse.Namespace, models, runs_by_degradation: dict) -> dict:
    """The report's JSON: command, volumes, models, the tables (``evaluation.report``), conventions."""
    from ..evaluation import report as evaluation_report
    from ..evaluation.simulated_lr import conventions, matched_consistency
    from ..model.artifact import model_identity

    first_runs = next(iter(runs_by_degradation.values()))
    engine = first_runs[0].comparison.engine
    return {
        "command": " ".join(str(word) for word in getattr(args, "command_line", ["rrlsrn", "report"])),
        "volumes": [{"hr": str(path), "mask": str(args.mask[i]) if args.mask else None}
                    for i, path in enumerate(args.hr)],
        "region": "brain mask dilated in-plane" if args.mask else "Otsu foreground",
        "learned_models": {"consistency": args.consistency, "views": args.views, "detail": args.detail},
        "models": {**{f"rrlsrn_{degradation}": model_identity(args.model, matched_consistency(args.consistency,
                                                                                              degradation), args.scale)
                      for degradation in runs_by_degradation},
                   "srcnn": model_identity(models.srcnn),
                   **{name: model_identity(path) for name, path in models.ablations.items()}},
        "degradations": {degradation: evaluation_report.degradation_table(runs)
                         for degradation, runs in runs_by_degradation.items()},
        "ablations": evaluation_report.ablation_table(runs_by_degradation, models),
        "runtime": evaluation_report.runtime_table(first_runs, engine["device"], engine["precision"]),
        "scale": args.scale,
        "conventions": {degradation: conventions(degradation, args.scale) for degradation in runs_by_degradation},
    }


def save_figures(out: Path, runs_by_degradation: dict) -> None:
    """``figure_<degradation>.png``: the first volume's comparison panels under each degradation."""
    from .comparison_figure import comparison_panels, compose, save_png

    shown = ("cubic", "sinc", "srcnn", "rrlsrn")
    for degradation, runs in runs_by_degradation.items():
        run_ = runs[0]
        caption = f"{run_.name}\n{degradation} LR\nPSNR (volume):\n" + "\n".join(
            f"{LABELS[m]} {run_.psnr[m]:.2f}" for m in shown)
        panels = comparison_panels(run_.comparison, {m: LABELS[m] for m in shown}, caption)
        save_png(compose(panels), out / f"figure_{degradation}.png")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic_files import write_json, write_text
    from ..io.formats import check_output_path
    from .evaluate import read_inputs

    models = report_models(args)
    args.out.mkdir(parents=True, exist_ok=True)
    check_output_path(args.out / "report.json", [*args.hr, *(args.mask or [])])
    runs_by_degradation = run_all(args, models, read_inputs(args.hr, args.mask))
    report = report_of(args, models, runs_by_degradation)
    write_json(args.out / "report.json", report)
    text = markdown(report)
    write_text(args.out / "report.md", text)
    save_figures(args.out, runs_by_degradation)
    print(text)
    print(f"wrote {args.out / 'report.json'}, {args.out / 'report.md'} and figure_*.png")
    return 0
