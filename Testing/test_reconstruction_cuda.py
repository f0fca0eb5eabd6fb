"""The slice operator on CUDA equals the CPU one. Runs where a working CUDA GPU is present, skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reconstruction_phantoms import oblique_direction
from RRLSRNSuperResLib.engine.devices import cuda_usable
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.reconstruction.observations import observations_from_stacks
from RRLSRNSuperResLib.reconstruction.output_grid import brain_points_mm, output_geometry
from RRLSRNSuperResLib.reconstruction.psf import PsfSampling
from RRLSRNSuperResLib.reconstruction.rigid import rigid_matrices
from RRLSRNSuperResLib.reconstruction.slice_operator import SliceOperator
from RRLSRNSuperResLib.reconstruction.stacks import Stack

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not cuda_usable(), reason="no working CUDA GPU here")]


def _operator_and_inputs(device: torch.device):
    rng = np.random.default_rng(0)
    direction = oblique_direction((25.0, -20.0, 10.0))
    size, spacing = (24, 20, 9), (1.2, 1.2, 3.0)
    origin = -direction @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2.0) + np.array([5.0, -3.0, 8.0])
    voxels = rng.random(size[::-1]).astype(np.float32)
    stack = Stack(voxels, Geometry(size, spacing, tuple(origin), tuple(direction.ravel())), voxels > 0.1, 3.3, "s")
    observations = observations_from_stacks([stack], PsfSampling(1.0, 0.4), device)
    operator = SliceOperator(observations, output_geometry(brain_points_mm(stack, np.eye(4)), 1.0, 2.0), 20000)
    generator = torch.Generator().manual_seed(1)
    count = observations.slice_count
    params = torch.cat([torch.randn(count, 3, generator=generator, dtype=torch.float64) * 0.05,
                        torch.randn(count, 3, generator=generator, dtype=torch.float64)], dim=1)
    poses = rigid_matrices(params, observations.slice_centres.cpu()).to(device)
    volume = torch.rand(operator.shape_kji, generator=generator).to(device)
    return operator, poses, volume


def test_cuda_operator_equals_the_cpu_operator():
    cpu = _operator_and_inputs(torch.device("cpu"))
    gpu = _operator_and_inputs(torch.device("cuda"))
    forward_cpu = cpu[0].forward(cpu[2], cpu[1])
    forward_gpu = gpu[0].forward(gpu[2], gpu[1])
    assert forward_gpu.device.type == "cuda"
    np.testing.assert_allclose(forward_gpu.cpu().numpy(), forward_cpu.numpy(), rtol=1e-4, atol=1e-5)
    adjoint_cpu = cpu[0].adjoint(forward_cpu, cpu[1])
    adjoint_gpu = gpu[0].adjoint(forward_gpu, gpu[1])
    np.testing.assert_allclose(adjoint_gpu.cpu().numpy(), adjoint_cpu.numpy(), rtol=1e-4, atol=1e-4)


def test_a_whole_reconstruction_on_cuda_matches_the_cpu_one(tmp_path):
    """Registration, weights and SRR on the GPU end where the CPU's do: same grid, nearly the same voxels."""
    from RRLSRNSuperResLib.io.volumes import read_volume
    from RRLSRNSuperResLib.reconstruction.reconstruct import ReconstructionOptions, reconstruct
    from RRLSRNSuperResLib.reconstruction.simulation import SimulationSettings, simulate_from_arrays
    from test_evaluate_reconstruction_cli import tiny_head

    head, mask = tiny_head(tmp_path)
    volume = read_volume(head)
    stacks = [s.stack for s in simulate_from_arrays(volume.voxels.astype(np.float64), read_volume(mask).voxels > 0,
                                                    volume.geometry, SimulationSettings(seed=4))]
    results = {device: reconstruct(stacks, ReconstructionOptions(resolution_mm=1.6, device=device))
               for device in ("cpu", "cuda")}
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu.geometry == cpu.geometry
    inside = cpu.mask_kji
    difference = np.abs(gpu.volume_kji - cpu.volume_kji)[inside].mean() / np.abs(cpu.volume_kji[inside]).mean()
    assert difference < 0.02, f"mean relative difference {difference:.4f}"
