"""All slices of all stacks as one flat list of brain pixels (torch), the operator's data layout.

Only pixels inside each stack's brain mask are observations: the data term ignores the
mother's tissue, and working on the masked pixels alone is what keeps the operator fast.
Pixels are grouped by slice (slice after slice, stack after stack) so chunks of whole slices
can be processed one at a time and per-slice statistics are segment sums.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from .psf import PsfSampling, stack_psf
from .stacks import Stack


@dataclass(frozen=True, eq=False)
class Observations:
    """Masked pixels (P) of the observed slices (S, those with brain pixels), on one device."""

    positions: torch.Tensor  # (P, 3) float32 nominal LPS position, mm
    values: torch.Tensor  # (P,) float32 intensity
    pixel_ij: torch.Tensor  # (P, 2) int64 in-plane index, for subsampling
    slice_index: torch.Tensor  # (P,) int64 observed slice of each pixel, non-decreasing
    slice_starts: np.ndarray  # (S + 1,) first pixel of each slice
    slice_stack: np.ndarray  # (S,) input stack of each slice
    slice_k: np.ndarray  # (S,) slice number k within its stack
    slice_centres: torch.Tensor  # (S, 3) float64 nominal centre of the slice's brain pixels, mm
    psf_offsets: torch.Tensor  # (S, Q, 3) float32 LPS mm in the slice's nominal frame
    psf_weights: torch.Tensor  # (S, Q) float32, rows sum to 1

    @property
    def slice_count(self) -> int:
        return int(self.slice_stack.shape[0])

    def slice_sums(self, per_pixel: torch.Tensor) -> torch.Tensor:
        """Sum of a per-pixel quantity over each slice's pixels, (S,)."""
        return segment_sums(per_pixel, self.slice_index, self.slice_count)


def segment_sums(per_pixel: torch.Tensor, slice_index: torch.Tensor, slice_count: int) -> torch.Tensor:
    """Sums (slice_count, ...) of ``per_pixel`` (P, ...) grouped by ``slice_index``; differentiable."""
    zeros = torch.zeros((slice_count, *per_pixel.shape[1:]), dtype=per_pixel.dtype, device=per_pixel.device)
    return zeros.index_add(0, slice_index, per_pixel)


def observations_from_stacks(stacks: Sequence[Stack], sampling: PsfSampling,
                             device: torch.device) -> Observations:
    """Flatten the masked pixels of ``stacks`` (already cropped and intensity matched)."""
    positions, values, pixel_ij, slice_stack, slice_k, counts = [], [], [], [], [], []
    for index, stack in enumerate(stacks):
        mask = stack.brain_mask()
        kji = np.argwhere(mask)
        positions.append(stack.geometry.index_to_physical(kji[:, ::-1].astype(float)))
        values.append(stack.voxels_kji[mask])
        pixel_ij.append(kji[:, :0:-1])
        per_slice = np.bincount(kji[:, 0], minlength=stack.slice_count)
        observed = np.flatnonzero(per_slice)
        slice_stack.append(np.full(observed.size, index))
        slice_k.append(observed)
        counts.append(per_slice[observed])
    counts = np.concatenate(counts)
    slice_index = np.repeat(np.arange(counts.size), counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    all_positions = np.concatenate(positions)
    centres = np.add.reduceat(all_positions, starts[:-1], axis=0) / counts[:, None]
    stack_of_slice = np.concatenate(slice_stack)
    offsets, weights = psf_tensors(stacks, stack_of_slice, sampling, device)
    return Observations(
        positions=torch.as_tensor(all_positions, dtype=torch.float32, device=device),
        values=torch.as_tensor(np.concatenate(values), dtype=torch.float32, device=device),
        pixel_ij=torch.as_tensor(np.concatenate(pixel_ij), device=device),
        slice_index=torch.as_tensor(slice_index, device=device),
        slice_starts=starts,
        slice_stack=stack_of_slice,
        slice_k=np.concatenate(slice_k),
        slice_centres=torch.as_tensor(centres, dtype=torch.float64, device=device),
        psf_offsets=offsets,
        psf_weights=weights,
    )


def psf_tensors(stacks: Sequence[Stack], slice_stack: np.ndarray, sampling: PsfSampling,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice PSF offsets (S, Q, 3) and weights (S, Q); stacks with fewer points are padded with weight 0."""
    per_stack = [stack_psf(stack.in_plane_psf_mm, stack.thickness_mm, stack.geometry.direction_matrix, sampling)
                 for stack in stacks]
    points = max(weights.size for _, weights in per_stack)
    offsets = np.zeros((len(stacks), points, 3))
    weights = np.zeros((len(stacks), points))
    for index, (stack_offsets, stack_weights) in enumerate(per_stack):
        offsets[index, : stack_weights.size] = stack_offsets
        weights[index, : stack_weights.size] = stack_weights
    return (torch.as_tensor(offsets[slice_stack], dtype=torch.float32, device=device),
            torch.as_tensor(weights[slice_stack], dtype=torch.float32, device=device))


def with_psf(observations: Observations, stacks: Sequence[Stack], sampling: PsfSampling) -> Observations:
    """The same pixels with the PSF sampled differently (coarser for registration's early levels)."""
    offsets, weights = psf_tensors(stacks, observations.slice_stack, sampling, observations.values.device)
    return replace(observations, psf_offsets=offsets, psf_weights=weights)


def subsampled(observations: Observations, stride: int) -> Observations:
    """Every ``stride``-th pixel along both in-plane axes (all slices kept, possibly with fewer pixels)."""
    if stride == 1:
        return observations
    keep = ((observations.pixel_ij % stride) == 0).all(dim=1)
    slice_index = observations.slice_index[keep]
    counts = torch.bincount(slice_index, minlength=observations.slice_count).cpu().numpy()
    return replace(observations, positions=observations.positions[keep], values=observations.values[keep],
                   pixel_ij=observations.pixel_ij[keep], slice_index=slice_index,
                   slice_starts=np.concatenate([[0], np.cumsum(counts)]))
