"""``rrlsrn superres INPUT OUTPUT``: the main job, from a file to a file on the exact x2 grid."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..engine.devices import DEVICES
from ..errors import UserInputError
from ..imaging.geometry import PLANES, upsampled_geometry


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
    from ..engine.volume import superresolve
    from ..io.volumes import check_output_path, read_mask_on_grid, read_volume, write_volume
    from ..masks.transfer import mask_to_x2_grid
    from .progress_bar import terminal_progress

    if args.batch is not None and args.batch < 1:
        raise UserInputError("--batch must be at least 1")
    if (args.extract_brain or args.mask_output) and not args.mask:
        raise UserInputError("--extract-brain and --mask-output need --mask (make one with: rrlsrn mask INPUT MASK)")
    inputs = [args.input] + ([args.mask] if args.mask else [])
    output = check_output_path(args.output, inputs)
    mask_output = check_output_path(args.mask_output, inputs + [output]) if args.mask_output else None
    volume = read_volume(args.input, replace_nonfinite=args.replace_nonfinite)
    mask = read_mask_on_grid(args.mask, volume) if args.mask else None
    # Vector images (e.g. RGB, multi-echo) are super-resolved one component at a time.
    components = volume.voxels[..., None] if volume.components == 1 else volume.voxels
    results = []
    for component in range(components.shape[-1]):
        label = "superres" if volume.components == 1 else f"component {component + 1}/{volume.components}"
        results.append(superresolve(
            components[..., component], volume.geometry.spacing, plane=args.plane, model=args.model,
            device=args.device, batch_size=args.batch, mask_kji=mask, progress=terminal_progress(label),
            output_dtype=volume.voxels.dtype if args.output_type == "input" else None))
    voxels = results[0].voxels if volume.components == 1 else np.stack([r.voxels for r in results], axis=-1)
    geometry = upsampled_geometry(volume.geometry, results[0].slice_axis)
    if mask is not None:
        mask_x2 = mask_to_x2_grid(mask, results[0].slice_axis)
        if args.extract_brain:
            voxels = voxels * (mask_x2 if volume.components == 1 else mask_x2[..., None]).astype(voxels.dtype)
        if mask_output:
            write_volume(mask_output, mask_x2.astype(np.uint8), geometry)
    write_volume(output, voxels, geometry, components=volume.components)
    seconds = sum(r.seconds for r in results)
    print(f"wrote {output}: {geometry.size[0]}x{geometry.size[1]}x{geometry.size[2]} voxels of "
          f"{' x '.join(f'{s:.4g}' for s in geometry.spacing)} mm, slicing along {'ijk'[results[0].slice_axis]}, "
          f"{seconds:.1f} s on {results[0].device}")
    for note in (note for r in results for note in r.notes):
        print(f"note: {note}")
    return 0
