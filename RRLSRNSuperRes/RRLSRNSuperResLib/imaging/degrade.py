"""HR -> LR simulation (x2 or x4 in-plane) and the interpolation baselines, as fixed by docs/design.md.

At factor ``f`` LR pixel ``j`` is centred on HR pixels ``f j`` to ``f j + f - 1`` (between ``2j``
and ``2j+1`` at x2): the x``f`` output grid of ``imaging.geometry`` read backwards, so SR(LR)
and HR share one grid. All functions work on torch batches ``N x 1 x H x W`` (H, W multiples of
the factor for degradation); numpy wrappers work per slice.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

DEGRADATIONS = ("bicubic", "kspace")


def bicubic_downsample(hr: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """The paper's degradation: antialiased bicubic x1/``factor`` (the kernel stretched ``factor`` times)."""
    return F.interpolate(hr, scale_factor=1.0 / factor, mode="bicubic", antialias=True, align_corners=False)


def _fourier_resample_1d(spectrum: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Crop or zero-pad ``spectrum`` (fft order) along ``dim`` to ``size`` frequencies, keeping the FOV.

    Pixel ``j`` of ``n`` spans the field of view's ``j``-th ``1/n``, so output pixel ``j`` sits
    at input position ``(j + 1/2) n / size - 1/2``: the phase ramp moves the band-limited
    samples there. The kept band is the shorter length's ``[-m/2, m/2)``, so cropping what
    was padded gives the spectrum back exactly. Scaled by ``size / n`` (the DC is kept).
    """
    n = spectrum.shape[dim]
    kept = min(n, size)
    shift = 0.5 * n / size - 0.5  # input pixels
    freqs = torch.arange(kept, device=spectrum.device, dtype=torch.float64) - kept // 2
    phase = (torch.exp(2j * torch.pi * freqs * shift / n) * (size / n)).to(spectrum.dtype)
    shape = [1] * spectrum.ndim
    shape[dim] = kept
    band = torch.fft.fftshift(spectrum, dim=dim).narrow(dim, n // 2 - kept // 2, kept) * phase.view(shape)
    out_shape = list(spectrum.shape)
    out_shape[dim] = size
    resized = torch.zeros(out_shape, dtype=spectrum.dtype, device=spectrum.device)
    resized.narrow(dim, size // 2 - kept // 2, kept).copy_(band)
    return torch.fft.ifftshift(resized, dim=dim)


def fourier_resample(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample ``N x 1 x H x W`` to ``N x 1 x size`` in k-space over the same field of view.

    Cropping is the MRI acquisition of a coarser matrix; padding is the scanner's zero-fill
    interpolation. Computed in float64, returned in the input's dtype.
    """
    spectrum = torch.fft.fft2(images.to(torch.float64))
    spectrum = _fourier_resample_1d(_fourier_resample_1d(spectrum, size[0], -2), size[1], -1)
    return torch.fft.ifft2(spectrum).real.to(images.dtype)


def zero_fill_upsample(lr: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Zero-fill (sinc) interpolation x``factor``: what MRI scanners do, and the exact inverse of
    :func:`kspace_downsample` on the same grid (``kspace_downsample(zero_fill_upsample(x))
    == x`` for an x with no energy at its Nyquist frequency). The baseline for k-space LR."""
    return fourier_resample(lr, (factor * lr.shape[-2], factor * lr.shape[-1]))


def kspace_downsample(hr: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """MRI acquisition model: the central 1/``factor`` of the 2D spectrum on each axis (real part),
    LR pixel ``j`` centred on HR pixels ``factor j`` to ``factor j + factor - 1``. Two x2 steps
    equal one x4 step: the real part only halves the x2 Nyquist, which the second crop drops."""
    return fourier_resample(hr, (hr.shape[-2] // factor, hr.shape[-1] // factor))


def downsample(hr: torch.Tensor, degradation: str, factor: int = 2) -> torch.Tensor:
    """Dispatch by name (``bicubic`` or ``kspace``), x1/``factor`` in-plane."""
    functions: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
        "bicubic": bicubic_downsample,
        "kspace": kspace_downsample,
    }
    if degradation not in functions:
        raise ValueError(f"unknown degradation {degradation!r}; choose one of {DEGRADATIONS}")
    return functions[degradation](hr, factor)


def bicubic_upsample(lr: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Bicubic x``factor`` baseline (``align_corners=False``: the model's grid)."""
    return F.interpolate(lr, scale_factor=factor, mode="bicubic", align_corners=False)


def fourier_resample_slices(slices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`fourier_resample` of every slice of ``S x H x W`` to ``S x size`` (float32),
    one slice at a time, so a large stack needs only one slice's float64 spectrum."""
    out = np.empty((slices.shape[0], *size), dtype=np.float32)
    with torch.no_grad():
        for index, plane in enumerate(slices):
            image = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float64))[None, None]
            out[index] = fourier_resample(image, size)[0, 0].numpy()
    return out


def zero_fill_upsample_slices(lr_slices: np.ndarray, factor: int = 2) -> np.ndarray:
    """Zero-fill (sinc) x``factor`` of a stack ``S x h x w`` of float slices."""
    return fourier_resample_slices(lr_slices, (factor * lr_slices.shape[-2], factor * lr_slices.shape[-1]))


def cubic_spline_upsample_slice(lr_slice: np.ndarray, factor: int = 2) -> np.ndarray:
    """Cubic spline x``factor`` baseline of docs/design.md for one 2D slice."""
    from scipy import ndimage

    return ndimage.zoom(lr_slice, factor, order=3, mode="reflect", grid_mode=True)


def crop_to_multiple(slices: np.ndarray, factor: int = 2) -> np.ndarray:
    """Drop the last rows/columns so the in-plane sizes divide by ``factor`` (even HR sizes at x2)."""
    h, w = slices.shape[-2:]
    return slices[..., : h - h % factor, : w - w % factor]


def downsample_slices(hr_slices: np.ndarray, degradation: str, factor: int = 2) -> np.ndarray:
    """Simulate LR x1/``factor`` for a stack ``S x H x W`` (H, W multiples of ``factor``) of float slices."""
    with torch.no_grad():
        hr = torch.from_numpy(np.ascontiguousarray(hr_slices, dtype=np.float32))[:, None]
        return downsample(hr, degradation, factor)[:, 0].numpy()
