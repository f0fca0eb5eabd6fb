"""``rrlsrn superres INPUT OUTPUT``: the main job, from a file to a file on the exact x2 (``--scale 4``: x4) grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io.formats import OUTPUT_FORMATS, OUTPUT_TYPES
from .engine_options import add_engine_options, engine_options_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="volume SimpleITK reads (NIfTI, NRRD, MHA, DICOM folder)")
    parser.add_argument("output", type=Path,
                        help="x2 (--scale 4: x4) volume to write (atomically; never the input): a file, or a "
                             "folder with --output-format dicom")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS,
                        help="default: from OUTPUT's extension (.nii.gz, .nii, .nrrd, .mha); dicom writes a "
                             "derived series into a new folder")
    parser.add_argument("--series", metavar="UID|NUMBER|DESCRIPTION",
                        help="the series to read when INPUT is a DICOM folder holding several")
    add_engine_options(parser)
    parser.add_argument("--mask", type=Path,
                        help="brain mask on the input grid: only its box (plus a margin) is super-resolved, "
                             "the rest is cubic spline")
    parser.add_argument("--extract-brain", action="store_true",
                        help="with --mask: set voxels outside the brain to 0 in the output (paper Fig. 1a)")
    parser.add_argument("--mask-output", type=Path, metavar="PATH",
                        help="with --mask: also write the mask on the output grid (uint8 0/1)")
    parser.add_argument("--output-type", choices=OUTPUT_TYPES, default="auto",
                        help="auto (default): an integer input's type, rounded, unless that would clip, else "
                             "float32; float32: always, overshoot kept; input: the input's type, clipped")
    parser.add_argument("--replace-nonfinite", type=float, metavar="VALUE",
                        help="replace NaN/Inf voxels by VALUE instead of refusing the file")
    # For a parent process (Slicer's background run): PROGRESS and RESULT lines on stdout.
    parser.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the job; with ``--progress-lines`` a user error is also printed for the parent, in Slicer's words."""
    from .progress_bar import run_for_parent

    return run_for_parent(_run, args)


def _run(args: argparse.Namespace) -> int:
    from ..pipeline.stack import StackOptions, superresolve_file
    from .progress_bar import print_result_line, print_written_and_notes, progress_lines, terminal_progress

    options = StackOptions(engine=engine_options_from_args(args), output_type=args.output_type,
                           extract_brain=args.extract_brain, replace_nonfinite=args.replace_nonfinite)
    result = superresolve_file(args.input, args.output, options=options, mask=args.mask,
                               mask_output=args.mask_output, output_format=args.output_format, series=args.series,
                               progress_for=(lambda label: progress_lines()) if args.progress_lines
                               else terminal_progress)
    if args.progress_lines:
        print_result_line({"slice_axis": result.slice_axis, "device": result.device, "precision": result.precision,
                           "seconds": result.seconds, "notes": result.notes})
    geometry = result.geometry
    print(f"{geometry.size[0]}x{geometry.size[1]}x{geometry.size[2]} voxels of "
          f"{' x '.join(f'{s:.4g}' for s in geometry.spacing)} mm, slicing along {'ijk'[result.slice_axis]}, "
          f"{result.seconds:.1f} s on {result.device} in {result.precision}, detail gain {result.detail_gain:.2f} "
          f"({options.engine.detail if isinstance(options.engine.detail, str) else 'given'})")
    print_written_and_notes(result.written, result.notes)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
