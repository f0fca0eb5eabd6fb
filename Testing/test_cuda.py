"""CUDA code paths. They run where a working CUDA GPU is present and are reported skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from RRLSRNSuperResLib.engine.devices import cuda_usable, select_device
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.engine.volume import superresolve

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not cuda_usable(), reason="no working CUDA GPU here")]


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """Smooth structure plus noise, 6 slices of 192 x 160 (numpy K x J x I), MRI-like range."""
    k, j, i = np.meshgrid(np.arange(6), np.arange(192), np.arange(160), indexing="ij")
    rng = np.random.default_rng(0)
    signal = 600 * np.exp(-(((j - 96) / 50.0) ** 2 + ((i - 80) / 40.0) ** 2)) * (1 + 0.3 * np.sin(i / 3.0 + k))
    return (signal + 20 * rng.standard_normal(signal.shape)).astype(np.float32)


def test_auto_picks_cuda():
    assert select_device("auto").type == "cuda"


def test_cuda_matches_cpu_and_is_deterministic(phantom):
    spacing = (1.0, 1.0, 3.0)
    on_gpu = superresolve(phantom, spacing, EngineOptions(device="cuda", precision="fp32"))
    assert on_gpu.device == "cuda"
    again = superresolve(phantom, spacing, EngineOptions(device="cuda", precision="fp32"))
    np.testing.assert_array_equal(again.voxels, on_gpu.voxels)
    on_cpu = superresolve(phantom, spacing, EngineOptions(device="cpu", precision="fp32"))
    # cuDNN may use TF32 for convolutions: equal to a small fraction of the data range.
    assert np.abs(on_gpu.voxels - on_cpu.voxels).max() < 2e-3 * np.ptp(phantom)


def test_x4_with_the_bundled_second_level_on_cuda_matches_cpu(phantom):
    """The cascade's second level is its own network: it must reach the GPU too."""
    spacing, crop = (1.0, 1.0, 3.0), phantom[:2, 48:144, 40:120]
    on_gpu = superresolve(crop, spacing, EngineOptions(device="cuda", precision="fp32", scale=4))
    on_cpu = superresolve(crop, spacing, EngineOptions(device="cpu", precision="fp32", scale=4))
    assert on_gpu.device == "cuda" and on_gpu.voxels.shape == (2, 384, 320)
    assert np.abs(on_gpu.voxels - on_cpu.voxels).max() < 2e-3 * np.ptp(crop)


def test_real_out_of_memory_falls_back_and_gives_the_same_result(phantom):
    spacing = (1.0, 1.0, 3.0)
    reference = superresolve(phantom, spacing, EngineOptions(device="cuda", batch_size=1, precision="fp32")).voxels
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    # Leave this process room for the model and one small tile, not for a batch of 6 slices.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + 40e6) / total))
    try:
        result = superresolve(phantom, spacing, EngineOptions(device="cuda", batch_size=6, precision="fp32"))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert result.notes, "expected the out-of-memory fallback to be used and reported"
    assert np.abs(result.voxels - reference).max() < 2e-3 * np.ptp(phantom)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_reduced_precision_on_cuda_stays_close_to_float32(phantom, precision):
    spacing = (1.0, 1.0, 3.0)
    reference = superresolve(phantom, spacing, EngineOptions(device="cuda", precision="fp32")).voxels
    fast = superresolve(phantom, spacing, EngineOptions(device="cuda", precision=precision))
    expected = {"auto": "bf16" if torch.cuda.is_bf16_supported() else "fp16"}.get(precision, precision)
    assert fast.precision == expected
    error = fast.voxels.astype(np.float64) - reference
    assert np.sqrt(np.mean(error**2)) < 2e-3 * np.ptp(phantom)
