"""Data consistency: make an x2 estimate agree exactly with the LR slices it was made from.

The LR image is a measurement: for a real MRI stack, the central half of the x2 output's
k-space is what the scanner acquired. A network can drift from it (it smooths or
"denoises" the measured band), and every such drift is an error. Projecting the estimate
onto the set of images whose degradation equals the LR,

    y' = y + D^+ (lr - D y),    D^+ = D^T (D D^T)^-1,

keeps the network's guess only where the measurement says nothing. Both pseudo-inverses
are exact and cheap: for k-space, zero-filling with the LR's Nyquist row and column doubled;
for the paper's bicubic degradation, which is separable, a pair of small pseudo-inverse
matrices. The projection is differentiable, so training and adaptation can go through it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .degrade import DEGRADATIONS, downsample, zero_fill_upsample

CONSISTENCY_MODELS = (*DEGRADATIONS, "none")  # each degradation, or no projection
_SLICES_AT_ONCE = 8


def kspace_pseudo_inverse(residual: torch.Tensor) -> torch.Tensor:
    """``D^+`` of ``kspace_downsample``: zero-fill after doubling the LR's Nyquist row and column.

    ``D^T`` is zero-filling / 4, and ``D D^T`` is diagonal in the LR's Fourier domain: 1/4,
    but 1/8 on the Nyquist row and column of an even size, where the real part halves what
    zero-filling puts there (tested against the dense pseudo-inverse).
    """
    height, width = residual.shape[-2:]
    weights = torch.ones(height, width, dtype=torch.float64, device=residual.device)
    if height % 2 == 0:
        weights[height // 2, :] = 2.0
    if width % 2 == 0:
        weights[:, width // 2] = 2.0
    boosted = torch.fft.ifft2(torch.fft.fft2(residual.to(torch.float64)) * weights).real
    return zero_fill_upsample(boosted).to(residual.dtype)


@lru_cache(maxsize=16)
def _bicubic_pseudo_inverse_matrix(size: int) -> torch.Tensor:
    """The pseudo-inverse (``size x size/2``, float64) of the 1D bicubic x1/2 matrix."""
    identity = torch.eye(size, dtype=torch.float64)[None, None]
    matrix = F.interpolate(identity, size=(size // 2, size), mode="bicubic", antialias=True,
                           align_corners=False)[0, 0]
    return torch.linalg.pinv(matrix)


def bicubic_pseudo_inverse(residual: torch.Tensor) -> torch.Tensor:
    """``D^+`` of ``bicubic_downsample``, which is ``M_r X M_c^T``: ``pinv(M_r) R pinv(M_c)^T``."""
    height, width = residual.shape[-2:]
    rows = _bicubic_pseudo_inverse_matrix(2 * height).to(residual)
    cols = _bicubic_pseudo_inverse_matrix(2 * width).to(residual)
    return rows @ residual @ cols.T


def project(estimate: torch.Tensor, lr: torch.Tensor, model: str) -> torch.Tensor:
    """``estimate`` (``N x 1 x 2h x 2w``) made consistent with ``lr`` (``N x 1 x h x w``) under ``model``.

    Differentiable in ``estimate``; ``none`` returns it unchanged.
    """
    if model not in CONSISTENCY_MODELS:
        raise ValueError(f"unknown consistency model {model!r}; choose one of {', '.join(CONSISTENCY_MODELS)}")
    if model == "none":
        return estimate
    if estimate.shape[-2:] != (2 * lr.shape[-2], 2 * lr.shape[-1]):
        raise ValueError(f"estimate {tuple(estimate.shape)} is not the x2 grid of LR {tuple(lr.shape)}")
    residual = lr.to(estimate) - downsample(estimate, model)
    inverse = kspace_pseudo_inverse if model == "kspace" else bicubic_pseudo_inverse
    return estimate + inverse(residual)


def project_onto_measurement(estimate: np.ndarray, lr: np.ndarray, model: str) -> np.ndarray:
    """:func:`project` of numpy stacks (``S x 2h x 2w`` onto ``S x h x w``), float64 inside, float32 out.

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
