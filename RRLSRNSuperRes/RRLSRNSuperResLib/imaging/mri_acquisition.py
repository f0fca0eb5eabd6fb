"""A randomised model of how a single-shot fast spin echo scan loses in-plane detail (for training).

:func:`degrade.kspace_downsample` is the ideal acquisition of a half-size matrix. A real
SSFSE/HASTE slice loses more, and each loss is a weight on the acquired k-space or an addition:

* **T2 decay along the echo train.** Phase-encoding lines further from the k-space centre are
  read later (the effective echo at the centre), so the spectrum along the phase-encoding axis
  is weighted by ``exp(-decay * |k| / k_edge)``: a blur along that axis only. ``decay`` is echo
  spacing x lines to the edge / T2 (e.g. 4.5 ms x 80 / 250 ms = 1.4).
* **Partial (half-) Fourier.** Only a share over 1/2 of the lines is read; the real part of the
  zero-filled reconstruction brings the frequencies read on one side only back at half amplitude.
* **Thermal noise**: Gaussian, added to the LR image, SD in normalised units (1 = the bright
  tissue level of ``imaging.intensity``). The default range covers the noise SD
  of the real acquired scans in the training data (``Testing/noise_estimate.py``, docs/model-card.md).

The phase-encoding axis is random per image. Works on torch batches ``N x 1 x H x W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .degrade import kspace_downsample


@dataclass(frozen=True)
class AcquisitionRanges:
    """The ranges each image's acquisition is drawn from (uniform unless stated)."""

    t2_decay: tuple[float, float] = (0.0, 2.0)
    partial_fourier_probability: float = 0.5
    partial_fourier_share: tuple[float, float] = (0.55, 0.75)
    noise_probability: float = 0.75
    noise_sd: tuple[float, float] = (0.005, 0.03)  # log-uniform


def phase_encoding_weights(lines: int, t2_decay: float, partial_fourier_share: float) -> np.ndarray:
    """The k-space weight of each phase-encoding line (fft order) of an ``lines``-line matrix."""
    k = np.fft.fftfreq(lines) * lines  # -lines/2 .. lines/2 - 1
    edge = lines / 2
    weights = np.exp(-t2_decay * np.abs(k) / edge)
    if partial_fourier_share < 1:
        both_sides = partial_fourier_share * lines - edge  # |k| read on both sides of the centre
        weights = np.where(np.abs(k) > both_sides, 0.5 * weights, weights)
    return weights


def simulate_acquisition(hr: torch.Tensor, rng: np.random.Generator,
                         ranges: AcquisitionRanges = AcquisitionRanges()) -> torch.Tensor:
    """LR (``N x 1 x H/2 x W/2``) of each HR image under its own randomly drawn acquisition."""
    lr = kspace_downsample(hr)
    count, _, height, width = lr.shape
    weights = np.ones((count, 1, height, width))
    for index in range(count):
        phase_axis = int(rng.integers(2))
        lines = (height, width)[phase_axis]
        share = (rng.uniform(*ranges.partial_fourier_share)
                 if rng.random() < ranges.partial_fourier_probability else 1.0)
        line_weights = phase_encoding_weights(lines, rng.uniform(*ranges.t2_decay), share)
        weights[index, 0] = line_weights[:, None] if phase_axis == 0 else line_weights[None, :]
    spectrum = torch.fft.fft2(lr.to(torch.float64)) * torch.from_numpy(weights).to(lr.device)
    lr = torch.fft.ifft2(spectrum).real
    noisy = rng.random(count) < ranges.noise_probability
    sd = np.where(noisy, np.exp(rng.uniform(*np.log(ranges.noise_sd), size=count)), 0.0)
    noise = rng.standard_normal(lr.shape) * sd[:, None, None, None]
    return (lr + torch.from_numpy(noise).to(lr.device)).to(hr.dtype)
