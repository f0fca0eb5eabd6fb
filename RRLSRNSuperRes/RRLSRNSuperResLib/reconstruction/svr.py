"""Slice-to-volume registration: 6 rigid parameters per slice, all slices at once.

Each slice's pose is refined to maximise the normalised cross-correlation between the slice
and the current volume seen through the slice acquisition model at that pose (slice profile
and PSF included). Per slice this is a small least-squares problem (the slice against a gain
times the prediction plus an offset), solved by Levenberg-Marquardt with the analytic
Jacobian: the volume's gradient sampled with the same PSF points, times the derivative of
each point with respect to a small rotation (about the slice's centre) and translation. All
slices move together, each with its own 6x6 system and damping; a step that does not lower
a slice's cost is undone and that slice's damping raised. Coarse to fine: a smoothed volume,
fewer pixels and a coarser PSF first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..imaging.geometry import Geometry
from .observations import Observations, segment_sums, subsampled, with_psf
from .psf import PsfSampling
from .rigid import rigid_matrices
from .slice_operator import SliceOperator, sample_volume
from .stacks import Stack

MAX_STEP = (np.radians(3.0), 3.0)  # largest rotation (radians) and translation (mm) per iteration
SVR_CHUNK_SAMPLES = 1 << 20


@dataclass(frozen=True)
class SvrLevel:
    """One resolution level: volume smoothing (mm), pixel spacing used (mm), PSF z step (mm), iterations;
    ``rotations`` False moves the slices by translations only (for a first, blurry volume)."""

    smoothing_mm: float
    pixel_mm: float
    z_step_mm: float
    iterations: int
    rotations: bool = True


def default_levels(resolution_mm: float) -> tuple[SvrLevel, ...]:
    """Coarse pixels and PSF first; little smoothing: smoothing blurs away what fixes a slice's tilt."""
    return (SvrLevel(0.5 * resolution_mm, 2.0 * resolution_mm, 2.0 * resolution_mm, 6),
            SvrLevel(0.0, 1.4 * resolution_mm, 1.5 * resolution_mm, 6))


@dataclass(frozen=True, eq=False)
class SvrProblem:
    """What registration needs besides the volume: stacks (for the PSF), observations, the volume's grid."""

    stacks: Sequence[Stack]
    observations: Observations
    geometry: Geometry
    min_pixels: int = 40  # slices with fewer brain pixels keep their pose


@dataclass(frozen=True, eq=False)
class _Fit:
    """Per-slice cost (1 - NCC^2), Gauss-Newton matrix (S, 6, 6) and right-hand side (S, 6)."""

    cost: torch.Tensor
    hessian: torch.Tensor
    gradient: torch.Tensor


def register_slices(problem: SvrProblem, volume: torch.Tensor, poses: torch.Tensor,
                    levels: Sequence[SvrLevel], tick: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Refined poses (S, 4, 4) float64 starting from ``poses``; ``tick`` is called after every iteration."""
    counts = torch.as_tensor(np.diff(problem.observations.slice_starts), device=poses.device)
    movable = (counts >= problem.min_pixels).to(torch.float64)[:, None]
    for level in levels:
        operator = _level_operator(problem, level)
        channels = _with_gradients(_smoothed(volume, level.smoothing_mm / problem.geometry.spacing[0]),
                                   problem.geometry)
        free = movable * torch.tensor([float(level.rotations)] * 3 + [1.0] * 3, dtype=torch.float64,
                                      device=poses.device)
        poses = _levenberg_marquardt(operator, channels, poses, level.iterations, free, tick)
    return poses


def _level_operator(problem: SvrProblem, level: SvrLevel) -> SliceOperator:
    pixel_mm = min(min(stack.geometry.spacing[:2]) for stack in problem.stacks)
    stride = max(1, int(round(level.pixel_mm / pixel_mm)))
    sampling = PsfSampling(z_step_mm=level.z_step_mm, inplane_sigma_mm=float("inf"))
    return SliceOperator(with_psf(subsampled(problem.observations, stride), problem.stacks, sampling),
                         problem.geometry, SVR_CHUNK_SAMPLES)


def _smoothed(volume: torch.Tensor, sigma_voxels: float) -> torch.Tensor:
    if sigma_voxels <= 0:
        return volume
    blurred = ndimage.gaussian_filter(volume.cpu().numpy(), sigma_voxels, mode="constant")
    return torch.as_tensor(blurred, device=volume.device)


def _with_gradients(volume: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Channels (4, D, H, W): the volume and its gradient along LPS x, y, z (per mm)."""
    spacing_kji = [float(s) for s in reversed(geometry.spacing)]
    along_kji = torch.gradient(volume, spacing=spacing_kji, dim=(0, 1, 2))
    along_ijk = torch.stack(list(reversed(along_kji)))
    direction = torch.as_tensor(geometry.direction_matrix, dtype=volume.dtype, device=volume.device)
    return torch.cat([volume[None], torch.einsum("ab,bkji->akji", direction, along_ijk)])


def _levenberg_marquardt(operator: SliceOperator, channels: torch.Tensor, poses: torch.Tensor, iterations: int,
                         movable: torch.Tensor, tick: Optional[Callable[[], None]]) -> torch.Tensor:
    """Per-slice damped Gauss-Newton on rotation (radians, about the slice centre) and translation (mm)."""
    fit = _fit(operator, channels, poses)
    damping = torch.full_like(fit.cost, 1e-3)
    eye = torch.eye(6, dtype=torch.float64, device=poses.device)
    for _ in range(iterations):
        diagonal = torch.diagonal(fit.hessian, dim1=1, dim2=2)
        system = fit.hessian + (damping[:, None, None] * diagonal[:, :, None] + 1e-9) * eye
        system = system * (movable[:, :, None] * movable[:, None, :]) + torch.diag_embed(1.0 - movable)
        step = torch.linalg.solve(system, (fit.gradient * movable)[..., None])[..., 0]
        step = _limited(torch.nan_to_num(step))
        centres = moved_centres(poses, operator.observations.slice_centres)
        candidate = rigid_matrices(step, centres) @ poses
        trial = _fit(operator, channels, candidate)
        better = trial.cost < fit.cost
        poses = torch.where(better[:, None, None], candidate, poses)
        fit = _Fit(torch.where(better, trial.cost, fit.cost),
                   torch.where(better[:, None, None], trial.hessian, fit.hessian),
                   torch.where(better[:, None], trial.gradient, fit.gradient))
        damping = torch.where(better, damping / 3.0, damping * 4.0).clamp(1e-6, 1e6)
        if tick is not None:
            tick()
    return poses


def _limited(step: torch.Tensor) -> torch.Tensor:
    """Scale each slice's step down so its rotation and translation stay within ``MAX_STEP``."""
    rotation = step[:, :3].norm(dim=1) / MAX_STEP[0]
    translation = step[:, 3:].norm(dim=1) / MAX_STEP[1]
    return step / torch.clamp(torch.maximum(rotation, translation), min=1.0)[:, None]


def _fit(operator: SliceOperator, channels: torch.Tensor, poses: torch.Tensor) -> _Fit:
    """Cost, Gauss-Newton matrix and right-hand side of every slice at ``poses``."""
    observations = operator.observations
    sums = torch.zeros(observations.slice_count, 6 + 3 * 6 + 36, dtype=torch.float64, device=poses.device)
    centres = moved_centres(poses, observations.slice_centres).to(torch.float32)
    to_sampling = operator.to_sampling.to(torch.float32)
    for chunk in operator.chunks:
        first_pixel, end_pixel = chunk[:2]
        slice_index = observations.slice_index[first_pixel:end_pixel]
        points = operator.chunk_points(poses.to(torch.float32), chunk)
        samples = sample_volume(channels, points @ to_sampling[:3, :3].T + to_sampling[:3, 3])
        weights = operator.chunk_psf_weights(chunk)[..., None]
        gradient = samples[1:].permute(1, 2, 0)
        arm = points - centres[slice_index][:, None, :]
        jacobian = torch.cat([(torch.cross(arm, gradient, dim=2) * weights).sum(dim=1),
                              (gradient * weights).sum(dim=1)], dim=1)
        y = observations.values[first_pixel:end_pixel]
        a = (samples[0] * weights[..., 0]).sum(dim=1)
        per_pixel = torch.cat([torch.stack([torch.ones_like(y), y, a, y * a, a * a, y * y], dim=1), jacobian,
                               jacobian * y[:, None], jacobian * a[:, None],
                               (jacobian[:, :, None] * jacobian[:, None, :]).reshape(-1, 36)], dim=1)
        sums += segment_sums(per_pixel.to(torch.float64), slice_index, observations.slice_count)
    return _fit_from_sums(sums)


def _fit_from_sums(sums: torch.Tensor) -> _Fit:
    """Centre everything per slice, fit observed y ~ gain * predicted a + offset, and linearise that fit."""
    n = sums[:, 0].clamp(min=1.0)
    mean_y, mean_a, mean_jacobian = sums[:, 1] / n, sums[:, 2] / n, sums[:, 6:12] / n[:, None]
    cross = sums[:, 3] - n * mean_y * mean_a
    variance_a = sums[:, 4] - n * mean_a**2
    variance_y = sums[:, 5] - n * mean_y**2
    jacobian_y = sums[:, 12:18] - n[:, None] * mean_jacobian * mean_y[:, None]
    jacobian_a = sums[:, 18:24] - n[:, None] * mean_jacobian * mean_a[:, None]
    jacobian_squares = sums[:, 24:].reshape(-1, 6, 6) - n[:, None, None] * mean_jacobian[:, :, None] \
        * mean_jacobian[:, None, :]
    gain = cross / variance_a.clamp(min=1e-12)
    cost = 1.0 - cross**2 / (variance_y * variance_a).clamp(min=1e-12)
    hessian = gain[:, None, None] ** 2 * jacobian_squares
    gradient = gain[:, None] * (jacobian_y - gain[:, None] * jacobian_a)
    return _Fit(cost, hessian, gradient)


def pose_changes(before: torch.Tensor, after: torch.Tensor, centres: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice rotation (degrees) and displacement of the slice centre (mm) between two pose sets."""
    relative = after @ torch.linalg.inv(before)
    cosine = ((relative[:, 0, 0] + relative[:, 1, 1] + relative[:, 2, 2] - 1.0) / 2.0).clamp(-1.0, 1.0)
    shift = (moved_centres(after, centres) - moved_centres(before, centres)).norm(dim=1)
    return np.degrees(torch.arccos(cosine).cpu().numpy()), shift.cpu().numpy()


def moved_centres(poses: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Where each slice's nominal centre (S, 3) lands under its pose (S, 4, 4)."""
    return (poses[:, :3, :3] @ centres.unsqueeze(-1)).squeeze(-1) + poses[:, :3, 3]
