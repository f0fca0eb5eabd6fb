"""Data consistency: make an x2 (or x4) estimate agree exactly with the LR slices it was made from.

The LR image is a measurement: for a real MRI stack, the central half (at x4 the central
quarter, per axis) of the output's k-space is what the scanner acquired. A network can drift from it (it smooths or
"denoises" the measured band), and every such drift is an error. Projecting the estimate
onto the set of images whose degradation equals the LR,

    y' = y + D^+ (lr - D y),    D^+ = D^T (D D^T)^-1,

keeps the network's guess only where the measurement says nothing. Both pseudo-inverses
are exact and cheap: for k-space, zero-filling with the LR's Nyquist row and column doubled;
for the paper's bicubic degradation, which is separable, a pair of small pseudo-inverse
matrices. The factor (2 or 4) is the ratio of the estimate's grid to the LR's, so a cascade's
x4 output is projected onto the original LR at factor 4, with the x4 degradation. The
projection is differentiable, so training and adaptation can go through it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .degrade import DEGRADATIONS, downsample, zero_fill_upsample

CONSISTENCY_MODELS = (*DEGRADATIONS, "none")  # each degradation, or no projection
_SLICES_AT_ONCE = 8
MEASUREMENT_FACTORS = (2, 4)  # estimate grid / LR grid: one x2 level, or a cascade's x4 output


def kspace_pseudo_inverse(residual: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``D^+`` of ``kspace_downsample`` x1/``factor``: zero-fill after doubling the LR's Nyquist row and column.

    ``D^T`` is zero-filling / ``factor^2``, and ``D D^T`` is diagonal in the LR's Fourier domain:
    ``1/factor^2``, but half that on the Nyquist row and column of an even size, where the real part
    halves what zero-filling puts there (tested against the dense pseudo-inverse).
    """
    height, width = residual.shape[-2:]
    weights = torch.ones(height, width, dtype=torch.float64, device=residual.device)
    if height % 2 == 0:
        weights[height // 2, :] = 2.0
    if width % 2 == 0:
        weights[:, width // 2] = 2.0
    boosted = torch.fft.ifft2(torch.fft.fft2(residual.to(torch.float64)) * weights).real
    return zero_fill_upsample(boosted, factor).to(residual.dtype)


@lru_cache(maxsize=16)
def _bicubic_pseudo_inverse_matrix(size: int, factor: int = 2) -> torch.Tensor:
    """The pseudo-inverse (``size x size/factor``, float64) of the 1D bicubic x1/``factor`` matrix."""
    identity = torch.eye(size, dtype=torch.float64)[None, None]
    matrix = F.interpolate(identity, size=(size // factor, size), mode="bicubic", antialias=True,
                           align_corners=False)[0, 0]
    return torch.linalg.pinv(matrix)


def bicubic_pseudo_inverse(residual: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``D^+`` of ``bicubic_downsample``, which is ``M_r X M_c^T``: ``pinv(M_r) R pinv(M_c)^T``."""
    height, width = residual.shape[-2:]
    rows = _bicubic_pseudo_inverse_matrix(factor * height, factor).to(residual)
    cols = _bicubic_pseudo_inverse_matrix(factor * width, factor).to(residual)
    return rows @ residual @ cols.T


def grid_factor(estimate_shape: tuple[int, ...], lr_shape: tuple[int, ...]) -> int:
    """The in-plane factor (2 or 4) between an estimate's grid and its LR's (last two axes)."""
    height, width = lr_shape[-2:]
    for factor in MEASUREMENT_FACTORS:
        if tuple(estimate_shape[-2:]) == (factor * height, factor * width):
            return factor
    raise ValueError(f"estimate {tuple(estimate_shape)} is not the x2 or x4 grid of LR {tuple(lr_shape)}")


def project(estimate: torch.Tensor, lr: torch.Tensor, model: str) -> torch.Tensor:
    """``estimate`` (``N x 1 x fh x fw``, f = 2 or 4) made consistent with ``lr`` (``N x 1 x h x w``)
    under ``model`` at factor f.

    Differentiable in ``estimate``; ``none`` returns it unchanged.
    """
    if model not in CONSISTENCY_MODELS:
        raise ValueError(f"unknown consistency model {model!r}; choose one of {', '.join(CONSISTENCY_MODELS)}")
    if model == "none":
        return estimate
    factor = grid_factor(estimate.shape, lr.shape)
    residual = lr.to(estimate) - downsample(estimate, model, factor)
    inverse = kspace_pseudo_inverse if model == "kspace" else bicubic_pseudo_inverse
    return estimate + inverse(residual, factor)


def project_onto_measurement(estimate: np.ndarray, lr: np.ndarray, model: str) -> np.ndarray:
    """:func:`project` of numpy stacks (``S x fh x fw`` onto ``S x h x w``), float64 inside, float32 out.

    A few slices at a time, so a large GPU batch does not need its whole float64 spectrum in memory.
    """
    if model == "none":
        return estimate
    out = np.empty(estimate.shape, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(estimate), _SLICES_AT_ONCE):
            part = slice(start, start + _SLICES_AT_ONCE)
            y = torch.from_numpy(np.ascontiguousarray(estimate[part], dtype=np.float64))[:, None]
            measured = torch.from_numpy(np.ascontiguousarray(lr[part], dtype=np.float64))[:, None]
            out[part] = project(y, measured, model)[:, 0].numpy()
    return out
