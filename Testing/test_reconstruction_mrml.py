"""The 3D reconstruction of stack nodes (``mrml.reconstruction``) in a slicer-core scene: background and in-process.

Three orthogonal stacks, simulated from the tiny oblique head with motion, are loaded from NIfTI (LPS) by
Slicer's own Volumes logic, as a user loads them; the RRLSRN step is off (``superres=False``) where the
network is not what a test is about, so each reconstruction takes seconds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import slicer
import slicer.util
import slicer_stand_ins
import test_reconstruct_cli
import vtk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.io.volumes import read_volume
from RRLSRNSuperResLib.mrml.reconstruction import (
    ATTRIBUTE_STACK_NODE_IDS,
    ReconstructionRequest,
    command_arguments,
    reconstruct_stack_nodes,
)
from RRLSRNSuperResLib.mrml.segmentations import add_brain_segmentation

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
RESOLUTION_MM = 1.6
CPU = EngineOptions(device="cpu", precision="fp32")


def rrlsrn_folders() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("rrlsrn-*")}


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


# Three orthogonal int16 stacks and their masks, simulated from the oblique, off-origin tiny head (module scope).
stack_files = test_reconstruct_cli.stack_files


@pytest.fixture
def scene_with_stacks(stack_files):
    """An application-like scene (segmentations logic registered) with the stacks and their label maps loaded."""
    scene, volumes = slicer_stand_ins.application_scene()
    stacks = [volumes.AddArchetypeVolume(str(path), path.name.split(".")[0], 0) for path in stack_files[0]]
    masks = [volumes.AddArchetypeVolume(str(path), path.name.split(".")[0], 1) for path in stack_files[1]]
    yield scene, stacks, masks
    scene.Clear(True)


def volume_count(scene) -> int:
    return scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")


def test_the_result_node_has_the_geometry_and_voxels_of_the_file_the_command_writes(
        scene_with_stacks, stack_files, tmp_path):
    scene, stacks, masks = scene_with_stacks
    before = rrlsrn_folders()
    reports = []

    result = reconstruct_stack_nodes(
        ReconstructionRequest(stacks, masks, resolution_mm=RESOLUTION_MM, superres=False, engine=CPU),
        python=sys.executable, progress=lambda fraction, message: reports.append((fraction, message)))
    assert main(["reconstruct", *map(str, stack_files[0]), "--mask", *map(str, stack_files[1]), "--output",
                 str(tmp_path / "cli.nii.gz"), "--resolution", str(RESOLUTION_MM), "--no-superres", "--device",
                 "cpu", "--precision", "fp32"]) == 0

    written = read_volume(tmp_path / "cli.nii.gz")
    expected_ras = LPS_TO_RAS @ written.geometry.index_to_physical_matrix()
    np.testing.assert_allclose(ijk_to_ras(result.volume), expected_ras, atol=1e-3)
    assert np.allclose(np.diag(ijk_to_ras(result.volume))[:3], RESOLUTION_MM), "RAS-aligned axes in RAS: +diagonal"
    voxels = slicer.util.arrayFromVolume(result.volume)
    assert voxels.shape == written.voxels.shape
    np.testing.assert_allclose(voxels, written.voxels, atol=0.01 * np.ptp(written.voxels))
    assert result.volume.GetName() == f"{stacks[0].GetName()} 3D reconstruction"
    assert result.volume.GetAttribute(ATTRIBUTE_STACK_NODE_IDS) == " ".join(s.GetID() for s in stacks)
    assert reports[-1][0] == pytest.approx(1.0) and reports[-1][1].startswith("3D reconstruction")
    assert all(b[0] >= a[0] - 1e-9 for a, b in zip(reports, reports[1:])), "one rising scale"
    assert rrlsrn_folders() == before, "the temporary folder is removed"


def test_the_result_mask_is_a_new_brain_segmentation_on_the_result(scene_with_stacks):
    scene, stacks, masks = scene_with_stacks
    result = reconstruct_stack_nodes(ReconstructionRequest(stacks, masks, resolution_mm=RESOLUTION_MM,
                                                           superres=False, engine=CPU))
    segmentation = result.segmentation
    assert segmentation.IsA("vtkMRMLSegmentationNode") and segmentation.GetScene() is scene
    assert segmentation.GetSegmentation().GetSegmentIdBySegmentName("Fetal brain")
    from RRLSRNSuperResLib.mrml.segmentations import brain_mask_on_volume

    brain = brain_mask_on_volume(segmentation, result.volume)
    inside = slicer.util.arrayFromVolume(result.volume)[brain > 0].mean()
    outside = slicer.util.arrayFromVolume(result.volume)[brain == 0].mean()
    assert 0.05 < brain.mean() < 0.9 and inside > 3 * outside


def test_background_and_in_process_agree_and_a_second_run_adds_a_second_node(scene_with_stacks):
    scene, stacks, masks = scene_with_stacks
    segmentations = [add_brain_segmentation(stack, slicer.util.arrayFromVolume(mask))
                     for stack, mask in zip(stacks, masks)]
    request = ReconstructionRequest(stacks, segmentations, resolution_mm=RESOLUTION_MM, superres=False, engine=CPU)
    first = reconstruct_stack_nodes(request, python=sys.executable)
    first_voxels = slicer.util.arrayFromVolume(first.volume).copy()
    count = volume_count(scene)

    second = reconstruct_stack_nodes(request)

    assert second.volume is not first.volume and volume_count(scene) == count + 1
    assert second.volume.GetName() == f"{stacks[0].GetName()} 3D reconstruction_1"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(first.volume), first_voxels), "the first is kept"
    assert np.array_equal(ijk_to_ras(first.volume), ijk_to_ras(second.volume))
    np.testing.assert_allclose(slicer.util.arrayFromVolume(second.volume), first_voxels,
                               atol=1e-3 * np.ptp(first_voxels))
    assert first.summary["template_index"] == second.summary["template_index"]


@pytest.mark.parametrize("background", [True, False])
def test_cancel_leaves_no_node_and_no_temporary_file(scene_with_stacks, background):
    scene, stacks, masks = scene_with_stacks
    before_nodes, before_folders = scene.GetNumberOfNodes(), rrlsrn_folders()
    seen = []

    def cancel_in_the_reconstruction(fraction: float, message: str) -> bool:
        seen.append(message)
        return not message.startswith("3D reconstruction")

    with pytest.raises(SuperResolutionCancelled):
        reconstruct_stack_nodes(ReconstructionRequest(stacks, masks, resolution_mm=RESOLUTION_MM, superres=False,
                                                      engine=CPU),
                                python=sys.executable if background else None, progress=cancel_in_the_reconstruction)

    assert seen[-1].startswith("3D reconstruction")
    assert scene.GetNumberOfNodes() == before_nodes and rrlsrn_folders() == before_folders


def test_masks_that_do_not_pair_with_the_stacks_are_refused_in_slicer_words(scene_with_stacks):
    scene, stacks, masks = scene_with_stacks
    before_nodes, before_folders = scene.GetNumberOfNodes(), rrlsrn_folders()
    with pytest.raises(UserInputError, match="2 brain masks are checked for 3 stacks; check one mask per stack"):
        reconstruct_stack_nodes(ReconstructionRequest(stacks, masks[:2], superres=False, engine=CPU))
    swapped = [masks[1], masks[0], masks[2]]
    with pytest.raises(UserInputError, match="^the 1st brain mask '.*' \\(paired with the 1st stack '.*'\\) is not "
                                             "on that stack's grid. Masks pair with stacks in the order"):
        reconstruct_stack_nodes(ReconstructionRequest(stacks, swapped, superres=False, engine=CPU))
    with pytest.raises(UserInputError, match="at least 2 stacks"):
        reconstruct_stack_nodes(ReconstructionRequest(stacks[:1]))
    assert scene.GetNumberOfNodes() == before_nodes and rrlsrn_folders() == before_folders


def test_the_child_gets_the_stacks_masks_and_options_in_order():
    request = ReconstructionRequest(stacks=(), resolution_mm=0.7, superres=False)
    assert command_arguments(request, EngineOptions(device="cpu"), ["1_a.nrrd", "2_b.nrrd"],
                             ["1_a_brain.nrrd", "2_b_brain.nrrd"])[:10] == [
        "reconstruct", "1_a.nrrd", "2_b.nrrd", "--output", "output.nrrd", "--resolution", "0.7", "--mask",
        "1_a_brain.nrrd", "2_b_brain.nrrd"]
    arguments = command_arguments(request, EngineOptions(device="cpu"), ["a.nrrd", "b.nrrd"], [])
    assert "--no-superres" in arguments and "--mask" not in arguments and arguments[-1] == "--progress-lines"
    assert arguments[arguments.index("--device") + 1] == "cpu"
