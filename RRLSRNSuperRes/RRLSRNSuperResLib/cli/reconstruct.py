"""``rrlsrn reconstruct STACK [STACK ...] --output OUT``: one motion-corrected isotropic volume from several stacks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .engine_options import add_engine_options, engine_options_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stacks", type=Path, nargs="+", metavar="STACK",
                        help="two or more stacks of one subject, any orientation (NIfTI, NRRD, MHA, DICOM folder)")
    parser.add_argument("--output", type=Path, required=True,
                        help="the volume to write (.nii.gz, .nii, .nrrd, .mha); its brain mask <name>_mask and "
                             "sidecar <name>.json (slice poses and weights) are written beside it")
    parser.add_argument("--mask", type=Path, nargs="+", default=[], metavar="MASK",
                        help="one brain mask per stack, in the same order (default: the automatic fetal brain mask)")
    parser.add_argument("--resolution", type=float, default=0.8, metavar="MM",
                        help="isotropic voxel size of the output in mm (default 0.8)")
    parser.add_argument("--thickness", type=float, metavar="MM",
                        help="slice thickness (slice profile FWHM) of every stack in mm (default: each stack's slice "
                             "spacing)")
    parser.add_argument("--no-superres", dest="superres", action="store_false",
                        help="fuse the stacks as they are, without RRLSRN x2 in-plane first (to measure what it adds)")
    parser.add_argument("--no-motion-correction", dest="motion_correction", action="store_false",
                        help="trust the headers: no stack alignment and no slice-to-volume registration")
    add_engine_options(parser,
                       omit={"scale": "each stack is super-resolved x2 in-plane, as the reconstruction expects"})
    # For a parent process (Slicer's background run): PROGRESS, then RESULT (or ERROR) lines on stdout.
    parser.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the job; with ``--progress-lines`` a user error is also printed for the parent, in Slicer's words."""
    from .progress_bar import run_for_parent

    return run_for_parent(_run, args)


def _run(args: argparse.Namespace) -> int:
    from ..model.artifact import model_identity
    from ..pipeline.reconstruction import (
        ReconstructionJob,
        overall_progress,
        reconstruct_files,
        reconstruction_options,
        run_summary,
    )
    from .progress_bar import print_result_line, print_written_and_notes, progress_lines, terminal_progress

    engine = engine_options_from_args(args)
    options = reconstruction_options(args.resolution, engine, args.motion_correction)
    job = ReconstructionJob(stacks=tuple(args.stacks), output=args.output, masks=tuple(args.mask),
                            superres=args.superres, thickness_mm=args.thickness, engine=engine,
                            reconstruction=options)
    provenance = {"Model": model_identity(engine.model, engine.consistency) if args.superres else None,
                  "Command": args.command_line}
    files = reconstruct_files(job, progress_for=overall_progress(job, progress_lines()) if args.progress_lines
                              else terminal_progress, provenance=provenance)
    if args.progress_lines:
        print_result_line(run_summary(files, job))
    result = files.result
    size = "x".join(str(n) for n in result.geometry.size)
    rejected = result.parameters.get("slices_rejected", 0)
    print(f"{size} voxels of {args.resolution:g} mm from {len(args.stacks)} stacks in {result.seconds:.1f} s "
          f"on {options.device}; template {args.stacks[result.template_index].name}, "
          f"{rejected} slice{'s' if rejected != 1 else ''} rejected")
    print_written_and_notes(files.written, files.notes)
    return 0
