"""HR -> LR simulation (x2 in-plane) and the interpolation baselines, as fixed by DESIGN.md.

LR pixel ``j`` is centred between HR pixels ``2j`` and ``2j+1``: the x2 output grid of
``imaging.geometry`` read backwards, so SR(LR) and HR share one grid. All functions work on
torch batches ``N x 1 x H x W`` (H, W even for degradation); numpy wrappers work per slice.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

DEGRADATIONS = ("bicubic", "kspace")


def bicubic_downsample(hr: torch.Tensor) -> torch.Tensor:
    """The paper's degradation: antialiased bicubic x1/2."""
    return F.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)


def _kspace_crop_1d(spectrum: torch.Tensor, dim: int) -> torch.Tensor:
    """Keep the central half of ``spectrum`` along ``dim`` with a +1/2 HR-pixel phase shift.

    The shift moves the band-limited samples from HR pixel 2j onto the LR centre 2j + 1/2.
    Output is in ``ifftshift`` order of the cropped length, ready for ``ifft``.
    """
    n = spectrum.shape[dim]
    m = n // 2
    centred = torch.fft.fftshift(spectrum, dim=dim)
    start = n // 2 - m // 2
    cropped = centred.narrow(dim, start, m)
    freqs = torch.arange(m, device=spectrum.device, dtype=torch.float64) - m // 2
    phase = torch.exp(1j * torch.pi * freqs / n).to(spectrum.dtype)
    shape = [1] * spectrum.ndim
    shape[dim] = m
    return torch.fft.ifftshift(cropped * phase.view(shape), dim=dim)


def _kspace_pad_1d(spectrum: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of :func:`_kspace_crop_1d`: undo the +1/2-pixel phase, zero-pad to twice the length.

    Input and output are in ``ifftshift`` order; the band keeps the crop's frequencies
    [-m/2, m/2), so cropping the result again gives ``spectrum`` back exactly.
    """
    m = spectrum.shape[dim]
    n = 2 * m
    freqs = torch.arange(m, device=spectrum.device, dtype=torch.float64) - m // 2
    phase = torch.exp(-1j * torch.pi * freqs / n).to(spectrum.dtype)
    shape = [1] * spectrum.ndim
    shape[dim] = m
    centred = torch.fft.fftshift(spectrum, dim=dim) * phase.view(shape)
    pad_shape = list(spectrum.shape)
    pad_shape[dim] = n
    padded = torch.zeros(pad_shape, dtype=spectrum.dtype, device=spectrum.device)
    padded.narrow(dim, n // 2 - m // 2, m).copy_(centred)
    return torch.fft.ifftshift(padded, dim=dim)


def zero_fill_upsample(lr: torch.Tensor) -> torch.Tensor:
    """Zero-fill (sinc) interpolation x2: what MRI scanners do, and the exact inverse of
    :func:`kspace_downsample` on the same x2 grid (``kspace_downsample(zero_fill_upsample(x))
    == x`` for an x with no energy at its Nyquist frequency). The baseline for k-space LR."""
    spectrum = torch.fft.fft2(lr.to(torch.float64)) * 4.0
    spectrum = _kspace_pad_1d(_kspace_pad_1d(spectrum, -2), -1)
    return torch.fft.ifft2(spectrum).real.to(lr.dtype)


def kspace_downsample(hr: torch.Tensor) -> torch.Tensor:
    """MRI acquisition model: central half of the 2D spectrum, real part, divided by 4."""
    spectrum = torch.fft.fft2(hr.to(torch.float64))
    spectrum = _kspace_crop_1d(_kspace_crop_1d(spectrum, -2), -1)
    return (torch.fft.ifft2(spectrum).real / 4.0).to(hr.dtype)


def downsample(hr: torch.Tensor, degradation: str) -> torch.Tensor:
    """Dispatch by name (``bicubic`` or ``kspace``)."""
    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "bicubic": bicubic_downsample,
        "kspace": kspace_downsample,
    }
    if degradation not in functions:
        raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")
    return functions[degradation](hr)


def bicubic_upsample(lr: torch.Tensor) -> torch.Tensor:
    """Bicubic x2 baseline (``align_corners=False``: same x2 grid as the model)."""
    return F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)


def zero_fill_upsample_slices(lr_slices: np.ndarray) -> np.ndarray:
    """Zero-fill (sinc) x2 of a stack ``S x h x w`` of float slices."""
    with torch.no_grad():
        lr = torch.from_numpy(np.ascontiguousarray(lr_slices, dtype=np.float32))[:, None]
        return zero_fill_upsample(lr)[:, 0].numpy()


def cubic_spline_upsample_slice(lr_slice: np.ndarray) -> np.ndarray:
    """Cubic spline x2 baseline of DESIGN.md for one 2D slice."""
    from scipy import ndimage

    return ndimage.zoom(lr_slice, 2, order=3, mode="reflect", grid_mode=True)


def crop_to_even(slices: np.ndarray) -> np.ndarray:
    """Drop the last row/column where the in-plane size is odd (x2 needs even HR sizes)."""
    h, w = slices.shape[-2:]
    return slices[..., : h - h % 2, : w - w % 2]


def downsample_slices(hr_slices: np.ndarray, degradation: str) -> np.ndarray:
    """Simulate LR for a stack ``S x H x W`` (H, W even) of float slices."""
    with torch.no_grad():
        hr = torch.from_numpy(np.ascontiguousarray(hr_slices, dtype=np.float32))[:, None]
        return downsample(hr, degradation)[:, 0].numpy()
