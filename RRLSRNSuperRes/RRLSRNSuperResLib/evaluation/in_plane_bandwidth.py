"""How much in-plane detail an x2 stack really carries: its equivalent bandwidth against a noise-free truth.

The coherent transfer of an x2 stack X against a reference R on the same grid (the truth seen through
the slice profile, no in-plane blur) is T(f) = Re sum X(f) R*(f) / sum |R(f)|^2 in bands of the spatial
frequency along one in-plane axis (cycles per x2 pixel, summed over the other axis and the slices);
noise, uncorrelated with R, drops out. The equivalent bandwidth is the integral of T, clipped to
[0, 1], over 0..0.5 cycles per pixel: a zero-filled stack has its acquired band, 0.25. The ratio of the
two widths sets the in-plane PSF of a super-resolved stack (``reconstruction.stacks.RRLSRN_PSF_FRACTION``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

BANDS = 10


def equivalent_bandwidth(stack_kji: np.ndarray, reference_kji: np.ndarray, axis: str, bands: int = BANDS) -> float:
    """Integral of the coherent transfer (cycles per pixel) along in-plane ``axis`` ("i" or "j")."""
    numpy_axis = {"i": 2, "j": 1}[axis]
    spectrum, reference = np.fft.fft2(stack_kji), np.fft.fft2(reference_kji)
    frequency = np.abs(np.fft.fftfreq(stack_kji.shape[numpy_axis]))
    shape = [1, 1, 1]
    shape[numpy_axis] = frequency.size
    frequency = np.broadcast_to(frequency.reshape(shape), stack_kji.shape)
    edges = np.linspace(0.0, 0.5, bands + 1)
    cross, _ = np.histogram(frequency, edges, weights=np.real(spectrum * np.conj(reference)))
    power, _ = np.histogram(frequency, edges, weights=np.abs(reference) ** 2)
    transfer = np.clip(cross / np.maximum(power, 1e-12), 0.0, 1.0)
    return float(transfer.sum() * (edges[1] - edges[0]))


def x2_bandwidths(voxels_kji: np.ndarray, brain_kji: np.ndarray, geometry, noise_fraction: float,
                  model: Optional[Path] = None) -> dict:
    """Equivalent bandwidths along i and j of zero-filled and RRLSRN x2 stacks simulated (no motion) from a volume."""
    from ..imaging.geometry import upsampled_geometry
    from ..reconstruction.motion import MOTION_LEVELS
    from ..reconstruction.simulation import SampledVolume, SimulationSettings, acquire, simulate_from_arrays
    from .simulated_reconstruction import superresolved, zero_filled

    settings = SimulationSettings(motion=MOTION_LEVELS["none"], noise_fraction=noise_fraction)
    volume = SampledVolume.of(voxels_kji, geometry)
    pairs = {"zero_fill": [], "rrlsrn": []}
    for item in simulate_from_arrays(voxels_kji, brain_kji, geometry, settings):
        stack = item.stack
        reference = acquire(volume, upsampled_geometry(stack.geometry, 2), item.transforms, stack.thickness_mm)
        pairs["zero_fill"].append((zero_filled(stack).voxels_kji, reference))
        pairs["rrlsrn"].append((superresolved(stack, model, "cpu").voxels_kji, reference))
    return {method: {axis: float(np.mean([equivalent_bandwidth(x, r, axis) for x, r in stacks])) for axis in "ij"}
            for method, stacks in pairs.items()}
