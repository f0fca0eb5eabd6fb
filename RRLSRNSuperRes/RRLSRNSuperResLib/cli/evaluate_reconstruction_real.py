"""``rrlsrn evaluate-reconstruction --leave-one-out STACK ...``: the real-data check, one row per left-out stack."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import UserInputError


def read_stacks(args: argparse.Namespace) -> list:
    """The real stacks (slices moved to k) with their masks, all read before any reconstruction starts."""
    from ..io.volumes import read_mask_on_grid, read_volume
    from ..reconstruction.stack_alignment import image_on_grid
    from ..reconstruction.stacks import stack_from_image
    from .evaluate import volume_name

    if not args.mask or len(args.mask) != len(args.leave_one_out):
        raise UserInputError(f"--leave-one-out needs one --mask per stack ({len(args.leave_one_out)} stacks, "
                             f"{len(args.mask or [])} masks), in the same order")
    if len(args.leave_one_out) < 3:
        raise UserInputError("--leave-one-out needs at least 3 stacks: 2 to reconstruct from and 1 to predict")
    stacks = []
    for path, mask_path in zip(args.leave_one_out, args.mask):
        volume = read_volume(path)
        image = image_on_grid(volume.voxels.astype("float32"), volume.geometry)
        stacks.append(stack_from_image(image, read_mask_on_grid(mask_path, volume), name=volume_name(path)))
    return stacks


def row(scores: dict) -> str:
    recon, naive = scores["reconstruction"], scores["naive_fusion"]
    return (f"{scores['left_out'][:28]:<28} | {recon['ncc']:>7.4f} {naive['ncc']:>7.4f} {scores['ncc_gain']:>+8.4f} | "
            f"{recon['psnr']:>7.2f} {naive['psnr']:>7.2f} {scores['psnr_gain_db']:>+8.2f} | "
            f"{'yes' if scores['ncc_gain'] > 0 and scores['psnr_gain_db'] > 0 else 'no':>5}")


def run_leave_one_out(args: argparse.Namespace) -> dict:
    """Each stack left out in turn; a row per stack as soon as it is done; the JSON report."""
    from ..engine.devices import select_device
    from ..evaluation.leave_one_out import LeaveOneOutSettings, leave_one_out
    from ..reconstruction.reconstruct import ReconstructionOptions

    options = ReconstructionOptions(device=str(select_device(args.device)))
    if args.resolution is not None:
        options = dataclasses.replace(options, resolution_mm=args.resolution)
    stacks = read_stacks(args)
    settings = LeaveOneOutSettings(options=options)
    header = (f"{'left-out stack':<28} | {'NCC rec':>7} {'naive':>7} {'gain':>8} | {'PSNR rec':>7} {'naive':>7} "
              f"{'gain dB':>8} | {'beats':>5}")
    results, rows = [], []
    for index in range(len(stacks)):
        results.append(leave_one_out(stacks, index, settings, log=lambda text: print(text, flush=True)))
        rows.append(row(results[-1]))
        print("\n".join([header, *rows]), flush=True)
    beaten = sum(int(r["ncc_gain"] > 0 and r["psnr_gain_db"] > 0) for r in results)
    print(f"reconstruction beats naive fusion (NCC and PSNR) for {beaten} of {len(results)} left-out stacks")
    return {"command": "rrlsrn evaluate-reconstruction --leave-one-out", "stacks": [str(p) for p in args.leave_one_out],
            "masks": [str(p) for p in args.mask], "results": results, "beaten": beaten}
