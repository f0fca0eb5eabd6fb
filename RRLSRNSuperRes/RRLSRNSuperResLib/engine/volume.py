"""Slice-wise x2 super-resolution of a volume: the one entry point every front end uses.

Plane choice, per-volume normalisation, batching sized to free memory, device choice with
out-of-memory fallback, optional brain-box restriction, a self-ensemble of flipped views, the
projection that makes each output slice consistent with its input slice (``imaging.consistency``),
progress with cancel. The output is allocated once and filled as batches stream through (peak
memory: input + output + a batch).
Nothing is returned half-done: cancelling raises before the caller can write anything.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np
import torch

from ..errors import SuperResolutionCancelled, UserInputError
from ..imaging.consistency import CONSISTENCY_MODELS, project_onto_measurement
from ..imaging.degrade import cubic_spline_upsample_slice
from ..imaging.geometry import numpy_axis, slice_axis
from ..imaging.intensity import IntensityScale, cast_to, robust_scale
from ..model.artifact import load_model
from ..resources import bundled_model_path
from .adaptation import adapt_to_scan
from .devices import select_device
from .precision import precision_name, resolve_precision
from .self_ensemble import DEFAULT_VIEWS, VIEW_COUNTS
from .slice_runner import BatchTooLarge, SliceRunner, Window, receptive_radius

Progress = Callable[[float, str], Optional[bool]]
ModelSource = Union[None, str, Path, torch.nn.Module]

BOX_MARGIN_LR_PIXELS = 8
"""Margin around the mask's in-plane bounding box that is still super-resolved."""
_BYTES_PER_LR_PIXEL = 64 * 4 * 12  # live activations per input pixel (features at LR and HR), generous
# One slice at a time on the CPU: a 336x336 slice's activations stay in cache. Measured on this
# project's 2-core CPU, bundled model: 274 GFLOP/s at batch 1 vs 157 at batch 4 (float32),
# 540 vs 365 (bfloat16).
_CPU_BATCH = 1
_MEMORY_SHARE = 0.5


@dataclass
class SuperResolutionResult:
    """The x2 volume (numpy K x J x I) and how it was made."""

    voxels: np.ndarray
    slice_axis: int
    device: str
    seconds: float
    scale: IntensityScale
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"


# Room for every model one report runs (two bundled RRLSRN, SRCNN, three ablations): a smaller
# cache reloads each model for every volume, and the runtime table would time the loading.
@lru_cache(maxsize=8)
def _cached_model(path: str) -> tuple[torch.jit.ScriptModule, int]:
    model = load_model(Path(path))
    return model, receptive_radius(model)


def resolve_model(model: ModelSource, consistency: str = "kspace") -> tuple[torch.jit.ScriptModule, int]:
    """The model (None: the bundled one for ``consistency``, ``resources.bundled_model_path``) and
    its halo (receptive radius); files are loaded, checked and cached once."""
    if isinstance(model, torch.nn.Module):  # TorchScript modules are nn.Modules too
        return model, receptive_radius(model)
    return _cached_model(str(Path(model if model is not None else bundled_model_path(consistency)).resolve()))


def _check_voxels(voxels: np.ndarray) -> np.ndarray:
    if voxels.ndim != 3:
        raise UserInputError(f"expected a 3D scalar volume, got an array of shape {voxels.shape}")
    if voxels.size == 0:
        raise UserInputError("the volume has no voxels")
    if not np.issubdtype(voxels.dtype, np.number) or np.issubdtype(voxels.dtype, np.complexfloating):
        raise UserInputError(f"voxels of type {voxels.dtype} cannot be super-resolved; give real-valued scalars")
    if np.issubdtype(voxels.dtype, np.floating) and not np.isfinite(voxels).all():
        raise UserInputError("the volume has NaN or infinite voxels; replace them first")
    return voxels


def automatic_batch_size(device: torch.device, height: int, width: int) -> int:
    """Slices per batch: on CUDA as many as fit in half the free memory, on the CPU one (cache)."""
    per_slice = _BYTES_PER_LR_PIXEL * height * width
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, int(free * _MEMORY_SHARE // per_slice))
    return _CPU_BATCH


def brain_window(mask_slices: np.ndarray, margin: int = BOX_MARGIN_LR_PIXELS) -> Window:
    """In-plane bounding box of the mask (S x H x W) over all slices, plus a margin, clipped."""
    rows = np.flatnonzero(mask_slices.any(axis=(0, 2)))
    cols = np.flatnonzero(mask_slices.any(axis=(0, 1)))
    if rows.size == 0:
        raise UserInputError("the brain mask is empty; compute or draw a mask that covers the brain")
    height, width = mask_slices.shape[1:]
    return Window(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height),
                  max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width))


class _Reporter:
    """Calls ``progress`` and turns a ``False`` answer into cancellation."""

    def __init__(self, progress: Progress | None, offset: float = 0.0):
        self.progress = progress
        self.offset = offset  # progress already spent (adaptation); the rest is scaled into what remains

    def __call__(self, fraction: float, message: str) -> None:
        fraction = self.offset + (1 - self.offset) * float(fraction)
        if self.progress is not None and self.progress(fraction, message) is False:
            raise SuperResolutionCancelled("super-resolution cancelled; nothing was written")


def superresolve(
    voxels_kji: np.ndarray,
    spacing_ijk: tuple[float, float, float],
    *,
    plane: str = "auto",
    model: ModelSource = None,
    device: str = "auto",
    batch_size: int | None = None,
    mask_kji: np.ndarray | None = None,
    progress: Progress | None = None,
    output_dtype: np.dtype | None = None,
    precision: str = "auto",
    adapt_seconds: float = 0.0,
    consistency: str = "kspace",
    views: int = DEFAULT_VIEWS,
) -> SuperResolutionResult:
    """Super-resolve a volume x2 on its two in-plane axes, slice by slice.

    Parameters
    ----------
    voxels_kji : 3D array in numpy [k, j, i] order (SimpleITK and Slicer array order).
    spacing_ijk : voxel spacing in mm in IJK order; picks the acquisition plane.
    plane : ``auto`` (thickest axis is the slice axis), or ``i``/``j``/``k``.
    mask_kji : optional brain mask on the input grid: only its in-plane bounding box (plus
        ``BOX_MARGIN_LR_PIXELS``) is super-resolved, the rest is cubic spline; the
        intensity range is taken inside the mask.
    progress : ``progress(fraction, message)``; returning ``False`` cancels.
    output_dtype : ``None`` gives float32; e.g. the input's dtype on request.
    precision : ``auto`` (bfloat16 where the hardware runs it natively), ``fp32``, ``bf16``,
        ``fp16`` (CUDA); see ``engine.precision``.
    adapt_seconds : over 0, first fine-tune a copy of the model on this volume's own slices for
        about that long (``engine.adaptation``); the first half of the progress is the adaptation.
    consistency : the degradation the input came through, to which the output is made exactly
        consistent (``imaging.consistency``): ``kspace`` (default; a real MRI stack is the
        central k-space of its x2 output), ``bicubic`` (the paper's synthetic LR), ``none``.
        Without ``model``, it also picks the bundled model trained for that input.
    views : self-ensemble views averaged per slice (1, 2, 4 or 8; ``engine.self_ensemble``).
    """
    started = time.monotonic()
    report = _Reporter(progress)
    voxels = _check_voxels(np.asarray(voxels_kji))
    if adapt_seconds < 0:
        raise UserInputError(f"adaptation time must be 0 or more seconds, not {adapt_seconds}")
    if consistency not in CONSISTENCY_MODELS:
        raise UserInputError(f"consistency must be one of {', '.join(CONSISTENCY_MODELS)}, not {consistency!r}")
    if views not in VIEW_COUNTS:
        raise UserInputError(f"self-ensemble views must be one of {', '.join(map(str, VIEW_COUNTS))}, not {views}")
    if mask_kji is not None and np.shape(mask_kji) != voxels.shape:
        raise UserInputError(f"mask shape {np.shape(mask_kji)} differs from the volume's {voxels.shape}")
    axis = slice_axis(spacing_ijk, plane, size=voxels.shape[::-1])
    report(0.0, "loading model")
    network, halo = resolve_model(model, consistency)
    torch_device = select_device(device)
    compute_dtype = resolve_precision(precision, torch_device)
    # channels-last is 1.5x faster for these 3x3 convolutions on CPU (oneDNN) and fine on CUDA.
    network = network.to(torch_device).to(memory_format=torch.channels_last)
    scale = robust_scale(voxels, mask_kji)

    slices = np.moveaxis(voxels, numpy_axis(axis), 0)
    count, height, width = slices.shape
    notes: list[str] = []
    if adapt_seconds > 0:
        network, adaptation = adapt_to_scan(network, scale.normalise(slices), adapt_seconds, torch_device,
                                            compute_dtype, lambda fraction, message: report(fraction / 2, message),
                                            consistency)
        notes.append(adaptation.describe())
        report = _Reporter(progress, offset=0.5)
    output = np.empty(tuple(n * (1 if a == numpy_axis(axis) else 2) for a, n in enumerate(voxels.shape)),
                      dtype=np.float32)
    output_slices = np.moveaxis(output, numpy_axis(axis), 0)
    window = Window(0, height, 0, width)
    if mask_kji is not None:
        window = brain_window(np.moveaxis(np.asarray(mask_kji) > 0, numpy_axis(axis), 0))
        if window != Window(0, height, 0, width):
            for index in range(count):
                output_slices[index] = cubic_spline_upsample_slice(slices[index].astype(np.float32))

    done = 0
    runner = SliceRunner(network, torch_device, halo, notes=notes,
                         report=lambda message: report(done / count, message), compute_dtype=compute_dtype,
                         views=views)
    batch = batch_size or automatic_batch_size(torch_device, min(window.bottom - window.top + 2 * halo, height),
                                               min(window.right - window.left + 2 * halo, width))
    report(0.0, f"super-resolving {count} slices on {torch_device.type} in {precision_name(compute_dtype)}")
    with _deterministic(torch_device):
        while done < count:
            chunk = slices[done: done + batch]
            try:
                result = runner.run(scale.normalise(chunk), window)
            except BatchTooLarge:
                batch = max(1, batch // 2)
                runner.notes.append(f"out of GPU memory: batch reduced to {batch}")
                report(done / count, runner.notes[-1])
                continue
            target = output_slices[done: done + len(chunk), 2 * window.top: 2 * window.bottom,
                                   2 * window.left: 2 * window.right]
            target[...] = scale.restore(result)
            whole = output_slices[done: done + len(chunk)]
            if consistency != "none":
                whole[...] = project_onto_measurement(whole, chunk, consistency)
            _keep_constant_slices(chunk, whole)
            done += len(chunk)
            report(done / count, f"{done}/{count} slices")
    return SuperResolutionResult(cast_to(output, output_dtype), axis, runner.device.type,
                                 time.monotonic() - started, scale, runner.notes,
                                 precision_name(runner.compute_dtype))


def _keep_constant_slices(chunk: np.ndarray, target: np.ndarray) -> None:
    """A constant slice (padding, empty slab) stays exactly constant instead of network noise."""
    flat = chunk.reshape(len(chunk), -1)
    constant = flat.min(axis=1) == flat.max(axis=1)
    for index in np.flatnonzero(constant):
        target[index] = flat[index, 0]


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """cuDNN picks deterministic kernels inside the block (same input, same output)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
