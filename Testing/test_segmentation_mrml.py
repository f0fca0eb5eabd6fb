"""Brain segmentation node in a real slicer-core scene: segment, reference, export on both grids."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import slicer.util
import vtk
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.imaging.geometry import upsampled_geometry
from RRLSRNSuperResLib.imaging.overlap import dice
from RRLSRNSuperResLib.io.volumes import read_volume
from RRLSRNSuperResLib.masks.fetal_brain import LOW_CONFIDENCE, fetal_brain_mask
from RRLSRNSuperResLib.masks.transfer import mask_to_upsampled_grid
from RRLSRNSuperResLib.mrml.segmentations import (
    BRAIN_MASK_LABEL,
    SEGMENT_NAME,
    brain_mask_assessment,
    brain_mask_on_volume,
    brain_mask_on_volume_as_labelmap,
    brain_segment_id,
    create_brain_segmentation,
    markups_seed_ras,
    segment_mask_on_volume,
)
from RRLSRNSuperResLib.mrml.volumes import apply_geometry, geometry_from_node
from RRLSRNSuperResLib.resources import sample_volume_path

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture
def seg_scene():
    """A slicer-core scene with the segmentations logic registered, as Slicer has at start-up.

    The logic installs the segmentation representation converters the import/export needs.
    """
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    yield scene
    scene.Clear(True)


@pytest.fixture(scope="module")
def seg_sample():
    """The bundled stack and its automatic mask (computed once for the module)."""
    volume = read_volume(sample_volume_path())
    return volume, fetal_brain_mask(volume.voxels, volume.geometry.spacing).voxels


@pytest.fixture
def seg_sample_node(seg_scene, seg_sample):
    """The bundled stack as a volume node with its geometry in RAS, and the automatic mask."""
    volume, mask = seg_sample
    node = seg_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sample")
    slicer.util.updateVolumeFromArray(node, volume.voxels)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(LPS_TO_RAS @ volume.geometry.index_to_physical_matrix()))
    return node, mask


def test_segmentation_has_the_fetal_brain_segment_referencing_the_input(seg_sample_node):
    node, mask = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    assert segmentation_node.GetScene() is node.GetScene()
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    reference = segmentation_node.GetNodeReference(role)
    assert reference is node
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    assert segment_id
    np.testing.assert_array_equal(segment_mask_on_volume(segmentation_node, segment_id, node), mask)
    assert node.GetScene().GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    confidence, problems = brain_mask_assessment(segmentation_node)
    assert LOW_CONFIDENCE < confidence <= 1.0 and problems == []


def test_a_doubtful_mask_carries_its_warnings_on_the_node(seg_scene):
    """A stack filled by one bright block: the mask covers the view, and the node says so."""
    node = seg_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "block")
    voxels = np.full((20, 64, 64), 50.0, dtype=np.float32)
    voxels[:, 1:-1, 1:-1] = 500.0
    slicer.util.updateVolumeFromArray(node, voxels)
    node.SetSpacing(1.2, 1.2, 3.0)
    segmentation_node = create_brain_segmentation(node)
    confidence, problems = brain_mask_assessment(segmentation_node)
    assert confidence is not None and any("nearly all of it" in problem for problem in problems)
    assert brain_mask_assessment(seg_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")) == (None, [])


def test_reading_a_mask_back_leaves_no_node_in_the_scene(seg_sample_node):
    """The export adds a display node and a colour table to its scratch label map: all are removed."""
    node, _ = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    scene = node.GetScene()
    before = [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())]
    brain_mask_on_volume(segmentation_node, node)
    assert [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())] == before


def test_segment_exported_on_the_x2_volume_is_the_mask_on_the_x2_grid(seg_sample_node):
    node, mask = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    geometry = upsampled_geometry(geometry_from_node(node), axis=2)
    upsampled = node.GetScene().AddNewNodeByClass("vtkMRMLScalarVolumeNode", "x2")
    slicer.util.updateVolumeFromArray(upsampled, np.zeros(tuple(reversed(geometry.size)), np.float32))
    apply_geometry(upsampled, geometry)
    np.testing.assert_array_equal(segment_mask_on_volume(segmentation_node, segment_id, upsampled),
                                  mask_to_upsampled_grid(mask, slice_axis=2))


def test_seed_in_ras_gives_the_same_brain(seg_sample_node):
    node, mask = seg_sample_node
    centre_ijk = np.append(np.argwhere(mask).mean(axis=0)[::-1], 1.0)
    seed_ras = (geometry_from_node(node).index_to_physical_matrix() @ centre_ijk)[:3]
    segmentation_node = create_brain_segmentation(node, seed_ras=seed_ras)
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    assert dice(segment_mask_on_volume(segmentation_node, segment_id, node), mask) > 0.9


def add_x2_volume(node, name="x2"):
    """An empty volume on the x2 grid of ``node`` (slices along K), as the adapter writes it."""
    geometry = upsampled_geometry(geometry_from_node(node), axis=2)
    upsampled = node.GetScene().AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(upsampled, np.zeros(tuple(reversed(geometry.size)), np.float32))
    apply_geometry(upsampled, geometry)
    return upsampled


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_brain_segment_is_found_by_name_among_others(seg_sample_node):
    node, _ = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    brain = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    segmentation_node.GetSegmentation().AddEmptySegment("", "Ventricles")
    assert brain_segment_id(segmentation_node) == brain


def test_the_only_segment_is_taken_as_the_brain_whatever_its_name(seg_scene):
    segmentation_node = seg_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn")
    only = segmentation_node.GetSegmentation().AddEmptySegment("", "Segment_1")
    assert brain_segment_id(segmentation_node) == only


@pytest.mark.parametrize("names", [(), ("Ventricles", "Skull")])
def test_no_brain_segment_is_a_user_error_naming_the_segmentation(seg_scene, names):
    segmentation_node = seg_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn")
    for name in names:
        segmentation_node.GetSegmentation().AddEmptySegment("", name)
    with pytest.raises(UserInputError, match="'drawn' has no 'Fetal brain' segment"):
        brain_segment_id(segmentation_node)


def test_brain_mask_labelmap_on_the_x2_volume_has_its_grid_and_the_x2_mask(seg_sample_node):
    node, mask = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    upsampled = add_x2_volume(node)
    labelmap = brain_mask_on_volume_as_labelmap(segmentation_node, upsampled)
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    assert labelmap.GetName() == "x2 brain mask"
    np.testing.assert_array_equal(ijk_to_ras(labelmap), ijk_to_ras(upsampled))
    voxels = slicer.util.arrayFromVolume(labelmap)
    assert voxels.shape == slicer.util.arrayFromVolume(upsampled).shape
    np.testing.assert_array_equal(voxels, mask_to_upsampled_grid(mask, slice_axis=2) * BRAIN_MASK_LABEL)
    assert labelmap.GetDisplayNode() is not None


def test_brain_mask_labelmap_is_updated_not_duplicated_on_a_second_run(seg_sample_node):
    node, mask = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    upsampled = add_x2_volume(node)
    first = brain_mask_on_volume_as_labelmap(segmentation_node, upsampled)
    slicer.util.updateVolumeFromArray(first, np.zeros_like(slicer.util.arrayFromVolume(first)))
    second = brain_mask_on_volume_as_labelmap(segmentation_node, upsampled)
    assert second is first
    assert node.GetScene().GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 1
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(second), mask_to_upsampled_grid(mask, slice_axis=2))


def test_masks_stay_on_the_volumes_under_a_parent_transform(seg_sample_node):
    node, mask = seg_sample_node
    scene = node.GetScene()
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "scanner to atlas")
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(
        np.array([[0.0, -1.0, 0.0, 5.0], [1.0, 0.0, 0.0, -12.0], [0.0, 0.0, 1.0, 30.0], [0.0, 0.0, 0.0, 1.0]])))
    node.SetAndObserveTransformNodeID(transform.GetID())
    segmentation_node = create_brain_segmentation(node)
    np.testing.assert_array_equal(brain_mask_on_volume(segmentation_node, node), mask)
    upsampled = add_x2_volume(node)
    upsampled.SetAndObserveTransformNodeID(transform.GetID())
    labelmap = brain_mask_on_volume_as_labelmap(segmentation_node, upsampled, name="mask x2")
    assert labelmap.GetName() == "mask x2"
    assert labelmap.GetTransformNodeID() == transform.GetID()
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(labelmap), mask_to_upsampled_grid(mask, slice_axis=2))


def test_markups_seed_is_the_first_point_in_the_volumes_own_frame(seg_scene):
    volume = seg_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "stack")
    transform = seg_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "to world")
    to_world = np.array([[0.0, -1.0, 0.0, 5.0], [1.0, 0.0, 0.0, -12.0], [0.0, 0.0, 1.0, 30.0], [0.0, 0.0, 0.0, 1.0]])
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(to_world))
    volume.SetAndObserveTransformNodeID(transform.GetID())
    points = seg_scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "seed")
    assert markups_seed_ras(points, volume) is None
    points.AddControlPointWorld(vtk.vtkVector3d(10.0, 20.0, 40.0))
    points.AddControlPointWorld(vtk.vtkVector3d(-50.0, 0.0, 0.0))
    local = markups_seed_ras(points, volume)
    np.testing.assert_allclose(to_world @ np.append(local, 1.0), [10.0, 20.0, 40.0, 1.0], atol=1e-9)


def test_markups_seed_skips_preview_undefined_and_missing_points(seg_scene):
    volume = seg_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "stack")
    points = seg_scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "seed")
    for position in ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [-3.0, 12.5, 40.0]):
        points.AddControlPointWorld(vtk.vtkVector3d(*position))
    points.SetNthControlPointPositionWorld(0, 1.0, 2.0, 3.0, slicer.vtkMRMLMarkupsNode.PositionPreview)
    points.UnsetNthControlPointPosition(1)
    points.SetNthControlPointPositionMissing(2)
    np.testing.assert_allclose(markups_seed_ras(points, volume), [-3.0, 12.5, 40.0])
    points.UnsetNthControlPointPosition(3)
    assert markups_seed_ras(points, volume) is None, "no placed point: the field-of-view centre is used"
