"""Slice-to-volume registration: 6 rigid parameters per slice, all slices at once.

Each slice's pose is refined to maximise the normalised cross-correlation between the slice
and the current volume seen through the slice acquisition model at that pose (so the
slice profile and PSF are part of the match). Coarse to fine: a smoothed volume, fewer pixels
and a coarser PSF first. The slices are independent, so one Adam optimiser over all of them
moves each by its own gradient; a cosine-decayed step lets each level settle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..imaging.geometry import Geometry
from .observations import Observations, subsampled, with_psf
from .psf import PsfSampling
from .rigid import rigid_matrices
from .robust import slice_correlations
from .slice_operator import SliceOperator
from .stacks import Stack


@dataclass(frozen=True)
class SvrLevel:
    """One resolution level: volume smoothing (mm), pixel spacing used (mm), PSF z step (mm), Adam steps and
    initial step size (degrees for rotations, mm for translations)."""

    smoothing_mm: float
    pixel_mm: float
    z_step_mm: float
    steps: int
    step_size: float


def default_levels(resolution_mm: float) -> tuple[SvrLevel, ...]:
    return (SvrLevel(2.0 * resolution_mm, 2.0 * resolution_mm, 2.0 * resolution_mm, 24, 0.6),
            SvrLevel(resolution_mm, 1.4 * resolution_mm, 1.5 * resolution_mm, 16, 0.25))


@dataclass(frozen=True, eq=False)
class SvrProblem:
    """What registration needs besides the volume: stacks (for the PSF), observations, the volume's grid."""

    stacks: Sequence[Stack]
    observations: Observations
    geometry: Geometry
    min_pixels: int = 40  # slices with fewer brain pixels keep their pose


def register_slices(problem: SvrProblem, volume: torch.Tensor, poses: torch.Tensor,
                    levels: Sequence[SvrLevel], tick: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Refined poses (S, 4, 4) float64 starting from ``poses``; ``tick`` is called after every step."""
    counts = torch.as_tensor(np.diff(problem.observations.slice_starts), device=poses.device)
    movable = (counts >= problem.min_pixels).to(torch.float64)[:, None]
    for level in levels:
        operator = _level_operator(problem, level)
        smoothed = _smoothed(volume, level.smoothing_mm / problem.geometry.spacing[0])
        poses = _optimise_level(operator, smoothed, poses, level, movable, tick)
    return poses


def _level_operator(problem: SvrProblem, level: SvrLevel) -> SliceOperator:
    pixel_mm = min(min(stack.geometry.spacing[:2]) for stack in problem.stacks)
    stride = max(1, int(round(level.pixel_mm / pixel_mm)))
    sampling = PsfSampling(z_step_mm=level.z_step_mm, inplane_sigma_mm=float("inf"))
    return SliceOperator(with_psf(subsampled(problem.observations, stride), problem.stacks, sampling),
                         problem.geometry)


def _smoothed(volume: torch.Tensor, sigma_voxels: float) -> torch.Tensor:
    if sigma_voxels <= 0:
        return volume
    blurred = ndimage.gaussian_filter(volume.cpu().numpy(), sigma_voxels, mode="constant")
    return torch.as_tensor(blurred, device=volume.device)


def _optimise_level(operator: SliceOperator, volume: torch.Tensor, poses: torch.Tensor, level: SvrLevel,
                    movable: torch.Tensor, tick: Optional[Callable[[], None]]) -> torch.Tensor:
    """Adam on (rotation in degrees, translation in mm) increments about each slice's current centre."""
    observations = operator.observations
    centres = moved_centres(poses, observations.slice_centres)
    params = torch.zeros(observations.slice_count, 6, dtype=torch.float64, device=poses.device, requires_grad=True)
    optimiser = torch.optim.Adam([params], lr=level.step_size)
    to_radians = torch.tensor([math.pi / 180] * 3 + [1.0] * 3, dtype=torch.float64, device=poses.device)
    for step in range(level.steps):
        for group in optimiser.param_groups:
            group["lr"] = level.step_size * 0.5 * (1 + math.cos(math.pi * step / level.steps))
        optimiser.zero_grad()
        matrices = operator.sampling_matrices(rigid_matrices(params * to_radians, centres) @ poses)
        for chunk in operator.chunks:
            loss = _chunk_dissimilarity(operator, volume, matrices, chunk)
            loss.backward(retain_graph=True)
        params.grad *= movable
        optimiser.step()
        if tick is not None:
            tick()
    with torch.no_grad():
        return rigid_matrices(params * to_radians, centres) @ poses


def _chunk_dissimilarity(operator: SliceOperator, volume: torch.Tensor, matrices: torch.Tensor,
                         chunk: tuple[int, int, int, int]) -> torch.Tensor:
    """Sum over the chunk's slices of 1 - NCC(observed, predicted)."""
    first_pixel, end_pixel, first_slice, end_slice = chunk
    observations = operator.observations
    predicted = operator.forward_chunk(volume, matrices, chunk)
    observed = observations.values[first_pixel:end_pixel]
    local_index = observations.slice_index[first_pixel:end_pixel] - first_slice
    correlations = slice_correlations(local_index, end_slice - first_slice, observed, predicted,
                                      torch.ones_like(observed))
    return (1.0 - correlations).sum()


def pose_changes(before: torch.Tensor, after: torch.Tensor, centres: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice rotation (degrees) and displacement of the slice centre (mm) between two pose sets."""
    relative = after @ torch.linalg.inv(before)
    cosine = ((relative[:, 0, 0] + relative[:, 1, 1] + relative[:, 2, 2] - 1.0) / 2.0).clamp(-1.0, 1.0)
    shift = (moved_centres(after, centres) - moved_centres(before, centres)).norm(dim=1)
    return np.degrees(torch.arccos(cosine).cpu().numpy()), shift.cpu().numpy()


def moved_centres(poses: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Where each slice's nominal centre (S, 3) lands under its pose (S, 4, 4)."""
    return (poses[:, :3, :3] @ centres.unsqueeze(-1)).squeeze(-1) + poses[:, :3, 3]
