"""Training losses of the paper: Charbonnier (robust L1) + gradient difference loss (GDL)."""

from __future__ import annotations

import torch

CHARBONNIER_EPS = 1e-3


def charbonnier_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Mean of sqrt((x - y)^2 + eps^2): L1-like, differentiable at 0."""
    return torch.sqrt((prediction - target) ** 2 + eps * eps).mean()


def gradient_difference_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the finite-difference image gradients (sharp edges)."""
    def gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[..., 1:, :] - image[..., :-1, :], image[..., :, 1:] - image[..., :, :-1]

    (pred_dy, pred_dx), (true_dy, true_dx) = gradients(prediction), gradients(target)
    return (pred_dy.abs() - true_dy.abs()).abs().mean() + (pred_dx.abs() - true_dx.abs()).abs().mean()


def rrlsrn_loss(prediction: torch.Tensor, target: torch.Tensor, gdl_weight: float = 1.0) -> torch.Tensor:
    """The paper's objective: Charbonnier + GDL, summed (``gdl_weight=0`` is the ablation)."""
    loss = charbonnier_loss(prediction, target)
    if gdl_weight:
        loss = loss + gdl_weight * gradient_difference_loss(prediction, target)
    return loss
