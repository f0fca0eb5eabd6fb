"""The slice acquisition model A: volume -> every observed brain pixel, and its exact transpose.

Pixel value = sum over PSF points q of w_q * V(T_s (p + o_q)), with V the volume sampled
trilinearly (``grid_sample``, zeros outside), T_s the slice's rigid pose (4x4, LPS mm), p the
pixel's nominal position and o_q its PSF offsets. Linear in the volume, so the adjoint is the
vector-Jacobian product (autograd), exact to float rounding; differentiable in the poses, so
slice-to-volume registration reuses the same code. Work is done in chunks of whole slices to
bound memory.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from ..imaging.geometry import Geometry
from .observations import Observations
from .output_grid import physical_to_sampling_matrix

DEFAULT_CHUNK_SAMPLES = 1 << 22  # PSF samples per chunk: ~4M samples ~ 50 MB of coordinates


class SliceOperator:
    """A for fixed observations and volume grid; poses are passed to each call, (S, 4, 4) float64."""

    def __init__(self, observations: Observations, geometry: Geometry, chunk_samples: int = DEFAULT_CHUNK_SAMPLES):
        self.observations = observations
        self.geometry = geometry
        self.shape_kji = tuple(reversed(geometry.size))
        device = observations.values.device
        self.to_sampling = physical_to_sampling_matrix(geometry).to(device)
        pixels_per_chunk = max(1, chunk_samples // observations.psf_weights.shape[1])
        self.chunks = list(_slice_chunks(observations, pixels_per_chunk))

    def sampling_matrices(self, poses: torch.Tensor) -> torch.Tensor:
        """Per-slice maps from nominal LPS mm to ``grid_sample`` coordinates, (S, 4, 4) float32."""
        return (self.to_sampling @ poses).to(torch.float32)

    def chunk_points(self, matrices: torch.Tensor, chunk: tuple[int, int, int, int]) -> torch.Tensor:
        """PSF sample points (c, Q, 3) of one chunk's pixels mapped by their slice's 4x4 ``matrices`` (S, 4, 4):
        LPS anatomy positions for poses, ``grid_sample`` coordinates for :meth:`sampling_matrices`."""
        first_pixel, end_pixel, first_slice, end_slice = chunk
        obs = self.observations
        local = obs.slice_index[first_pixel:end_pixel] - first_slice
        linear = matrices[first_slice:end_slice, :3, :3]
        centre = torch.einsum("pab,pb->pa", linear[local], obs.positions[first_pixel:end_pixel])
        centre = centre + matrices[first_slice:end_slice, :3, 3][local]
        offsets = torch.einsum("sab,sqb->sqa", linear, obs.psf_offsets[first_slice:end_slice])
        return centre[:, None, :] + offsets[local]

    def chunk_psf_weights(self, chunk: tuple[int, int, int, int]) -> torch.Tensor:
        """PSF weights (c, Q) of one chunk's pixels."""
        first_pixel, end_pixel, first_slice, _ = chunk
        local = self.observations.slice_index[first_pixel:end_pixel] - first_slice
        return self.observations.psf_weights[first_slice:][local]

    def forward_chunk(self, volume: torch.Tensor, matrices: torch.Tensor, chunk: tuple[int, int, int, int]):
        """Predicted values of one chunk's pixels; differentiable in ``volume`` and ``matrices``."""
        samples = sample_volume(volume[None], self.chunk_points(matrices, chunk))[0]
        return (samples * self.chunk_psf_weights(chunk)).sum(dim=1)

    def forward(self, volume: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """A x: predicted value of every observed pixel, (P,)."""
        matrices = self.sampling_matrices(poses)
        with torch.no_grad():
            return torch.cat([self.forward_chunk(volume, matrices, chunk) for chunk in self.chunks])

    def adjoint(self, values: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """A^T y: ``values`` (P,) spread back onto the volume grid with the same weights."""
        return self.transpose_product(torch.zeros(self.shape_kji, device=values.device), poses, lambda _, c: values[c])

    def normal(self, volume: torch.Tensor, poses: torch.Tensor, pixel_weights: torch.Tensor) -> torch.Tensor:
        """A^T W A x with W = diag(``pixel_weights``), one forward and one transpose per chunk."""
        return self.transpose_product(volume, poses, lambda predicted, c: predicted * pixel_weights[c])

    def transpose_product(self, volume: torch.Tensor, poses: torch.Tensor, outer) -> torch.Tensor:
        """Sum over chunks of A_c^T outer(A_c x, pixels of c), by autograd's vector-Jacobian product.

        ``outer(predicted, pixel_slice)`` gives the chunk's pixel values to spread back, e.g.
        the weighted residual for a data-term gradient in a single pass.
        """
        matrices = self.sampling_matrices(poses).detach()
        result = torch.zeros(self.shape_kji, dtype=torch.float32, device=volume.device)
        for chunk in self.chunks:
            leaf = volume.detach().requires_grad_(True)
            with torch.enable_grad():
                predicted = self.forward_chunk(leaf, matrices, chunk)
                (gradient,) = torch.autograd.grad(predicted, leaf, grad_outputs=outer(predicted.detach(),
                                                                                         slice(chunk[0], chunk[1])))
            result += gradient
        return result


def sample_volume(channels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear samples (C, c, Q) of volume channels (C, D, H, W) at ``grid_sample`` coordinates (c, Q, 3)."""
    return F.grid_sample(channels[None], grid[None, None], mode="bilinear", padding_mode="zeros",
                         align_corners=True)[0, :, 0]


def _slice_chunks(observations: Observations, pixels_per_chunk: int) -> Iterator[tuple[int, int, int, int]]:
    """(first pixel, end pixel, first slice, end slice) of runs of whole slices with <= ``pixels_per_chunk`` pixels
    (a single larger slice makes a chunk of its own)."""
    starts = observations.slice_starts
    first = 0
    while first < observations.slice_count:
        end = first + 1
        while end < observations.slice_count and starts[end + 1] - starts[first] <= pixels_per_chunk:
            end += 1
        yield int(starts[first]), int(starts[end]), first, end
        first = end
