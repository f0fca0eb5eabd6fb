"""Brain segmentation node in a real slicer-core scene: segment, reference, export on both grids."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import slicer.util
from RRLSRNSuperResLib.geometry import upsampled_geometry
from RRLSRNSuperResLib.masks import dice, fetal_brain_mask, mask_to_x2_grid
from RRLSRNSuperResLib.mrml import apply_geometry, geometry_from_node
from RRLSRNSuperResLib.resources import sample_volume_path
from RRLSRNSuperResLib.segmentation import SEGMENT_NAME, create_brain_segmentation, segment_mask_on_volume
from RRLSRNSuperResLib.volume_io import read_volume

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
    return volume, fetal_brain_mask(volume.voxels, volume.geometry.spacing)


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


def test_segment_exported_on_the_x2_volume_is_the_mask_on_the_x2_grid(seg_sample_node):
    node, mask = seg_sample_node
    segmentation_node = create_brain_segmentation(node)
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    geometry = upsampled_geometry(geometry_from_node(node), axis=2)
    upsampled = node.GetScene().AddNewNodeByClass("vtkMRMLScalarVolumeNode", "x2")
    slicer.util.updateVolumeFromArray(upsampled, np.zeros(tuple(reversed(geometry.size)), np.float32))
    apply_geometry(upsampled, geometry)
    np.testing.assert_array_equal(segment_mask_on_volume(segmentation_node, segment_id, upsampled),
                                  mask_to_x2_grid(mask, slice_axis=2))


def test_seed_in_ras_gives_the_same_brain(seg_sample_node):
    node, mask = seg_sample_node
    centre_ijk = np.append(np.argwhere(mask).mean(axis=0)[::-1], 1.0)
    seed_ras = (geometry_from_node(node).index_to_physical_matrix() @ centre_ijk)[:3]
    segmentation_node = create_brain_segmentation(node, seed_ras=seed_ras)
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
    assert dice(segment_mask_on_volume(segmentation_node, segment_id, node), mask) > 0.9
