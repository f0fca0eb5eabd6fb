"""Slice-wise x2 (or x4) super-resolution of a volume: the one entry point every front end uses.

x4 cascades two x2 levels: the first level's output is the second's input, while the measurement
stays the input: the second level's output is made consistent with the input slices at factor 4
(at x4 the input's k-space band is the central quarter on each axis), and the detail gain scales
what each level adds (``engine.detail_gain``). With the bundled model the second level is its own
network, trained on the first level's output (``resources.bundled_second_level_path``); a model
given by the caller runs both levels.

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
from typing import Iterator, Optional

import numpy as np
import torch

from ..errors import Progress, SuperResolutionCancelled, UserInputError
from ..imaging.consistency import project_onto_measurement
from ..imaging.degrade import cubic_spline_upsample_slice
from ..imaging.geometry import numpy_axis, slice_axis
from ..imaging.intensity import IntensityScale, cast_to, robust_scale
from ..model.artifact import load_model
from ..model.precision import precision_name, resolve_precision
from ..resources import bundled_model_path, bundled_second_level_path
from .adaptation import adapt_to_scan
from .detail_gain import DetailGain, keep_detail, network_x2, resolve_gain
from .devices import select_device
from .options import DEFAULT_OPTIONS, EngineOptions, ModelSource
from .slice_runner import BatchTooLarge, SliceRunner, Window, receptive_radius

BOX_MARGIN_LR_PIXELS = 8
"""Margin around the mask's in-plane bounding box that is still super-resolved."""
_BYTES_PER_LR_PIXEL = 64 * 4 * 12  # live activations per input pixel (features at LR and HR), generous
# One slice at a time on the CPU: a 336x336 slice's activations stay in cache. Measured on this
# project's 2-core CPU, bundled model: 274 GFLOP/s at batch 1 vs 157 at batch 4 (float32),
# 540 vs 365 (bfloat16).
_CPU_BATCH = 1
_MEMORY_SHARE = 0.5
LEVEL_ONE_SHARE = 0.2
"""The share of an x4 run's progress taken by its first level (the second has 4x the pixels)."""


@dataclass
class SuperResolutionResult:
    """The x2 (or x4) volume (numpy K x J x I) and how it was made."""

    voxels: np.ndarray
    slice_axis: int
    device: str
    seconds: float
    scale: IntensityScale
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"
    detail_gain: float = 1.0
    """The share of the network's out-of-band detail kept (``engine.detail_gain``; a map's mean)."""


# Room for every model one report runs (two bundled RRLSRN, their two x4 second levels, SRCNN,
# three ablations): a smaller cache reloads each model for every volume, and the runtime table
# would time the loading.
@lru_cache(maxsize=10)
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
    """Calls ``progress`` and turns a ``False`` answer into cancellation; its fractions 0 to 1 are mapped
    into ``start`` to ``stop`` (what adaptation or a cascade's other level leaves)."""

    def __init__(self, progress: Progress | None, start: float = 0.0, stop: float = 1.0):
        self.progress = progress
        self.start, self.stop = start, stop

    def __call__(self, fraction: float, message: str) -> None:
        fraction = self.start + (self.stop - self.start) * float(fraction)
        if self.progress is not None and self.progress(fraction, message) is False:
            raise SuperResolutionCancelled("super-resolution cancelled; nothing was written")

    def part(self, start: float, stop: float) -> _Reporter:
        """The reporter of the share ``start`` to ``stop`` of this one's range."""
        span = self.stop - self.start
        return _Reporter(self.progress, self.start + span * start, self.start + span * stop)


@dataclass
class _Run:
    """One level's run: its input slices (``S x H x W`` view along the numpy axis ``through``), the x2
    output being filled (KJI, and the same view of it), the network on its device, the intensity scale,
    the window; ``measured``: the input slices the output is made consistent with, None: ``slices``
    (the first level; a cascade's second level keeps the first level's input)."""

    slices: np.ndarray
    output: np.ndarray
    output_slices: np.ndarray
    runner: SliceRunner
    scale: IntensityScale
    window: Window
    through: int
    measured: Optional[np.ndarray] = None
    done: int = 0


def superresolve(voxels_kji: np.ndarray, spacing_ijk: tuple[float, float, float],
                 options: EngineOptions = DEFAULT_OPTIONS, *, mask_kji: np.ndarray | None = None,
                 progress: Progress | None = None, output_dtype: np.dtype | None = None) -> SuperResolutionResult:
    """Super-resolve a volume x2 (``options.scale`` 4: x4) on its two in-plane axes, slice by slice, on the
    grid as given.

    Parameters
    ----------
    voxels_kji : 3D array in numpy [k, j, i] order (SimpleITK and Slicer array order).
    spacing_ijk : voxel spacing in mm in IJK order; picks the acquisition plane.
    options : model, device, precision, plane, batch size, consistency, views, adaptation, detail
        (``engine.options.EngineOptions``; its ``acquisition`` is applied by
        ``engine.acquisition.superresolve_acquired``). With ``adapt_seconds`` over 0 the first
        half of the progress is the adaptation.
    mask_kji : optional brain mask on the input grid: only its in-plane bounding box (plus
        ``BOX_MARGIN_LR_PIXELS``) is super-resolved, the rest is cubic spline; the
        intensity range is taken inside the mask.
    progress : ``progress(fraction, message)``; returning ``False`` cancels.
    output_dtype : ``None`` gives float32; e.g. the input's dtype on request.
    """
    started = time.monotonic()
    voxels = _check_voxels(np.asarray(voxels_kji))
    if mask_kji is not None and np.shape(mask_kji) != voxels.shape:
        raise UserInputError(f"mask shape {np.shape(mask_kji)} differs from the volume's {voxels.shape}")
    axis = slice_axis(spacing_ijk, options.plane, size=voxels.shape[::-1])
    report = _Reporter(progress)
    report(0.0, "loading model")
    run, report = _prepare(voxels, numpy_axis(axis), options, mask_kji, report, progress)
    batch = _batch_size(run, options)
    gain = _calibrate_detail(run, options, batch, report)
    report(0.0, f"super-resolving {len(run.slices)} slices on {run.runner.device.type} in "
                f"{precision_name(run.runner.compute_dtype)}")
    first_share = LEVEL_ONE_SHARE if options.scale == 4 else 1.0
    _fill(run, options, batch, gain, report.part(0.0, first_share))
    if options.scale == 4:
        run = _second_level(run, options)
        _fill(run, options, _batch_size(run, options), gain, report.part(first_share, 1.0))
    return SuperResolutionResult(cast_to(run.output, output_dtype), axis,
                                 run.runner.device.type, time.monotonic() - started, run.scale, run.runner.notes,
                                 precision_name(run.runner.compute_dtype), gain.mean)


def _prepare(voxels: np.ndarray, through: int, options: EngineOptions, mask_kji: np.ndarray | None,
             report: _Reporter, progress: Progress | None) -> tuple[_Run, _Reporter]:
    """Model on its device (adapted first if asked), scale, window, and the output with the cubic
    spline outside the window; the reporter for what remains."""
    network, halo = resolve_model(options.model, options.consistency)
    device = select_device(options.device)
    compute_dtype = resolve_precision(options.precision, device)
    network = _on_device(network, device)
    scale = robust_scale(voxels, mask_kji)
    slices = np.moveaxis(voxels, through, 0)
    notes: list[str] = []
    if options.adapt_seconds > 0:
        network, adaptation = adapt_to_scan(network, scale.normalise(slices), options.adapt_seconds, device,
                                            compute_dtype, lambda fraction, message: report(fraction / 2, message),
                                            options.consistency)
        notes.append(adaptation.describe())
        report = _Reporter(progress, start=0.5)
    count, height, width = slices.shape
    window = Window(0, height, 0, width)
    if mask_kji is not None:
        window = brain_window(np.moveaxis(np.asarray(mask_kji) > 0, through, 0))
    output, output_slices = _allocate_output(slices, through, window)
    runner = SliceRunner(network, device, halo, notes=notes, report=lambda message: report(run.done / count, message),
                         compute_dtype=compute_dtype, views=options.views)
    run = _Run(slices, output, output_slices, runner, scale, window, through)
    return run, report


def _on_device(network: torch.jit.ScriptModule, device: torch.device) -> torch.jit.ScriptModule:
    # channels-last is 1.5x faster for these 3x3 convolutions on CPU (oneDNN) and fine on CUDA.
    return network.to(device).to(memory_format=torch.channels_last)


def _allocate_output(slices: np.ndarray, through: int, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """The x2 output (KJI float32, the slices along numpy axis ``through``) and its ``S x 2H x 2W`` view;
    cubic spline where a window smaller than the slice leaves the network out."""
    count, height, width = slices.shape
    shape = [count, 2 * height, 2 * width]
    shape.insert(through, shape.pop(0))
    output = np.empty(tuple(shape), dtype=np.float32)
    output_slices = np.moveaxis(output, through, 0)
    if window != Window(0, height, 0, width):
        for index in range(count):
            output_slices[index] = cubic_spline_upsample_slice(slices[index].astype(np.float32))
    return output, output_slices


def _second_level(first: _Run, options: EngineOptions) -> _Run:
    """A cascade's x2 -> x4 level: the first level's output is its input, its window doubled, the same
    intensity scale and measurement (the first level's input slices). Its network: without a model
    option the bundled second level (``resources.bundled_second_level_path``, never adapted) on the
    first level's device, precision and views; else the first level's (adapted) network."""
    window = Window(*(2 * edge for edge in (first.window.top, first.window.bottom, first.window.left,
                                            first.window.right)))
    output, output_slices = _allocate_output(first.output_slices, first.through, window)
    runner = first.runner
    if options.model is None:
        network, halo = resolve_model(bundled_second_level_path(options.consistency))
        runner = SliceRunner(_on_device(network, runner.device), runner.device, halo, notes=runner.notes,
                             compute_dtype=runner.compute_dtype, views=runner.views)
    runner.notes.append(_cascade_note(options))
    return _Run(first.output_slices, output, output_slices, runner, first.scale, window, first.through,
                measured=first.slices)


def _cascade_note(options: EngineOptions) -> str:
    """What ran at x4: which network at the second level, and whether the output keeps the input."""
    second = ("the bundled second level, trained on the first level's output" if options.model is None
              else "the given model at both levels, not the bundled second level trained for x4")
    kept = (f"made consistent with the input at factor 4 ({options.consistency})" if options.consistency != "none"
            else "not projected onto the input (--consistency none)")
    return f"x4: two cascaded x2 levels, {second}; the output {kept}"


def _batch_size(run: _Run, options: EngineOptions) -> int:
    """Slices per batch: the option, else what the window (plus the halo) allows."""
    height, width = run.slices.shape[1:]
    window, halo = run.window, run.runner.halo
    return options.batch_size or automatic_batch_size(
        run.runner.device, min(window.bottom - window.top + 2 * halo, height),
        min(window.right - window.left + 2 * halo, width))


def _calibrate_detail(run: _Run, options: EngineOptions, batch: int, report: _Reporter) -> DetailGain:
    """The share of the network's out-of-band detail to keep (``engine.detail_gain``), noted."""
    calibrating = network_x2(run.runner, batch, lambda: report(0.0, "calibrating the detail gain"))
    gain = resolve_gain(options.detail, options.consistency, calibrating, run.scale.normalise(run.slices))
    run.runner.notes.append(gain.note)
    return gain


def _fill(run: _Run, options: EngineOptions, batch: int, gain: DetailGain, report: _Reporter) -> None:
    """Stream the slices through the network in batches (halved on GPU out-of-memory), restore their
    intensities, project onto the measurement, keep the detail gain's share of the out-of-band
    detail and keep constant slices constant."""
    count = len(run.slices)
    window = run.window
    run.runner.report = lambda message: report(run.done / count, message)
    with _deterministic(run.runner.device):
        while run.done < count:
            chunk = run.slices[run.done: run.done + batch]
            try:
                result = run.runner.run(run.scale.normalise(chunk), window)
            except BatchTooLarge:
                batch = max(1, batch // 2)
                run.runner.notes.append(f"out of GPU memory: batch reduced to {batch}")
                report(run.done / count, run.runner.notes[-1])
                continue
            part = slice(run.done, run.done + len(chunk))
            whole = run.output_slices[part]
            whole[:, 2 * window.top: 2 * window.bottom, 2 * window.left: 2 * window.right] = run.scale.restore(result)
            if options.consistency != "none":
                whole[...] = _made_consistent(run, whole, part, gain, options.consistency)
            _keep_constant_slices(chunk, whole)
            run.done += len(chunk)
            report(run.done / count, f"{run.done}/{count} slices")


def _made_consistent(run: _Run, estimate: np.ndarray, part: slice, gain: DetailGain, consistency: str) -> np.ndarray:
    """``estimate`` (the slices ``part`` of this level's output) projected onto the measured input slices
    (at factor 4 on a cascade's second level), with the detail gain's share of what this level adds."""
    measured = run.slices[part] if run.measured is None else run.measured[part]
    level_input = None if run.measured is None else run.slices[part]
    return keep_detail(project_onto_measurement(estimate, measured, consistency), measured,
                       gain.for_slices(part.start, part.stop), consistency, level_input)


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
