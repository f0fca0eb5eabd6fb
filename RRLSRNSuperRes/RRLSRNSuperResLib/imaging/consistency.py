"""Data consistency: make an x2 estimate agree exactly with the LR slices it was made from.

The LR image is a measurement: for a real MRI stack, the central half of the x2 output's
k-space is what the scanner acquired. A network can drift from it (it smooths or
"denoises" the measured band), and every such drift is an error. Projecting the estimate
onto the set of images whose degradation equals the LR,

    y' = y + D^+ (lr - D y),    D^+ = D^T (D D^T)^-1,

keeps the network's guess only where the measurement says nothing. For k-space ``D^+`` is
zero-filling with the Nyquist row and column doubled (closed form, two FFTs of the output);
for bicubic it is conjugate gradients on ``D D^T``, with ``D^T`` from autograd.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .degrade import DEGRADATIONS, downsample, zero_fill_upsample

CONSISTENCY_MODELS = ("kspace", "bicubic", "none")
_CG_ITERATIONS = 50
_CG_TOLERANCE = 1e-14  # squared residual relative to the first: a residual 1e-7 of the LR


def kspace_pseudo_inverse(residual: torch.Tensor) -> torch.Tensor:
    """``D^+`` of ``kspace_downsample`` in closed form: zero-fill after doubling the LR's Nyquist row and column.

    ``D^T`` is zero-filling / 4 and ``D D^T`` is diagonal in the LR's Fourier domain: 1/4,
    but 1/8 on the Nyquist row and column of an even size, where the real part halves what
    zero-filling puts there (tested against conjugate gradients).
    """
    height, width = residual.shape[-2:]
    weights = torch.ones(height, width, dtype=torch.float64)
    if height % 2 == 0:
        weights[height // 2, :] = 2.0
    if width % 2 == 0:
        weights[:, width // 2] = 2.0
    boosted = torch.fft.ifft2(torch.fft.fft2(residual.to(torch.float64)) * weights).real
    return zero_fill_upsample(boosted)


def _autograd_adjoint(shape: tuple[int, int], count: int, degradation: str, dtype) -> Callable:
    """The adjoint of a linear degradation, as the vector-Jacobian product of one recorded pass."""
    probe = torch.zeros((count, 1, *shape), dtype=dtype, requires_grad=True)
    with torch.enable_grad():
        degraded = downsample(probe, degradation)

    def adjoint(lr: torch.Tensor) -> torch.Tensor:
        (gradient,) = torch.autograd.grad(degraded, probe, lr, retain_graph=True)
        return gradient

    return adjoint


def conjugate_gradient_pseudo_inverse(residual: torch.Tensor, shape: tuple[int, int],
                                      degradation: str) -> torch.Tensor:
    """``D^T (D D^T)^-1 residual`` for any linear degradation ``D``, by conjugate gradients."""
    adjoint = _autograd_adjoint(shape, residual.shape[0], degradation, residual.dtype)
    solution = torch.zeros_like(residual)
    remainder = residual.clone()
    direction = remainder.clone()
    start = (remainder * remainder).sum()
    current = start
    for _ in range(_CG_ITERATIONS):
        if current <= _CG_TOLERANCE * start:
            break
        mapped = downsample(adjoint(direction), degradation)
        step = current / (direction * mapped).sum()
        solution = solution + step * direction
        remainder = remainder - step * mapped
        previous, current = current, (remainder * remainder).sum()
        direction = remainder + (current / previous) * direction
    return adjoint(solution).detach()


def project_onto_measurement(estimate: np.ndarray, lr: np.ndarray, model: str) -> np.ndarray:
    """The estimate (``S x 2h x 2w``) nearest to ``estimate`` whose degradation is ``lr`` (``S x h x w``).

    ``model`` names the degradation the LR came through (``kspace`` for real MRI, ``bicubic``
    for the paper's synthetic LR) or ``none`` (returned unchanged). Float64 inside,
    float32 out.
    """
    if model not in CONSISTENCY_MODELS:
        raise ValueError(f"unknown consistency model {model!r}; choose one of {', '.join(CONSISTENCY_MODELS)}")
    if model == "none":
        return estimate
    assert model in DEGRADATIONS
    shape = (estimate.shape[-2], estimate.shape[-1])
    if shape != (2 * lr.shape[-2], 2 * lr.shape[-1]):
        raise ValueError(f"estimate {estimate.shape} is not the x2 grid of LR {lr.shape}")
    with torch.no_grad():
        y = torch.from_numpy(np.ascontiguousarray(estimate, dtype=np.float64))[:, None]
        measured = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float64))[:, None]
        residual = measured - downsample(y, model)
        correction = (kspace_pseudo_inverse(residual) if model == "kspace"
                      else conjugate_gradient_pseudo_inverse(residual, shape, model))
        return (y + correction)[:, 0].numpy().astype(np.float32)
