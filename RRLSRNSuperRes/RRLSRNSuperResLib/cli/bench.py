"""``rrlsrn bench``: time super-resolution and put its FLOP rate beside a float32 matmul's.

The matmul rate, measured in the same process just before, is what this machine's cores can
do in the best case, so "fraction of matmul" is comparable across machines; seconds are not.
The FLOPs are the network's, times the self-ensemble views; the seconds also hold the
consistency projection (``--consistency none --views 1`` times the bare network).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..io.atomic_files import write_json
from .engine_options import add_engine_options, engine_options_from_args

_MATMUL_SIDE = 2048
_PROBE_SIDE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, nargs="?", help="volume to time (default: the bundled sample)")
    # --model: e.g. a candidate architecture. The bundled sample is timed as given, without adaptation.
    add_engine_options(parser, omit=dict.fromkeys(("plane", "acquisition", "adapt_seconds"),
                                                  "bench times the network on the volume as given"))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (median reported)")
    parser.add_argument("--mask", type=Path, help="also time the brain-box restricted run with this mask")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 10) -> float:
    """GFLOP/s of a square matrix product in ``dtype`` on ``device`` (the machine's ceiling for it)."""
    a = torch.randn(_MATMUL_SIDE, _MATMUL_SIDE, device=device).to(dtype)
    b = torch.randn(_MATMUL_SIDE, _MATMUL_SIDE, device=device).to(dtype)
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


def peak_host_memory_mb() -> float:
    """This process's peak resident memory (ru_maxrss is kB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run(args: argparse.Namespace) -> int:
    from ..engine.devices import select_device
    from ..engine.volume import resolve_model, superresolve
    from ..imaging.geometry import numpy_axis, slice_axis
    from ..io.volumes import read_mask_on_grid, read_volume
    from ..model.artifact import model_identity
    from ..model.precision import precision_name, resolve_precision
    from ..resources import sample_volume_path

    options = engine_options_from_args(args)
    volume = read_volume(args.input or sample_volume_path())
    device = select_device(options.device)
    compute_dtype = resolve_precision(options.precision, device)
    model, _ = resolve_model(options.model, options.consistency)
    # x4: the second level runs on the first level's output, 4 times the input's pixels.
    flops = model_flops_per_lr_pixel(model) * volume.voxels.size * options.views * (5 if options.scale == 4 else 1)
    ceiling_fp32 = matmul_gflops(device)
    ceiling_same = ceiling_fp32 if compute_dtype is None else matmul_gflops(device, compute_dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def full() -> None:
        superresolve(volume.voxels, volume.geometry.spacing, options)

    seconds = _median_seconds(full, args.repeats)
    slices = volume.voxels.shape[numpy_axis(slice_axis(volume.geometry.spacing, size=volume.geometry.size))]
    achieved = flops / seconds / 1e9
    figures = {"input": str(args.input or sample_volume_path()), "voxels": list(volume.voxels.shape),
               "model": model_identity(options.model, options.consistency)["name"],
               "device": device.type, "precision": precision_name(compute_dtype),
               "consistency": options.consistency, "views": options.views, "detail": options.detail,
               "scale": options.scale,
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "seconds_median": round(seconds, 3), "slices_per_second": round(slices / seconds, 2),
               "model_gflop_fp32_counted": round(flops / 1e9, 2), "achieved_gflops": round(achieved, 2),
               "matmul_fp32_gflops": round(ceiling_fp32, 2),
               f"matmul_{precision_name(compute_dtype)}_gflops": round(ceiling_same, 2),
               "fraction_of_fp32_matmul": round(achieved / ceiling_fp32, 3),
               "fraction_of_same_precision_matmul": round(achieved / ceiling_same, 3),
               "peak_host_memory_mb": round(peak_host_memory_mb(), 1)}
    if device.type == "cuda":
        figures["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if args.mask:
        mask = read_mask_on_grid(args.mask, volume)

        def box() -> None:
            superresolve(volume.voxels, volume.geometry.spacing, options, mask_kji=mask)

        figures["box_seconds_median"] = round(_median_seconds(box, args.repeats), 3)
        figures["box_speedup"] = round(seconds / figures["box_seconds_median"], 2)
    for key, value in figures.items():
        print(f"{key:>34}: {value}")
    if args.json:
        write_json(args.json, figures)
    return 0
