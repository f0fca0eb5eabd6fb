"""Super-resolution reconstruction: weighted least squares plus an edge-preserving regulariser.

Minimises 1/2 sum_p w_p (A x - y)_p^2 + lambda/2 sum_v delta^2 phi(|grad x|_v) with the
Charbonnier penalty phi(g) = 2 sqrt(1 + g^2 / delta^2) (quadratic on noise, linear on edges). Lagged
diffusivity: the edge weights psi = 1 / sqrt(1 + |grad x|^2 / delta^2) are frozen from the
current volume and the resulting linear system is solved by a few conjugate-gradient steps;
then non-negativity is imposed. ``lambda`` is relative to the data term's mean coverage so one
value suits any number of stacks and pixel sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .slice_operator import SliceOperator


@dataclass(frozen=True)
class SrrSettings:
    """``regularisation``: lambda relative to the mean coverage; ``edge_threshold``: the intensity step
    between neighbours where smoothing gives way to edges (intensities normalised: brain median = 1)."""

    regularisation: float = 0.3
    edge_threshold: float = 0.08
    cg_iterations: int = 6


@dataclass(frozen=True, eq=False)
class SrrProblem:
    """The data of one SRR solve: operator, poses (S, 4, 4), observed values and pixel weights (P,)."""

    operator: SliceOperator
    poses: torch.Tensor
    observed: torch.Tensor
    pixel_weights: torch.Tensor
    coverage: float  # mean of A^T 1 over covered voxels, scales lambda


def edge_weights(volume: torch.Tensor, threshold: float) -> torch.Tensor:
    """psi = 1 / sqrt(1 + |forward-difference gradient|^2 / threshold^2) per voxel."""
    squared = torch.zeros_like(volume)
    for axis in range(3):
        difference = torch.diff(volume, dim=axis)
        squared.narrow(axis, 0, difference.shape[axis]).add_(difference**2)
    return torch.rsqrt(1.0 + squared / threshold**2)


def regulariser_normal(volume: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """D^T diag(psi) D x over the three forward differences (psi taken at each difference's lower voxel)."""
    result = torch.zeros_like(volume)
    for axis in range(3):
        length = volume.shape[axis] - 1
        flux = torch.diff(volume, dim=axis) * psi.narrow(axis, 0, length)
        result.narrow(axis, 0, length).sub_(flux)
        result.narrow(axis, 1, length).add_(flux)
    return result


def solve(problem: SrrProblem, volume: torch.Tensor, settings: SrrSettings) -> torch.Tensor:
    """One lagged-diffusivity step: CG on (A^T W A + lambda D^T Psi D) x = A^T W y from ``volume``, then x >= 0."""
    operator, poses, weights = problem.operator, problem.poses, problem.pixel_weights
    strength = settings.regularisation * problem.coverage
    psi = edge_weights(volume, settings.edge_threshold) if strength > 0 else None

    def system(x: torch.Tensor) -> torch.Tensor:
        product = operator.normal(x, poses, weights)
        return product + strength * regulariser_normal(x, psi) if psi is not None else product

    residual = operator.transpose_product(volume, poses, lambda predicted, c: weights[c] * (problem.observed[c]
                                                                                             - predicted))
    if psi is not None:
        residual -= strength * regulariser_normal(volume, psi)
    solution = volume.clone()
    direction = residual.clone()
    residual_norm = float((residual * residual).sum())
    for _ in range(settings.cg_iterations):
        if residual_norm == 0.0:
            break
        product = system(direction)
        step = residual_norm / float((direction * product).sum())
        solution += step * direction
        residual -= step * product
        new_norm = float((residual * residual).sum())
        direction = residual + (new_norm / residual_norm) * direction
        residual_norm = new_norm
    return solution.clamp_(min=0.0)
