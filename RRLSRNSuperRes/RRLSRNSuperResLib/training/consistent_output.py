"""The training counterpart of ``imaging.consistency``: a differentiable projection of a batch.

When the engine makes every output consistent with its LR input, the network only decides
what the measurement leaves open. Training through the same projection lets it spend its
capacity there. Both degradations are separable along the two in-plane axes (bicubic
exactly; k-space up to its Nyquist corner), so the pseudo-inverse is a pair of small
matrices: ``y + P_r (lr - M_r y M_c^T) P_c^T`` with ``P = pinv(M)``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..imaging.degrade import fourier_resample


@lru_cache(maxsize=16)
def _operator(size: int, degradation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1D degradation matrix (``size/2 x size``) and its pseudo-inverse, float64."""
    identity = torch.eye(size, dtype=torch.float64)[None, None]
    if degradation == "bicubic":
        matrix = F.interpolate(identity, size=(size // 2, size), mode="bicubic", antialias=True,
                               align_corners=False)[0, 0]
    else:  # kspace, and the acquisition model whose LR is a (blurred, noisy) central k-space
        matrix = fourier_resample(identity, (size // 2, size))[0, 0]
    return matrix, torch.linalg.pinv(matrix)


def project_batch(prediction: torch.Tensor, lr: torch.Tensor, degradation: str) -> torch.Tensor:
    """``prediction`` (N x 1 x 2h x 2w) made consistent with ``lr`` (N x 1 x h x w) under ``degradation``."""
    rows, rows_inverse = (m.to(prediction) for m in _operator(prediction.shape[-2], degradation))
    cols, cols_inverse = (m.to(prediction) for m in _operator(prediction.shape[-1], degradation))
    residual = lr.to(prediction) - rows @ prediction @ cols.T
    return prediction + rows_inverse @ residual @ cols_inverse.T


def project_chunks(prediction: torch.Tensor, lr: torch.Tensor, degradations: list[str]) -> torch.Tensor:
    """:func:`project_batch` on each equal chunk of the batch (``training.loop.make_pairs`` order)."""
    chunks = zip(torch.tensor_split(prediction, len(degradations)), torch.tensor_split(lr, len(degradations)),
                 degradations)
    return torch.cat([project_batch(p, x, name) for p, x, name in chunks if len(p)])
