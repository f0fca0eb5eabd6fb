"""``rrlsrn bench``: time super-resolution and put its FLOP rate beside a float32 matmul's.

The matmul rate, measured in the same process just before, is what this machine's cores can
do in the best case, so "fraction of matmul" is comparable across machines; seconds are not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..engine.devices import DEVICES

_MATMUL_SIDE = 2048
_PROBE_SIDE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, nargs="?", help="volume to time (default: the bundled sample)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (median reported)")
    parser.add_argument("--mask", type=Path, help="also time the brain-box restricted run with this mask")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, repeats: int = 10) -> float:
    """float32 GFLOP/s of a square matrix product on ``device`` (the machine's ceiling)."""
    a = torch.randn(_MATMUL_SIDE, _MATMUL_SIDE, device=device)
    b = torch.randn(_MATMUL_SIDE, _MATMUL_SIDE, device=device)
    for _ in range(2):
        a @ b
    _synchronise(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronise(device)
    return 2 * _MATMUL_SIDE**3 * repeats / (time.perf_counter() - started) / 1e9


def model_flops_per_lr_pixel(model: torch.jit.ScriptModule) -> float:
    """FLOPs per input pixel, counted by torch on a probe (any TorchScript model, no card needed)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 1, _PROBE_SIDE, _PROBE_SIDE))
    return counter.get_total_flops() / _PROBE_SIDE**2


def _median_seconds(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def run(args: argparse.Namespace) -> int:
    from ..engine.devices import select_device
    from ..engine.volume import resolve_model, superresolve
    from ..io.volumes import read_mask_on_grid, read_volume
    from ..resources import sample_volume_path

    volume = read_volume(args.input or sample_volume_path())
    device = select_device(args.device)
    model, _ = resolve_model(None)
    flops = model_flops_per_lr_pixel(model) * volume.voxels.size
    ceiling = matmul_gflops(device)

    def full() -> None:
        superresolve(volume.voxels, volume.geometry.spacing, device=args.device, batch_size=args.batch)

    seconds = _median_seconds(full, args.repeats)
    figures = {"input": str(args.input or sample_volume_path()), "voxels": list(volume.voxels.shape),
               "device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "seconds_median": round(seconds, 3), "model_gflop": round(flops / 1e9, 2),
               "achieved_gflops": round(flops / seconds / 1e9, 2), "matmul_gflops": round(ceiling, 2),
               "fraction_of_matmul": round(flops / seconds / 1e9 / ceiling, 3)}
    if args.mask:
        mask = read_mask_on_grid(args.mask, volume)

        def box() -> None:
            superresolve(volume.voxels, volume.geometry.spacing, device=args.device, batch_size=args.batch,
                         mask_kji=mask)

        figures["box_seconds_median"] = round(_median_seconds(box, args.repeats), 3)
        figures["box_speedup"] = round(seconds / figures["box_seconds_median"], 2)
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0
