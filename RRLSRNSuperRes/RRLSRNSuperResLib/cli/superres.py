"""``rrlsrn superres INPUT OUTPUT``: the main job, from a file to a file on the exact x2 grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.devices import DEVICES
from ..imaging.geometry import PLANES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="volume SimpleITK reads (NIfTI, NRRD, MHA, DICOM folder)")
    parser.add_argument("output", type=Path, help="x2 volume to write (written atomically; never the input)")
    parser.add_argument("--model", type=Path, help="TorchScript model (default: the bundled RRLSRN x2)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--plane", choices=PLANES, default="auto",
                        help="IJK axis to slice along (auto: the thickest; k for isotropic volumes)")
    parser.add_argument("--mask", type=Path,
                        help="brain mask on the input grid: only its box (plus a margin) is super-resolved, "
                             "the rest is cubic spline")
    parser.add_argument("--extract-brain", action="store_true",
                        help="with --mask: set voxels outside the brain to 0 in the output (paper Fig. 1a)")
    parser.add_argument("--mask-output", type=Path, metavar="PATH",
                        help="with --mask: also write the mask on the x2 grid (uint8 0/1)")
    parser.add_argument("--batch", type=int, help="slices per batch (default: from free memory)")
    parser.add_argument("--output-type", choices=("float32", "input"), default="float32",
                        help="float32 keeps overshoot (default); 'input' rounds to the input's pixel type")
    parser.add_argument("--replace-nonfinite", type=float, metavar="VALUE",
                        help="replace NaN/Inf voxels by VALUE instead of refusing the file")


def run(args: argparse.Namespace) -> int:
    from ..pipeline.stack import StackOptions, superresolve_file
    from .progress_bar import terminal_progress

    options = StackOptions(plane=args.plane, device=args.device, batch_size=args.batch,
                           keep_input_type=args.output_type == "input", extract_brain=args.extract_brain,
                           replace_nonfinite=args.replace_nonfinite)
    result = superresolve_file(args.input, args.output, model=args.model, options=options, mask=args.mask,
                               mask_output=args.mask_output, progress_for=terminal_progress)
    geometry = result.geometry
    print(f"wrote {result.output}: {geometry.size[0]}x{geometry.size[1]}x{geometry.size[2]} voxels of "
          f"{' x '.join(f'{s:.4g}' for s in geometry.spacing)} mm, slicing along {'ijk'[result.slice_axis]}, "
          f"{result.seconds:.1f} s on {result.device}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
