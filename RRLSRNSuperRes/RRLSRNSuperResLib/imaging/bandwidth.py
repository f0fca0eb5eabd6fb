"""Effective in-plane resolution of a stack from its spectrum: is it scanner-interpolated?

Scanners often reconstruct on a finer matrix than they acquired by zero-filling k-space (GE's
ZIP, the reconstruction matrices of Siemens and Philips). Such a stack has almost no energy
beyond the acquired band: its pixels are finer than its detail. The estimate here finds that
band edge per in-plane axis from the data alone:

- power spectra of Hann-windowed, mean-removed patches, so the view's cropped edges leak
  nothing; patches holding exact zeros (a masked background) are skipped, so mask edges
  leak nothing either;
- averaged over every patch and slice, then summed onto each in-plane axis;
- the band edge is the first frequency past which the power stays more than
  ``CLIFF_DB`` below the power just inside it. Acquired noise fills the whole band up to
  Nyquist, so an image as acquired shows no such cliff; a zero-filled one does, at
  ``1 / factor`` of Nyquist. The window spreads a sharp edge so that the power at the edge
  is half that inside it: the edge is placed where the power first falls 3 dB below the
  inside level, to a fraction of a spectral bin.

Arrays are numpy [k, j, i]; spacings are IJK in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import numpy_axis

CLIFF_DB = 20.0  # power beyond the band edge this far below the power inside it
EDGE_DB = 3.0  # a sharp edge seen through the window: half the inside power
INTERPOLATED_FACTOR = 1.2  # a band narrower than Nyquist / 1.2 on an axis: interpolated
LOWEST_DETECTED_FRACTION = 0.25  # edges below a quarter of Nyquist (x4) are not looked for
_EDGE_BINS = 3  # the Hann window smears a cliff over about +-2 bins
_MAX_PATCHES = 4000
_MIN_PATCHES = 16  # fewer usable patches of a size than this: try smaller patches


@dataclass(frozen=True)
class InPlaneBandwidth:
    """Band limit of each in-plane IJK axis, as a fraction of its Nyquist frequency (1 = full)."""

    axes: tuple[int, int]  # the two in-plane IJK axes
    band_fraction: tuple[float, float]
    spacing_mm: tuple[float, float]
    sizes: tuple[int, int]  # voxels along the two in-plane axes
    measured: bool = True  # False when the stack was too small or had no usable patch

    @property
    def factors(self) -> tuple[float, float]:
        """How much finer the pixels are than the detail, per axis (1 = as acquired)."""
        return tuple(1.0 / fraction for fraction in self.band_fraction)

    @property
    def effective_mm(self) -> tuple[float, float]:
        return tuple(s / fraction for s, fraction in zip(self.spacing_mm, self.band_fraction))

    @property
    def interpolated(self) -> bool:
        return self.measured and max(self.factors) >= INTERPOLATED_FACTOR

    @property
    def acquisition_sizes(self) -> tuple[int, int]:
        """In-plane matrix the stack was acquired on: its size times the band fraction."""
        return tuple(max(2, int(round(n * fraction))) for n, fraction in zip(self.sizes, self.band_fraction))

    def describe(self) -> str:
        """E.g. "effective in-plane resolution 2.25 x 2.25 mm: zero-fill interpolated x2.00 x 2.00"."""
        if not self.measured:
            return "effective in-plane resolution not measured (stack too small or all background)"
        a, b = self.effective_mm
        text = f"effective in-plane resolution {a:.4g} x {b:.4g} mm"
        fa, fb = self.factors
        if self.interpolated and min(self.factors) >= INTERPOLATED_FACTOR:
            return text + f": zero-fill interpolated x{fa:.2f} x {fb:.2f}"
        if self.interpolated:
            return text + f": band-limited on one axis only, x{fa:.2f} x {fb:.2f} (a reduced phase-encoding matrix?)"
        return text + ", as acquired"


def estimate_bandwidth(voxels_kji: np.ndarray, spacing_ijk, slice_axis_ijk: int) -> InPlaneBandwidth:
    """Measure the in-plane band limit of a stack sliced along IJK ``slice_axis_ijk``."""
    axes = tuple(axis for axis in (0, 1, 2) if axis != slice_axis_ijk)
    slices = np.moveaxis(np.asarray(voxels_kji), numpy_axis(slice_axis_ijk), 0)
    # numpy's slice rows run along the later IJK axis of the two (KJI order is reversed).
    spacing = tuple(float(spacing_ijk[axis]) for axis in axes)
    sizes = tuple(int(slices.shape[2 if axis == axes[0] else 1]) for axis in axes)
    power = _patch_power(slices)
    if power is None:
        return InPlaneBandwidth(axes, (1.0, 1.0), spacing, sizes, measured=False)
    rows, cols = power.sum(axis=1), power.sum(axis=0)  # along numpy rows (later IJK axis), columns
    fraction_rows, fraction_cols = _band_fraction(rows), _band_fraction(cols)
    return InPlaneBandwidth(axes, (fraction_cols, fraction_rows), spacing, sizes)


def _patch_power(slices: np.ndarray) -> np.ndarray | None:
    """Mean power spectrum (fft order) of the largest Hann-windowed patches (64 or 32 pixels)
    of which enough hold no exact zero: smaller patches fit inside a masked brain. Smaller
    still, the few bins to Nyquist cannot tell a cliff from a natural fall."""
    for size in (64, 32):
        if min(slices.shape[1:]) >= size:
            power, count = _patch_power_of_size(slices, size)
            if count >= _MIN_PATCHES:
                return power
    return None


def _patch_power_of_size(slices: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    _, height, width = slices.shape
    step = size // 2
    window = np.outer(np.hanning(size), np.hanning(size))
    corners = [(s, y, x) for s in range(slices.shape[0]) for y in range(0, height - size + 1, step)
               for x in range(0, width - size + 1, step)]
    if len(corners) > _MAX_PATCHES:
        corners = [corners[i] for i in np.linspace(0, len(corners) - 1, _MAX_PATCHES).astype(int)]
    total, count = np.zeros((size, size)), 0
    for s, y, x in corners:
        patch = slices[s, y: y + size, x: x + size].astype(np.float64)
        if not np.all(patch != 0) or patch.min() == patch.max():
            continue
        total += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
        count += 1
    return total / max(count, 1), count


def _band_fraction(power_fft_order: np.ndarray) -> float:
    """Band edge along one axis as a fraction of Nyquist (1.0 when no cliff is found).

    The cliff is the steepest fall of the power over ``_EDGE_BINS + 1`` bins; it counts when
    it falls by ``CLIFF_DB`` and nothing beyond it rises back within ``CLIFF_DB`` of the
    level inside. Natural image spectra fall a few dB over that span, never 20.
    """
    size = power_fft_order.size
    half = size // 2
    folded = power_fft_order[: half + 1].copy()
    folded[1:half] += power_fft_order[size - 1: half: -1]
    level = 10.0 * np.log10(np.maximum(folded, np.finfo(float).tiny))
    first = max(2, int(np.ceil(LOWEST_DETECTED_FRACTION * half)))
    edges = range(first, half - _EDGE_BINS + 1)
    if not edges:
        return 1.0
    drops = [level[edge - 1] - level[edge + _EDGE_BINS] for edge in edges]
    edge = edges[int(np.argmax(drops))]
    inside = float(level[edge - 1])
    if max(drops) < CLIFF_DB or level[edge + _EDGE_BINS:].max() > inside - CLIFF_DB:
        return 1.0
    crossing = _first_crossing(level, edge - 1, inside - EDGE_DB)
    return float(np.clip(crossing / half, LOWEST_DETECTED_FRACTION, 1.0))


def _first_crossing(level: np.ndarray, start: int, value: float) -> float:
    """Fractional bin where ``level`` first falls below ``value`` after ``start``."""
    for index in range(start, level.size - 1):
        if level[index] >= value > level[index + 1]:
            return index + (level[index] - value) / (level[index] - level[index + 1])
    return float(level.size - 1)
