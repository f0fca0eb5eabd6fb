"""``rrlsrn bids BIDS_DIR OUTPUT_DIR participant``: the BIDS App (BIDS Apps command-line convention)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserInputError
from .engine_options import add_engine_options, engine_options_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bids_dir", type=Path, help="the BIDS dataset (read only)")
    parser.add_argument("output_dir", type=Path,
                        help="the derivatives dataset to write (e.g. BIDS_DIR/derivatives/rrlsrn)")
    parser.add_argument("analysis_level", choices=["participant"], help="participant: each stack on its own")
    parser.add_argument("--participant-label", nargs="+", default=[], metavar="L",
                        help="only these participants (with or without 'sub-'); default all")
    parser.add_argument("--session-label", nargs="+", default=[], metavar="S", help="only these sessions")
    parser.add_argument("--suffix", nargs="+", default=["T2w"], help="image suffixes to process (default T2w)")
    parser.add_argument("--jobs", type=int, default=1, help="stacks processed at once, in separate processes")
    add_engine_options(parser)
    parser.add_argument("--reconstruct", action="store_true",
                        help="instead of each stack x2, one motion-corrected isotropic volume per session from all "
                             "its selected stacks (at least 2): <sub>[_<ses>]_desc-rrlsrnsvr_<suffix>.nii.gz")
    parser.add_argument("--resolution", type=float, metavar="MM",
                        help="with --reconstruct: isotropic voxel size in mm (default 0.8)")
    parser.add_argument("--no-superres", dest="superres", action="store_false",
                        help="with --reconstruct: fuse the stacks without RRLSRN x2 in-plane first")
    parser.add_argument("--mask-from-derivatives", type=Path, metavar="DIR",
                        help="a derivatives dataset with each stack's <name>_desc-brain_mask.nii.gz: restricts "
                             "the network to the brain and writes the mask on the x2 grid")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--skip-existing", dest="overwrite", action="store_false", default=False,
                       help="skip stacks whose outputs name the same model and options (default)")
    reuse.add_argument("--overwrite", dest="overwrite", action="store_true", help="process every stack again")


def _report(done: int, total: int, entry: dict) -> None:
    status = entry["status"]
    detail = f"in {entry['seconds']:.1f} s" if status != "failed" else entry["error"]
    print(f"[{done}/{total}] {entry['source']}: {status} {detail}", flush=True)


def reconstruction_job(args: argparse.Namespace, engine):
    """With ``--reconstruct``, what every session's reconstruction runs (its files are filled in per session)."""
    from ..engine.devices import select_device
    from ..pipeline.reconstruction import ReconstructionJob
    from ..reconstruction.reconstruct import ReconstructionOptions

    if not args.reconstruct:
        if args.resolution is not None or not args.superres:
            raise UserInputError("--resolution and --no-superres go with --reconstruct")
        return None
    if engine.scale != 2:
        raise UserInputError("--reconstruct super-resolves each stack x2 before fusing them; leave --scale at 2")
    resolution = 0.8 if args.resolution is None else args.resolution
    if not resolution > 0:
        raise UserInputError(f"--resolution must be positive, not {resolution}")
    options = ReconstructionOptions(resolution_mm=resolution, device=str(select_device(engine.device)))
    return ReconstructionJob(stacks=(), output=Path(), superres=args.superres, engine=engine, reconstruction=options)


def run(args: argparse.Namespace) -> int:
    from ..bids.app import RunSettings, run_participants
    from ..bids.dataset import find_stacks
    from ..pipeline.stack import StackOptions

    if args.jobs < 1:
        raise UserInputError("--jobs must be at least 1")
    bids_dir, output_dir = args.bids_dir.resolve(), args.output_dir.resolve()
    if output_dir == bids_dir:
        raise UserInputError("OUTPUT_DIR must not be BIDS_DIR itself; use e.g. BIDS_DIR/derivatives/rrlsrn")
    if args.mask_from_derivatives and not args.mask_from_derivatives.is_dir():
        raise UserInputError(f"--mask-from-derivatives {args.mask_from_derivatives} is not a folder")
    engine = engine_options_from_args(args)
    reconstruction = reconstruction_job(args, engine)
    print(f"rrlsrn bids: indexing {bids_dir} ...", flush=True)  # pybids takes seconds on a large dataset
    stacks = find_stacks(bids_dir, args.participant_label, args.session_label, args.suffix)
    if not stacks:
        raise UserInputError(f"no anat/*_{'|'.join(args.suffix)}.nii[.gz] stack matches in {bids_dir}")
    settings = RunSettings(output_dir, StackOptions(engine=engine), args.mask_from_derivatives, args.overwrite,
                           tuple(args.command_line), reconstruction)
    log = run_participants(bids_dir, stacks, settings, jobs=args.jobs, report=_report)
    summary, count = log["summary"], len(log["stacks"])
    unit = ("session" if args.reconstruct else "stack") + ("s" if count != 1 else "")
    print(f"rrlsrn bids: {count} {unit}: {summary['done']} done, {summary['skipped']} skipped, "
          f"{summary['failed']} failed; log {log['path']}")
    return 1 if summary["failed"] else 0
