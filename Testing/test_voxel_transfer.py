"""The result handed to a volume node without a copy: exact voxels and grid, memory kept alive, then released."""

from __future__ import annotations

import gc

import numpy as np
import slicer
import slicer.util
from RRLSRNSuperResLib import superresolve, superresolve_volume_node
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.mrml import voxel_transfer
from RRLSRNSuperResLib.mrml.voxel_transfer import adopt_voxels
from test_mrml_adapter import add_volume, ijk_to_ras, oblique_flipped_directions


def test_adopted_voxels_are_shared_exact_and_outlive_the_callers_array(mrml_scene):
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "result")
    voxels = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    expected = voxels.copy()
    adopt_voxels(node, voxels)

    assert node.GetImageData().GetDimensions() == (7, 5, 3)
    assert np.shares_memory(slicer.util.arrayFromVolume(node), voxels), "no second copy"
    del voxels
    gc.collect()
    _ = [np.full(105, 1e9, np.float32) for _ in range(200)]  # reuse of freed memory would show here
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), expected)


def test_a_non_contiguous_array_keeps_its_kji_order():
    node = slicer.vtkMRMLScalarVolumeNode()
    ikj = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    adopt_voxels(node, ikj.transpose(2, 0, 1))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), ikj.transpose(2, 0, 1))


def test_the_buffer_is_released_with_the_last_vtk_user():
    before = voxel_transfer.adopted_count()
    node = slicer.vtkMRMLScalarVolumeNode()
    adopt_voxels(node, np.zeros((2, 3, 4), np.float32))
    assert voxel_transfer.adopted_count() == before + 1
    adopt_voxels(node, np.ones((2, 3, 4), np.float32))  # the first array's scalars are dropped by the image
    assert voxel_transfer.adopted_count() == before + 1
    del node
    gc.collect()
    assert voxel_transfer.adopted_count() == before


def test_the_node_holds_exactly_the_engines_result_on_the_x2_grid(mrml_scene, mrml_tiny_model_path):
    voxels = np.random.default_rng(3).uniform(0, 400, (3, 10, 12)).astype(np.float32)
    source = add_volume(mrml_scene, voxels, directions=oblique_flipped_directions(5), origin=(4.0, -9.0, 21.5))

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path, precision="fp32")
    direct = superresolve(voxels, source.GetSpacing(), EngineOptions(device="cpu", model=mrml_tiny_model_path,
                                                                   precision="fp32"))

    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), direct.voxels)
    expected = ijk_to_ras(source) @ np.diag([0.5, 0.5, 1.0, 1.0])
    expected[:, 3] = ijk_to_ras(source) @ [-0.25, -0.25, 0.0, 1.0]
    np.testing.assert_allclose(ijk_to_ras(output), expected, atol=1e-12)
