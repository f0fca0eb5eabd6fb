"""The real-data check of the reconstruction: leave one real stack out, predict it from the others, compare.

For each left-out stack: the reconstruction is made from the other stacks; the left-out stack is
registered to it (:data:`REGISTRATION`: the stack as a whole, then slice by slice); the reconstruction
is then seen through those poses and the acquisition model of ``reconstruction.simulation`` (Gaussian
slice profile, k-space truncation in-plane) and compared
with the real stack inside its brain mask. The baseline runs the same way from the naive fusion: the
other stacks, each aligned to the template stack (stack level), intensity-matched and averaged on the
reconstruction's grid. Scores: NCC, and PSNR after a least-squares gain and offset (the fused volumes
carry the template's intensity scale), peak = the real stack's max - min inside its brain mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import reconstruction as scoring

Log = Callable[[str], None]
CROP_MARGIN_MM = 10.0
REGISTRATION = ("stack-level rigid alignment (reconstruction.stack_alignment.align_stack), then each brain slice "
                "by slice-to-volume registration (reconstruction.svr.register_slices)")


@dataclass(frozen=True)
class LeaveOneOutSettings:
    """Reconstruction options (``reconstruction.reconstruct.ReconstructionOptions``; None: the core's defaults)
    and the simulator's slice-profile sampling."""

    options: object = None
    profile_samples: int = 11


def volume_as_stack(voxels_kji: np.ndarray, geometry, mask_kji: np.ndarray, name: str):
    """A fused volume as a ``Stack`` (thin isotropic slices) so stack alignment can register to it."""
    from ..reconstruction.stacks import Stack

    return Stack(voxels_kji=voxels_kji, geometry=geometry, mask_kji=mask_kji,
                 thickness_mm=float(geometry.spacing[2]), name=name)


def slice_to_volume(stack, voxels_kji: np.ndarray, geometry, matrix: np.ndarray) -> np.ndarray:
    """Each brain slice's pose refined from ``matrix`` by the core's slice-to-volume registration (K x 4 x 4)."""
    import torch

    from ..reconstruction.observations import observations_from_stacks
    from ..reconstruction.psf import PsfSampling
    from ..reconstruction.svr import SvrProblem, default_levels, register_slices

    resolution = float(geometry.spacing[0])
    observations = observations_from_stacks([stack], PsfSampling(resolution, 0.5 * resolution), torch.device("cpu"))
    start = torch.as_tensor(np.repeat(matrix[None], observations.slice_count, axis=0))
    volume = torch.as_tensor(np.asarray(voxels_kji, dtype=np.float32))
    refined = register_slices(SvrProblem([stack], observations, geometry), volume, start, default_levels(resolution))
    poses = np.repeat(matrix[None], stack.slice_count, axis=0)
    poses[observations.slice_k] = refined.numpy()
    return poses


def poses_against(stack, voxels_kji: np.ndarray, geometry, mask_kji: np.ndarray) -> tuple[np.ndarray, str]:
    """Per-slice poses (K x 4 x 4) of ``stack`` in the volume's frame, and how they were found."""
    from ..reconstruction.stack_alignment import align_stack

    matrix = align_stack(stack, volume_as_stack(voxels_kji, geometry, mask_kji, "fused")).matrix
    return slice_to_volume(stack, voxels_kji, geometry, matrix), REGISTRATION


def compare(real_kji: np.ndarray, predicted_kji: np.ndarray, mask_kji: np.ndarray) -> dict:
    """NCC and PSNR (after a least-squares gain and offset) of a prediction inside the real stack's mask."""
    real = real_kji[mask_kji].astype(np.float64)
    predicted = predicted_kji[mask_kji].astype(np.float64)
    ncc = float(np.corrcoef(real, predicted)[0, 1])
    design = np.column_stack([predicted, np.ones_like(predicted)])
    fitted = design @ np.linalg.lstsq(design, real, rcond=None)[0]
    peak = float(real.max() - real.min()) or 1.0
    mse = float(np.mean((fitted - real) ** 2))
    return {"ncc": ncc, "psnr": 10.0 * math.log10(peak**2 / mse) if mse > 0 else math.inf,
            "pixels": int(real.size)}


def predicted_stack(voxels_kji: np.ndarray, geometry, mask_kji: np.ndarray, stack,
                    settings: LeaveOneOutSettings) -> tuple[dict, str]:
    """Register ``stack`` to a fused volume, predict it through its poses, and score the prediction."""
    from ..reconstruction.simulation import SampledVolume, acquire

    poses, how = poses_against(stack, voxels_kji, geometry, mask_kji)
    predicted = acquire(SampledVolume.of(voxels_kji, geometry), stack.geometry, poses, stack.thickness_mm,
                        settings.profile_samples)
    return compare(stack.voxels_kji, predicted, stack.brain_mask()), how


def naive_fused(stacks: Sequence, geometry) -> tuple[np.ndarray, np.ndarray]:
    """The stacks aligned to the template (stack level), intensity-matched and averaged on ``geometry``."""
    from ..reconstruction.stack_alignment import align_stack, choose_template

    template = choose_template(stacks)
    order = [template] + [index for index in range(len(stacks)) if index != template]
    resampled = []
    for index in order:
        matrix = np.eye(4) if index == template else align_stack(stacks[index], stacks[template]).matrix
        resampled.append(scoring.stack_on_grid(stacks[index], geometry, np.linalg.inv(matrix), 1))
    brain = np.any([item.brain for item in resampled], axis=0)
    return scoring.naive_fusion(resampled), brain


def leave_one_out(stacks: Sequence, index: int, settings: LeaveOneOutSettings, log: Log = print) -> dict:
    """Reconstruct without stack ``index``, predict it from the reconstruction and from naive fusion."""
    from ..reconstruction.reconstruct import ReconstructionOptions, reconstruct
    from ..reconstruction.stacks import crop_to_mask

    others = [stack for position, stack in enumerate(stacks) if position != index]
    left_out = crop_to_mask(stacks[index], CROP_MARGIN_MM)
    log(f"leave out {left_out.name}: reconstructing from {len(others)} stacks")
    result = reconstruct(others, settings.options or ReconstructionOptions())
    recon_scores, how = predicted_stack(result.volume_kji, result.geometry, result.mask_kji, left_out, settings)
    log(f"leave out {left_out.name}: naive fusion")
    naive_volume, naive_brain = naive_fused(others, result.geometry)
    naive_scores, _ = predicted_stack(naive_volume, result.geometry, naive_brain, left_out, settings)
    return {"left_out": left_out.name, "reconstruction": recon_scores, "naive_fusion": naive_scores,
            "ncc_gain": recon_scores["ncc"] - naive_scores["ncc"],
            "psnr_gain_db": recon_scores["psnr"] - naive_scores["psnr"], "registration": how,
            "reconstruction_seconds": float(result.seconds),
            "rejected_slices": scoring.rejected_slices(result.slice_weights, others)}
