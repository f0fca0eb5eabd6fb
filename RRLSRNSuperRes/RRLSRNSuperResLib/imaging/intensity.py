"""Per-volume intensity normalisation for the network, and its exact inverse.

The network is not scale-invariant (biases, LeakyReLU), so every volume is mapped to the
range it was trained on: ``lo`` (a low percentile of the whole volume, 0 for most MRI)
to 0 and ``hi`` (a high percentile of the *foreground*) to 1. The foreground matters:
some fetal stacks are 1% brain in a field of view of maternal tissue and air.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.0
_MAX_SAMPLES = 2_000_000


@dataclass(frozen=True)
class IntensityScale:
    """Affine map ``normalised = (value - lo) / (hi - lo)``."""

    lo: float
    hi: float

    @property
    def width(self) -> float:
        return self.hi - self.lo if self.hi > self.lo else 1.0

    def normalise(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float32) - np.float32(self.lo)) / np.float32(self.width)).astype(
            np.float32, copy=False
        )

    def restore(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) * np.float32(self.width) + np.float32(self.lo)).astype(
            np.float32, copy=False
        )


def _subsample(values: np.ndarray) -> np.ndarray:
    """A strided sample keeps percentiles of big volumes cheap and deterministic."""
    flat = values.reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLES)
    return flat[::step]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 256-bin histogram (scikit-image's ``threshold_otsu``, in numpy).

    Written out because Slicer's Python has no scikit-image; the bin edges, bin centres and
    the between-class variance follow scikit-image exactly, so thresholds are identical.
    """
    flat = np.asarray(values).reshape(-1)
    if flat.min() == flat.max():
        return float(flat[0])
    counts, edges = np.histogram(flat, bins=bins, range=(flat.min(), flat.max()))
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight_low = np.cumsum(counts)
    weight_high = np.cumsum(counts[::-1])[::-1]
    mean_low = np.cumsum(counts * centres) / weight_low
    mean_high = (np.cumsum((counts * centres)[::-1]) / weight_high[::-1])[::-1]
    between = weight_low[:-1] * weight_high[1:] * (mean_low[:-1] - mean_high[1:]) ** 2
    return float(centres[int(np.argmax(between))])


def foreground_threshold(values: np.ndarray) -> float:
    """Otsu threshold between background and tissue (on a subsample)."""
    return otsu_threshold(_subsample(values).astype(np.float32))


def robust_scale(volume: np.ndarray, mask: np.ndarray | None = None) -> IntensityScale:
    """Robust intensity range of a volume; ``mask`` (same shape) restricts ``hi`` to the brain."""
    values = np.asarray(volume)
    sample = _subsample(values).astype(np.float32)
    lo = float(np.percentile(sample, LOW_PERCENTILE))
    if mask is not None and np.any(mask):
        foreground = values[np.asarray(mask) > 0].astype(np.float32)
    else:
        foreground = sample[sample > foreground_threshold(values)]
    if foreground.size == 0:
        foreground = sample
    hi = float(np.percentile(foreground, HIGH_PERCENTILE))
    return IntensityScale(lo=lo, hi=hi)


def cast_to(values: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """Float32 by default (overshoot kept); an integer type is rounded and clipped to its range."""
    if dtype is None or np.dtype(dtype) == np.float32:
        return values
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def integer_type_holds(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``values``, rounded into the integer ``dtype``, lose nothing but what no image holds.

    The top of the type's range must hold the result (a bright overshoot clipped would be lost
    signal). Below an unsigned type's 0 lie only the network's small undershoots of a
    magnitude image's dark background, which clipping removes as it should.
    """
    info = np.iinfo(dtype)
    if np.rint(values.max()) > info.max:
        return False
    return info.min == 0 or bool(np.rint(values.min()) >= info.min)
