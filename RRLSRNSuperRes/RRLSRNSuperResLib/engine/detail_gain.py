"""How much of the network's invented detail to keep: a gain on the out-of-band part, per stack.

After the consistency projection the x2 output is ``b + d``: ``b = D^+ lr``, the measured
band alone (zero-fill for k-space LR), and ``d``, what the network adds where the
measurement says nothing (for k-space, outside the central half of the spectrum). On
smooth, high-SNR stacks the network adds more ``d`` than the anatomy has, and the output
falls below zero-fill. The delivered image is ``b + g d`` with ``g`` in [0, 1]
(a gain map is applied per pixel and projected again): the output stays exactly consistent
with the LR.

``auto`` calibrates ``g`` on the stack itself, one octave down: the LR slices are k-space
degraded once more, super-resolved by the same network and views, projected, and the
least-squares gain of their out-of-band part against the real LR is measured
(``g_down``), locally (a smooth fetal brain among sharp maternal tissue needs less
than its surroundings). One octave down the image is sharper relative to its pixels, so
detail is more real there: ``g_down`` over-states the gain wanted at the real scale, and is
shrunk by ``AUTO_SHRINK`` (chosen on the stress set of ``evaluation.stress_set``; see
docs/results.md). It applies where the consistency model is ``kspace``, the model the
calibration simulates; elsewhere ``auto`` keeps all detail.

At x4 (two cascaded x2 levels, ``engine.volume``) the gain is calibrated once, on the input
as at x2, and scales what each level adds: at the first level the detail beyond the input's
band, at the second what it adds to the first level's output. There is no measurement one
octave below the second level's input (its k-space beyond the input's band is the first level's
own guess), so it is not calibrated again: the first level's gain is the best measured estimate
of how much of this network's detail the stack supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch

from ..imaging.consistency import project_onto_measurement
from ..imaging.degrade import crop_to_multiple, downsample_slices
from ..imaging.local_gain import local_gain
from .options import Detail, parse_detail
from .slice_runner import BatchTooLarge, SliceRunner, Window

AUTO_SHRINK = 0.75
"""``g = clip(AUTO_SHRINK * g_down, 0, 1)``; chosen on the stress set only (docs/results.md)."""
AUTO_SIGMA_PIXELS = 12.0
"""Gaussian SD (LR pixels) of the local calibration; chosen with ``AUTO_SHRINK``."""
_MIN_CALIBRATION_SIDE = 8  # LR pixels one octave down; below that the calibration says nothing


def calibrate_gain(x2: Callable[[np.ndarray], np.ndarray], slices: np.ndarray) -> np.ndarray:
    """``auto``'s gain map (``S x h x w`` in [0, 1], on the LR grid) for ``slices`` (``S x h x w``,
    normalised); ``x2`` is the engine's network (views included) on ``S x h' x w'`` slices.

    The least-squares gain one octave down is measured locally (``imaging.local_gain``, a
    Gaussian of ``AUTO_SIGMA_PIXELS``), so a smooth brain inside sharp maternal tissue gets its
    own gain. See the module docstring.
    """
    lr = crop_to_multiple(slices.astype(np.float32))
    if min(lr.shape[1:]) < 2 * _MIN_CALIBRATION_SIDE:
        return np.ones(slices.shape, dtype=np.float32)
    lower = downsample_slices(lr, "kspace")
    estimate = project_onto_measurement(x2(lower), lower, "kspace").astype(np.float64)
    base = project_onto_measurement(np.zeros_like(estimate), lower, "kspace").astype(np.float64)
    local = local_gain(lr - base, estimate - base, AUTO_SIGMA_PIXELS)
    gain = np.clip(AUTO_SHRINK * local, 0.0, 1.0).astype(np.float32)
    rows, cols = slices.shape[1] - lr.shape[1], slices.shape[2] - lr.shape[2]
    return np.pad(gain, ((0, 0), (0, rows), (0, cols)), mode="edge")


@dataclass(frozen=True)
class DetailGain:
    """The gain applied: one number, or (``auto``) a map on the LR grid of the whole stack."""

    gain: Union[float, np.ndarray]
    note: str

    @property
    def mean(self) -> float:
        return float(np.mean(self.gain))

    def for_slices(self, start: int, stop: int) -> Union[float, np.ndarray]:
        return self.gain if np.ndim(self.gain) == 0 else self.gain[start:stop]


def resolve_gain(detail: Detail, consistency: str, x2: Callable[[np.ndarray], np.ndarray],
                 slices: np.ndarray) -> DetailGain:
    """The gain to apply and how it was chosen (a note), for ``detail`` under ``consistency``."""
    detail = parse_detail(detail)
    if detail == "full":
        return DetailGain(1.0, "detail gain 1.00 (full)")
    if detail == "auto":
        if consistency != "kspace":
            return DetailGain(1.0, f"detail gain 1.00 (auto: calibrated for k-space consistency only, here "
                                   f"{consistency})")
        gain = calibrate_gain(x2, slices)
        return DetailGain(gain, f"detail gain {gain.mean():.2f} on average, {np.percentile(gain, 10):.2f} to "
                                f"{np.percentile(gain, 90):.2f} (10th-90th percentile; auto, calibrated locally "
                                "one octave down)")
    return DetailGain(float(detail), f"detail gain {float(detail):.2f} (given)")


def network_x2(runner: SliceRunner, batch: int,
               on_batch: Callable[[], None] = lambda: None) -> Callable[[np.ndarray], np.ndarray]:
    """The runner on whole normalised slices ``S x h x w`` -> ``S x 2h x 2w``, ``batch`` at a time
    (halved when the GPU says the batch is too large); ``on_batch()`` before each batch (progress,
    which may raise to cancel)."""
    def x2(slices: np.ndarray) -> np.ndarray:
        size, outputs, start = batch, [], 0
        window = Window(0, slices.shape[1], 0, slices.shape[2])
        while start < len(slices):
            on_batch()
            try:
                outputs.append(runner.run(slices[start: start + size], window))
            except BatchTooLarge:
                size = max(1, size // 2)
                continue
            start += size
        return np.concatenate(outputs)
    return x2


def keep_detail(projected: np.ndarray, lr: np.ndarray, gain: Union[float, np.ndarray], consistency: str,
                level_input: Optional[np.ndarray] = None) -> np.ndarray:
    """``b + gain (projected - b)``, ``b = D^+ lr``: the out-of-band part scaled, the measured band
    kept exactly (``projected`` must be consistent with ``lr``). A gain map (``S x h x w``, on the
    LR grid) is taken per pixel and the result projected again, so it stays consistent.

    ``level_input``: on a cascade's second level (``projected`` on the x4 grid of ``lr``), the first
    level's output (``S x 2h x 2w``, consistent with ``lr``): then ``b = D^+ level_input``, so the
    gain scales what the second level adds, and the result is projected onto ``lr`` at factor 4 again.
    """
    if np.ndim(gain) == 0 and gain == 1.0:
        return projected
    with torch.no_grad():
        base = project_onto_measurement(np.zeros_like(projected), lr if level_input is None else level_input,
                                        consistency)
    if np.ndim(gain) == 0 and level_input is None:
        return (base + gain * (projected - base)).astype(np.float32)
    factor = projected.shape[1] // np.shape(gain)[1] if np.ndim(gain) else 1
    per_pixel = np.repeat(np.repeat(gain, factor, axis=1), factor, axis=2) if np.ndim(gain) else gain
    return project_onto_measurement(base + per_pixel * (projected - base), lr, consistency)
