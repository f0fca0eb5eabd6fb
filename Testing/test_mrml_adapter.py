"""The MRML adapter in a real slicer-core scene: geometry in RAS, transform, display, reuse, cancel.

Most tests use a tiny untrained RRLSRN (fast, still a real x2 TorchScript network); one runs
the bundled model. Geometry is checked in physical space, never only on array shapes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import slicer
import slicer.util
import vtk
from RRLSRNSuperResLib import superresolve_volume_node
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.mrml.volumes import (
    ATTRIBUTE_DEVICE,
    ATTRIBUTE_SLICE_AXIS,
    OUTPUT_NAME_SUFFIX,
    output_node_for_run,
)

SPACING_THICK_K = (0.9, 1.1, 3.5)
AXIS_ALIGNED = np.eye(3)


def oblique_flipped_directions(seed: int) -> np.ndarray:
    """A random rotation with one axis flipped (determinant -1): columns are the IJK axes."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    return rotation @ np.diag([1.0, -1.0, 1.0])


def add_volume(scene, voxels_kji: np.ndarray, spacing=SPACING_THICK_K, directions=AXIS_ALIGNED,
               origin=(0.0, 0.0, 0.0), class_name="vtkMRMLScalarVolumeNode", name="fetal T2"):
    node = scene.AddNewNodeByClass(class_name, name)
    matrix = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, directions[row, column])
    node.SetIJKToRASDirectionMatrix(matrix)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    slicer.util.updateVolumeFromArray(node, voxels_kji)
    node.CreateDefaultDisplayNodes()
    return node


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def add_parent_transform(scene, node, seed: int = 3):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "scanner to atlas")
    matrix = np.eye(4)
    matrix[:3, :3] = oblique_flipped_directions(seed) @ np.diag([1.0, -1.0, 1.0])
    matrix[:3, 3] = (5.0, -12.0, 30.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    node.SetAndObserveTransformNodeID(transform.GetID())
    return transform


def blob(shape_kji: tuple[int, int, int], centre_kji: tuple[float, float, float], sigma_kji) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(n, dtype=float) for n in shape_kji), indexing="ij")
    squared = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre_kji, sigma_kji))
    return (100.0 + 800.0 * np.exp(-0.5 * squared)).astype(np.float32)


def ras_centroid(node) -> np.ndarray:
    """Intensity-weighted centroid (above the flat background) in the node's RAS, via IJKToRAS."""
    voxels = slicer.util.arrayFromVolume(node).astype(float)
    weights = np.clip(voxels - 100.0, 0.0, None)
    k, j, i = np.meshgrid(*(np.arange(n) for n in voxels.shape), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3)
    centroid_ijk = (ijk * weights.reshape(-1, 1)).sum(axis=0) / weights.sum()
    return (ijk_to_ras(node) @ np.append(centroid_ijk, 1.0))[:3]


def node_count(scene) -> int:
    return scene.GetNumberOfNodes()


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize(("spacing", "shape_kji", "upsampled_ijk"), [
    (SPACING_THICK_K, (5, 14, 12), (0, 1)),
    ((3.5, 0.9, 1.1), (14, 12, 5), (1, 2)),
])
def test_output_ijk_to_ras_follows_the_x2_and_x4_contract_for_oblique_flipped_volumes(
        mrml_scene, mrml_tiny_model_path, spacing, shape_kji, upsampled_ijk, scale):
    directions = oblique_flipped_directions(seed=7)
    assert np.linalg.det(directions) < 0
    voxels = np.random.default_rng(1).uniform(0, 500, shape_kji).astype(np.float32)
    source = add_volume(mrml_scene, voxels, spacing, directions, origin=(-40.0, 12.5, 7.0))
    transform = add_parent_transform(mrml_scene, source)

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path, scale=scale)

    before = ijk_to_ras(source)
    expected = before.copy()
    shift = np.zeros(4)
    for axis in upsampled_ijk:
        expected[:3, axis] /= scale
        shift[axis] = -(scale - 1) / (2 * scale)  # -1/4 at x2, -3/8 at x4
    expected[:3, 3] = before[:3, 3] + before[:3, :3] @ shift[:3]
    np.testing.assert_allclose(ijk_to_ras(output), expected, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(ijk_to_ras(output)[:3, :3], axis=0),
                               [s / scale if a in upsampled_ijk else s for a, s in enumerate(spacing)])
    assert output.GetName().endswith(f" x{scale} RRLSRN")
    expected_dims = [n * scale if a in upsampled_ijk else n for a, n in enumerate(shape_kji[::-1])]
    assert list(output.GetImageData().GetDimensions()) == expected_dims
    assert output.GetAttribute(ATTRIBUTE_SLICE_AXIS) == "ijk"[({0, 1, 2} - set(upsampled_ijk)).pop()]
    assert output.GetTransformNodeID() == transform.GetID()


def test_output_voxel_centres_fall_between_input_voxel_centres_in_ras(mrml_scene, mrml_tiny_model_path):
    source = add_volume(mrml_scene, np.ones((4, 10, 8), np.float32), directions=oblique_flipped_directions(11))
    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)

    rng = np.random.default_rng(2)
    ijk = np.column_stack([rng.integers(0, 8, 20), rng.integers(0, 10, 20), rng.integers(0, 4, 20), np.ones(20)])
    output_ijk = ijk * np.array([2.0, 2.0, 1.0, 1.0]) + np.array([0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose((ijk_to_ras(output) @ output_ijk.T).T, (ijk_to_ras(source) @ ijk.T).T, atol=1e-9)


def test_bright_blob_stays_in_place_in_ras(mrml_scene, mrml_tiny_model_path):
    shape = (7, 40, 36)
    voxels = blob(shape, centre_kji=(3.3, 17.6, 20.2), sigma_kji=(1.2, 3.0, 2.5))
    source = add_volume(mrml_scene, voxels, directions=oblique_flipped_directions(5), origin=(10.0, -3.0, 2.0))
    add_parent_transform(mrml_scene, source)

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)

    finest_output_spacing = min(output.GetSpacing())
    distance = np.linalg.norm(ras_centroid(output) - ras_centroid(source))
    assert distance < 0.15 * finest_output_spacing


def test_display_is_copied_and_input_voxels_are_untouched(mrml_scene, mrml_tiny_model_path):
    voxels = np.random.default_rng(4).integers(0, 1000, (3, 12, 10)).astype(np.int16)
    source = add_volume(mrml_scene, voxels)
    display = source.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(321.0, 123.0)
    display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeRainbow")
    input_matrix = ijk_to_ras(source)

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)

    copied = output.GetDisplayNode()
    assert (copied.GetWindow(), copied.GetLevel()) == (321.0, 123.0)
    assert not copied.GetAutoWindowLevel()
    assert copied.GetColorNodeID() == "vtkMRMLColorTableNodeRainbow"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(source), voxels)
    np.testing.assert_array_equal(ijk_to_ras(source), input_matrix)
    assert output.GetName() == "fetal T2" + OUTPUT_NAME_SUFFIX
    assert slicer.util.arrayFromVolume(output).dtype == np.float32


def test_passing_the_previous_output_again_reuses_that_node(mrml_scene, mrml_tiny_model_path):
    source = add_volume(mrml_scene, np.random.default_rng(5).uniform(0, 9, (3, 10, 8)).astype(np.float32))
    first = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)
    count = node_count(mrml_scene)

    slicer.util.updateVolumeFromArray(source, np.full((3, 10, 8), 42.0, np.float32))
    second = superresolve_volume_node(source, first, device="cpu", model=mrml_tiny_model_path)

    assert second is first
    assert node_count(mrml_scene) == count
    np.testing.assert_allclose(slicer.util.arrayFromVolume(second), 42.0, rtol=1e-5)


def test_a_selected_result_of_another_input_is_never_overwritten(mrml_scene, mrml_tiny_model_path):
    rng = np.random.default_rng(6)
    stack_a = add_volume(mrml_scene, rng.uniform(0, 9, (3, 10, 8)).astype(np.float32), name="stackA")
    stack_c = add_volume(mrml_scene, rng.uniform(0, 9, (3, 10, 8)).astype(np.float32), name="stackC")
    result_a = superresolve_volume_node(stack_a, device="cpu", model=mrml_tiny_model_path)
    voxels_a = slicer.util.arrayFromVolume(result_a).copy()

    assert output_node_for_run(stack_a, result_a) is result_a, "a rerun on the same input replaces its result"
    assert output_node_for_run(stack_c, result_a) is None, "another input's result is not a place to write"
    result_c = superresolve_volume_node(stack_c, output_node_for_run(stack_c, result_a), device="cpu",
                                        model=mrml_tiny_model_path)

    assert result_c is not result_a and result_c.GetName() == "stackC" + OUTPUT_NAME_SUFFIX
    assert result_a.GetName() == "stackA" + OUTPUT_NAME_SUFFIX
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(result_a), voxels_a)


def test_a_reused_node_is_renamed_after_its_input(mrml_scene, mrml_tiny_model_path):
    source = add_volume(mrml_scene, np.ones((3, 10, 8), np.float32), name="stackB")
    chosen = add_volume(mrml_scene, np.zeros((1, 2, 2), np.float32), name="scratch")
    assert output_node_for_run(source, chosen) is chosen, "a node the user picked, no result of ours, is used"
    output = superresolve_volume_node(source, chosen, device="cpu", model=mrml_tiny_model_path)
    assert output is chosen and output.GetName() == "stackB" + OUTPUT_NAME_SUFFIX


def test_cancelling_at_the_last_progress_call_adds_no_node(mrml_scene, mrml_tiny_model_path):
    source = add_volume(mrml_scene, np.ones((3, 10, 8), np.float32))
    count = node_count(mrml_scene)
    fractions = []

    def cancel_when_done(fraction: float, message: str) -> bool:
        fractions.append(fraction)
        return fraction < 1.0

    with pytest.raises(SuperResolutionCancelled):
        superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path, progress=cancel_when_done)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert node_count(mrml_scene) == count


def test_an_input_without_display_node_still_gives_a_displayable_output(mrml_scene, mrml_tiny_model_path):
    source = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "scripted")
    slicer.util.updateVolumeFromArray(source, np.ones((3, 10, 8), np.float32))
    assert source.GetDisplayNode() is None

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)

    display = output.GetDisplayNode()
    assert display is not None and display.IsA("vtkMRMLScalarVolumeDisplayNode")
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeGrey"


@pytest.mark.parametrize("what", ["remove the input", "remove the output", "close the scene"])
def test_removing_a_node_or_closing_the_scene_during_the_run_cancels_cleanly(mrml_scene, mrml_tiny_model_path,
                                                                              what):
    """Slicer processes events in the progress callback, so the user can do this mid-run."""
    source = add_volume(mrml_scene, np.random.default_rng(7).uniform(0, 9, (4, 10, 8)).astype(np.float32))
    given = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)
    given_voxels = slicer.util.arrayFromVolume(given).copy()
    nodes_after_action = []

    def user_acts_after_first_batch(fraction: float, message: str) -> bool:
        if message.endswith("slices") and not nodes_after_action:
            if what == "remove the input":
                mrml_scene.RemoveNode(source)
            elif what == "remove the output":
                mrml_scene.RemoveNode(given)
            else:
                mrml_scene.Clear(False)
            nodes_after_action.append(mrml_scene.GetNumberOfNodes())
        return True

    with pytest.raises(SuperResolutionCancelled, match="removed, or the scene closed"):
        superresolve_volume_node(source, given, device="cpu", model=mrml_tiny_model_path, batch_size=1,
                                 progress=user_acts_after_first_batch)
    assert mrml_scene.GetNumberOfNodes() == nodes_after_action[0], "nothing was added after the user's action"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(given), given_voxels)


def test_cancelling_leaves_a_given_output_node_unchanged(mrml_scene, mrml_tiny_model_path):
    source = add_volume(mrml_scene, np.random.default_rng(6).uniform(0, 9, (3, 10, 8)).astype(np.float32))
    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)
    voxels, matrix, modified = slicer.util.arrayFromVolume(output).copy(), ijk_to_ras(output), output.GetMTime()

    slicer.util.updateVolumeFromArray(source, np.zeros((3, 12, 8), np.float32))
    with pytest.raises(SuperResolutionCancelled):
        superresolve_volume_node(source, output, device="cpu", model=mrml_tiny_model_path,
                                 progress=lambda fraction, message: fraction < 1.0)

    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), voxels)
    np.testing.assert_array_equal(ijk_to_ras(output), matrix)
    assert output.GetMTime() == modified


@pytest.mark.parametrize(("class_name", "voxels", "reason"), [
    ("vtkMRMLLabelMapVolumeNode", np.ones((3, 8, 8), np.uint8), "label map"),
    ("vtkMRMLVectorVolumeNode", np.ones((3, 8, 8, 3), np.float32), "vector"),
    ("vtkMRMLDiffusionWeightedVolumeNode", np.ones((3, 8, 8), np.float32), "diffusion"),
])
def test_label_map_vector_and_diffusion_volumes_are_refused(mrml_scene, class_name, voxels, reason):
    source = add_volume(mrml_scene, voxels, class_name=class_name)
    count = node_count(mrml_scene)
    with pytest.raises(UserInputError, match=reason):
        superresolve_volume_node(source)
    assert node_count(mrml_scene) == count


def test_the_input_cannot_be_its_own_output(mrml_scene):
    source = add_volume(mrml_scene, np.ones((3, 8, 8), np.float32))
    with pytest.raises(UserInputError, match="differ"):
        superresolve_volume_node(source, source)


def test_output_is_placed_beside_the_input_in_the_subject_hierarchy(mrml_scene, mrml_tiny_model_path):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml_scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "fetus 1")
    study = hierarchy.CreateStudyItem(patient, "MRI 32 weeks")
    source = add_volume(mrml_scene, np.ones((3, 8, 8), np.float32))
    hierarchy.CreateItem(study, source)

    output = superresolve_volume_node(source, device="cpu", model=mrml_tiny_model_path)

    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(output)) == study


def test_bundled_model_super_resolves_a_small_volume_on_the_cpu(mrml_scene):
    voxels = blob((3, 32, 28), centre_kji=(1.0, 15.0, 13.0), sigma_kji=(1.0, 5.0, 4.0))
    source = add_volume(mrml_scene, voxels, directions=oblique_flipped_directions(9))

    output = superresolve_volume_node(source, device="cpu")

    result = slicer.util.arrayFromVolume(output)
    assert result.shape == (3, 64, 56)
    assert np.isfinite(result).all()
    assert output.GetAttribute(ATTRIBUTE_DEVICE) == "cpu"
    assert abs(float(result.mean()) - float(voxels.mean())) < 0.02 * float(voxels.mean())


def test_importing_the_package_imports_neither_slicer_nor_torch():
    code = "import sys, RRLSRNSuperResLib; print('slicer' in sys.modules, 'torch' in sys.modules)"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["False", "False"]


def test_public_api_and_the_rrlsrn_command_resolve():
    import importlib.metadata

    from RRLSRNSuperResLib import create_brain_segmentation, superresolve
    from RRLSRNSuperResLib.cli.main import entry_point

    assert superresolve.__module__ == "RRLSRNSuperResLib.engine.volume"
    assert superresolve_volume_node.__module__ == "RRLSRNSuperResLib.mrml.volumes"
    assert create_brain_segmentation.__module__ == "RRLSRNSuperResLib.mrml.segmentations"
    (command,) = [entry for entry in importlib.metadata.entry_points(group="console_scripts") if entry.name == "rrlsrn"]
    assert command.load() is entry_point


def test_errors_shown_in_slicer_name_the_panels_controls_not_command_line_flags(mrml_scene, monkeypatch):
    """Issue 26 item 6: "--device cuda: ... or use --device cpu" reached Slicer's error box."""
    from RRLSRNSuperResLib import create_brain_segmentation
    from RRLSRNSuperResLib.engine import devices

    monkeypatch.setattr(devices, "cuda_usable", lambda: False)
    source = add_volume(mrml_scene, np.ones((2, 8, 8), np.float32))
    with pytest.raises(UserInputError) as raised:
        superresolve_volume_node(source, device="cuda")
    assert str(raised.value).startswith("No working CUDA GPU was found") and "Device: CPU" in str(raised.value)
    assert "--" not in str(raised.value)
    with pytest.raises(UserInputError, match="--device cpu"):  # the command line keeps its flags
        devices.select_device("cuda")

    blank = add_volume(mrml_scene, np.zeros((12, 64, 64), np.float32), spacing=(1.0, 1.0, 3.0))
    with pytest.raises(UserInputError) as raised:
        create_brain_segmentation(blank)
    assert "'Brain seed'" in str(raised.value) and "--" not in str(raised.value)
