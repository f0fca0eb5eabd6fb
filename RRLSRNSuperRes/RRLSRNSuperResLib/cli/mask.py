"""``rrlsrn mask``: automatic fetal brain mask of a stack, written as a 0/1 label on its grid."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..errors import UserInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="T2 stack (anything SimpleITK reads: NIfTI, NRRD, MHA, DICOM folder)")
    parser.add_argument("output", help="mask file to write (uint8 0/1 on the input grid), e.g. brain_mask.nii.gz")
    parser.add_argument("--seed", metavar="X,Y,Z",
                        help="a point inside the fetal brain in RAS mm, as Slicer shows it "
                             "(default: the field-of-view centre); write --seed=-12,40,8 when X is negative")
    parser.add_argument("--reference", metavar="MASK", help="manual mask on the same grid: print the Dice overlap")


def parse_seed(text: str) -> np.ndarray:
    """``"X,Y,Z"`` in RAS mm -> a point in LPS mm (SimpleITK's frame: x and y negated)."""
    try:
        ras = np.array([float(part) for part in text.split(",")])
    except ValueError:
        ras = np.array([])
    if ras.shape != (3,) or not np.all(np.isfinite(ras)):
        raise UserInputError(f"--seed {text!r} is not three numbers X,Y,Z in RAS mm, e.g. --seed 12.5,-30,40")
    return ras * np.array([-1.0, -1.0, 1.0])


def run(args: argparse.Namespace) -> int:
    from ..evaluation.metrics import dice
    from ..io.formats import check_output_path
    from ..io.volumes import read_volume, write_volume
    from ..masks.fetal_brain import fetal_brain_mask, implausibility, mask_volume_ml

    output = check_output_path(args.output, [args.input])
    volume = read_volume(args.input)
    if volume.components != 1:
        raise UserInputError(f"{args.input} has {volume.components} components per voxel; give a scalar T2 stack")
    seed_ijk = None if args.seed is None else volume.geometry.physical_to_index(parse_seed(args.seed))
    started = time.perf_counter()
    mask = fetal_brain_mask(volume.voxels, volume.geometry.spacing, seed_ijk)
    seconds = time.perf_counter() - started
    write_volume(output, mask, volume.geometry)
    volume_ml = mask_volume_ml(mask, volume.geometry.spacing)
    print(f"brain mask: {volume_ml:.0f} mL in {seconds:.1f} s; wrote {output} (uint8 0/1)")
    for problem in implausibility(mask, volume.geometry.spacing):
        print(f"warning: {problem}", file=sys.stderr)
    if args.reference:
        reference = read_volume(args.reference).voxels
        if reference.shape != mask.shape:
            raise UserInputError(f"--reference {args.reference} has shape {reference.shape[::-1]} (IJK), "
                                 f"not the input's {mask.shape[::-1]}")
        print(f"Dice against {args.reference}: {dice(mask, reference > 0.5):.3f}")
    return 0
