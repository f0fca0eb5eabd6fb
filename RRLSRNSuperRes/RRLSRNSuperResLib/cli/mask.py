"""``rrlsrn mask``: automatic fetal brain mask of a stack, written as a 0/1 label on its grid."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UserInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="T2 stack (anything SimpleITK reads: NIfTI, NRRD, MHA, DICOM folder)")
    parser.add_argument("output", help="mask file to write (uint8 0/1 on the input grid), e.g. brain_mask.nii.gz")
    parser.add_argument("--seed", metavar="X,Y,Z",
                        help="a point inside the fetal brain in RAS mm, as Slicer shows it "
                             "(default: the field-of-view centre); write --seed=-12,40,8 when X is negative")
    parser.add_argument("--reference", metavar="MASK", help="manual mask on the same grid: print the Dice overlap")
    parser.add_argument("--variants", action="store_true",
                        help="with --reference: also mask the robustness variants of the stack (crops, intensity "
                             "scale, flips, noise, in-plane resampling) and print the Dice of each")
    parser.add_argument("--summary", type=Path, metavar="JSON",
                        help="with --variants: add this stack's per-variant Dice to JSON (created if missing) "
                             "and print the mean and minimum over every stack in it")


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
    from ..imaging.overlap import dice
    from ..io.formats import check_output_path
    from ..io.volumes import read_volume, write_volume
    from ..masks.fetal_brain import fetal_brain_mask, mask_volume_ml

    if args.variants and not args.reference:
        raise UserInputError("--variants needs --reference MASK: the Dice of each variant is against it")
    if args.summary and not args.variants:
        raise UserInputError("--summary collects the Dice of the variants: give --variants too")
    output = check_output_path(args.output, [args.input])
    volume = read_volume(args.input)
    if volume.components != 1:
        raise UserInputError(f"{args.input} has {volume.components} components per voxel; give a scalar T2 stack")
    reference = None
    if args.reference:
        reference = read_volume(args.reference).voxels > 0.5
        if reference.shape != volume.voxels.shape:
            raise UserInputError(f"--reference {args.reference} has shape {reference.shape[::-1]} (IJK), "
                                 f"not the input's {volume.voxels.shape[::-1]}")
    seed_ijk = None if args.seed is None else volume.geometry.physical_to_index(parse_seed(args.seed))
    started = time.perf_counter()
    result = fetal_brain_mask(volume.voxels, volume.geometry.spacing, seed_ijk)
    seconds = time.perf_counter() - started
    write_volume(output, result.voxels, volume.geometry)
    volume_ml = mask_volume_ml(result.voxels, volume.geometry.spacing)
    print(f"brain mask: {volume_ml:.0f} mL, confidence {result.confidence:.2f}, in {seconds:.1f} s; "
          f"wrote {output} (uint8 0/1)")
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if reference is not None:
        print(f"Dice against {args.reference}: {dice(result.voxels, reference):.3f}")
    if args.variants:
        scores = _variant_scores(volume.voxels, reference, volume.geometry.spacing)
        if args.summary:
            _print_summary(_add_to_summary(args.summary, str(args.input), scores))
    return 0


def _variant_scores(voxels: np.ndarray, reference: np.ndarray, spacing_ijk) -> dict:
    """Mask each robustness variant of the stack; print and return its Dice, confidence and seconds."""
    from ..evaluation.mask_variants import variants
    from ..imaging.overlap import dice
    from ..masks.fetal_brain import fetal_brain_mask

    scores = {}
    for variant in variants(voxels, reference, spacing_ijk):
        started = time.perf_counter()
        try:
            result = fetal_brain_mask(variant.voxels, variant.spacing_ijk)
            score = {"dice": dice(result.voxels, variant.reference), "confidence": result.confidence}
        except UserInputError as error:  # no brain found: a failure of the method, scored as Dice 0
            score = {"dice": 0.0, "confidence": 0.0, "error": str(error)}
        score["seconds"] = time.perf_counter() - started
        scores[variant.name] = score
        print(f"  {variant.name:22s} Dice {score['dice']:.3f}  confidence {score['confidence']:.2f}  "
              f"{score['seconds']:.1f} s")
    return scores


def _add_to_summary(path: Path, stack: str, scores: dict) -> dict:
    from ..io.atomic_files import write_json

    summary = json.loads(path.read_text()) if path.exists() else {"stacks": {}}
    summary["stacks"][stack] = scores
    write_json(path, summary)
    return summary


def _print_summary(summary: dict) -> None:
    stacks = summary["stacks"]
    names = list(next(iter(stacks.values())))
    print(f"over {len(stacks)} stacks:")
    for name in names:
        values = [scores[name]["dice"] for scores in stacks.values() if name in scores]
        seconds = [scores[name]["seconds"] for scores in stacks.values() if name in scores]
        print(f"  {name:22s} Dice mean {np.mean(values):.3f}  min {np.min(values):.3f}  "
              f"seconds median {np.median(seconds):.1f}")
