"""Fetal brain segmentation node from the automatic mask, and masks read back on any grid.

Only ``vtkMRML*`` classes, the segmentations logic's static labelmap import/export and the
``slicer.util`` volume array helpers are used, never Qt, ``slicer.app``, ``slicer.mrmlScene``
or ``slicer.modules``: the same code runs in Slicer and in a bare slicer-core scene (where the
caller registers ``vtkSlicerSegmentationsModuleLogic`` with the scene once, as Slicer does at
start-up, so the representation converters exist). ``slicer.util``'s segment array helpers
are not used because they reach for ``slicer.modules`` and the global scene.

The segmentation node itself displays on any grid (Slicer resamples it for each view); the
brain mask is also written as a label map on the super-resolved volume's grid
(:func:`brain_mask_on_volume_as_labelmap`) for export, statistics or as a mask elsewhere.

Arrays are numpy [k, j, i] (KJI) on the reference volume's grid.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVolume, updateVolumeFromArray

from ..errors import UserInputError
from ..masks.fetal_brain import fetal_brain_mask
from .messages import worded_for_slicer
from .volumes import check_scalar_volume, place_beside

SEGMENT_NAME = "Fetal brain"
BRAIN_MASK_LABEL = 1
# Node reference from a volume to the label map of the brain mask on its grid, so a second
# super-resolution into the same output updates that label map instead of adding another.
BRAIN_MASK_REFERENCE_ROLE = "RRLSRN.BrainMask"
# Attributes of the segmentation node: the automatic mask's confidence (0-1, two decimals)
# and its warnings (one per line, empty when it looks plausible), for the status line and for
# anyone reading the scene later.
MASK_CONFIDENCE_ATTRIBUTE = "RRLSRN.MaskConfidence"
MASK_WARNINGS_ATTRIBUTE = "RRLSRN.MaskWarnings"
SEGMENT_COLOR = (0.98, 0.82, 0.56)  # warm light orange: visible over grey T2 and over bright fluid
# DICOM/SNOMED code for "Brain" in Slicer's general anatomy terminology, so Segment Editor and
# DICOM SEG export label the segment with a standard anatomical term.
BRAIN_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list"
    "~SCT^123037004^Anatomical Structure~SCT^12738006^Brain~^^~Anatomic codes - DICOM master list~^^~^^"
)


@worded_for_slicer()
def create_brain_segmentation(input_volume_node: Any, seed_ras: Sequence[float] | None = None) -> Any:
    """Add a segmentation with one segment "Fetal brain", initialised by the automatic mask.

    Parameters
    ----------
    input_volume_node : ``vtkMRMLScalarVolumeNode`` (a T2 stack) in a scene.
    seed_ras : optional point inside the brain, RAS mm in the volume's own frame (before any
        parent transform); default the field-of-view centre.

    Returns
    -------
    The new ``vtkMRMLSegmentationNode`` in the input's scene; its reference geometry is the
    input volume and it observes the input's parent transform, so it stays aligned. Its
    attributes ``RRLSRN.MaskConfidence`` and ``RRLSRN.MaskWarnings`` say how far to trust it.
    """
    check_scalar_volume(input_volume_node)
    seed_ijk = None if seed_ras is None else _ras_to_ijk(input_volume_node, seed_ras)
    result = fetal_brain_mask(arrayFromVolume(input_volume_node), input_volume_node.GetSpacing(), seed_ijk)
    segmentation_node = add_brain_segmentation(input_volume_node, result.voxels)
    segmentation_node.SetAttribute(MASK_CONFIDENCE_ATTRIBUTE, f"{result.confidence:.2f}")
    segmentation_node.SetAttribute(MASK_WARNINGS_ATTRIBUTE, "\n".join(result.problems))
    return segmentation_node


def add_brain_segmentation(reference_volume_node: Any, mask_kji: np.ndarray) -> Any:
    """A new segmentation "<reference> brain mask" with one segment "Fetal brain" (standard terminology),
    set to ``mask_kji`` (0/1, numpy KJI on the reference's grid); its reference geometry is that volume and
    it observes the volume's parent transform, so it stays aligned."""
    scene = reference_volume_node.GetScene()
    segmentation_node = scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{reference_volume_node.GetName()} brain mask"))
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    segmentation_node.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", SEGMENT_NAME, SEGMENT_COLOR)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), BRAIN_TERMINOLOGY)
    set_segment_mask(segmentation_node, segment_id, mask_kji, reference_volume_node)
    return segmentation_node


def brain_mask_assessment(segmentation_node: Any) -> tuple[float | None, list[str]]:
    """Confidence (None if the mask was not made automatically) and warnings of a brain segmentation."""
    confidence = segmentation_node.GetAttribute(MASK_CONFIDENCE_ATTRIBUTE)
    warnings = segmentation_node.GetAttribute(MASK_WARNINGS_ATTRIBUTE) or ""
    return (None if confidence is None else float(confidence)), [line for line in warnings.split("\n") if line]


def _ras_to_ijk(volume_node: Any, ras: Sequence[float]) -> np.ndarray:
    """Continuous IJK index of a RAS point (mm) in the volume's own frame."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(matrix)
    point = matrix.MultiplyPoint((*(float(value) for value in ras), 1.0))
    return np.asarray(point[:3])


def brain_segment_id(segmentation_node: Any) -> str:
    """ID of the "Fetal brain" segment, or of the only segment when none has that name.

    Raises
    ------
    UserInputError
        No segment is named "Fetal brain" and the segmentation does not have exactly one segment.
    """
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(SEGMENT_NAME)
    if not segment_id and segmentation.GetNumberOfSegments() == 1:
        segment_id = segmentation.GetNthSegmentID(0)
    if not segment_id:
        raise UserInputError(
            f"segmentation '{segmentation_node.GetName()}' has no '{SEGMENT_NAME}' segment and "
            f"{segmentation.GetNumberOfSegments()} segments, so none can be taken as the brain; "
            f"name the brain segment '{SEGMENT_NAME}'")
    return segment_id


def markups_seed_ras(markups_node: Any, volume_node: Any) -> np.ndarray | None:
    """First placed control point of a point list, in the volume's own RAS frame (mm), or None.

    Points still being placed (preview) or skipped (undefined, missing) have no position the
    user chose, so the first point whose position is *defined* is taken. Markups are placed
    in world coordinates; :func:`create_brain_segmentation` takes the seed before the
    volume's parent transform, so the point is mapped from world into that frame. Returns
    None when the list has no placed point.
    """
    if markups_node is None:
        return None
    placed = [index for index in range(markups_node.GetNumberOfControlPoints())
              if markups_node.GetNthControlPointPositionStatus(index) == slicer.vtkMRMLMarkupsNode.PositionDefined]
    if not placed:
        return None
    world = [0.0, 0.0, 0.0]
    markups_node.GetNthControlPointPositionWorld(placed[0], world)
    world_to_volume = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volume_node.GetParentTransformNode(), world_to_volume)
    return np.asarray(world_to_volume.TransformPoint(world))


def _follow_grid(labelmap: Any, reference_volume_node: Any) -> None:
    """Give the labelmap the reference's IJKToRAS and parent transform.

    The segmentations logic maps between the labelmap's and the segmentation's world frames,
    so a labelmap without the reference's transform would put the mask in the wrong place.
    """
    matrix = vtk.vtkMatrix4x4()
    reference_volume_node.GetIJKToRASMatrix(matrix)
    labelmap.SetIJKToRASMatrix(matrix)
    labelmap.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())


def _add_labelmap_on_grid(reference_volume_node: Any, name: str) -> Any:
    """A labelmap node on the reference volume's grid, added to its scene."""
    labelmap = reference_volume_node.GetScene().AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    _follow_grid(labelmap, reference_volume_node)
    return labelmap


@contextmanager
def _scratch_labelmap(reference_volume_node: Any) -> Iterator[Any]:
    """A labelmap on the reference grid that leaves nothing in the scene after the block.

    The segmentations logic's export gives the labelmap a display node and a new colour table
    ("<segmentation name>_ColorTable"); both are removed with the labelmap, so reading a mask
    back (once per super-resolution) does not pile nodes up in the user's scene.
    """
    scene = reference_volume_node.GetScene()
    colours_before = {node.GetID() for node in _nodes_by_class(scene, "vtkMRMLColorNode")}
    labelmap = _add_labelmap_on_grid(reference_volume_node, scene.GenerateUniqueName("__mask_transfer__"))
    try:
        yield labelmap
    finally:
        display_nodes = [labelmap.GetNthDisplayNode(n) for n in range(labelmap.GetNumberOfDisplayNodes())]
        added_colours = [node for node in _nodes_by_class(scene, "vtkMRMLColorNode")
                         if node.GetID() not in colours_before]
        for node in [labelmap, *display_nodes, *added_colours]:
            if node is not None:
                scene.RemoveNode(node)


def _nodes_by_class(scene: Any, class_name: str) -> list[Any]:
    return [scene.GetNthNodeByClass(n, class_name) for n in range(scene.GetNumberOfNodesByClass(class_name))]


def set_segment_mask(segmentation_node: Any, segment_id: str, mask_kji: np.ndarray,
                     reference_volume_node: Any) -> None:
    """Replace a segment's voxels by a 0/1 mask on the reference volume's grid (numpy KJI)."""
    with _scratch_labelmap(reference_volume_node) as labelmap:
        updateVolumeFromArray(labelmap, (np.asarray(mask_kji) > 0).astype(np.uint8))
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmap, segmentation_node, segment_ids):
            raise RuntimeError(f"could not import the mask into segment {segment_id!r}")


def segment_mask_on_volume(segmentation_node: Any, segment_id: str, reference_volume_node: Any) -> np.ndarray:
    """A segment as a 0/1 uint8 array (numpy KJI) on any volume's grid, e.g. the x2 output.

    The segmentations logic resamples the segment onto the reference geometry (nearest
    neighbour), so passing the super-resolved volume gives the mask on the x2 grid.
    """
    with _scratch_labelmap(reference_volume_node) as labelmap:
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, segment_ids, labelmap, reference_volume_node):
            raise RuntimeError(f"could not export segment {segment_id!r} onto {reference_volume_node.GetName()}")
        return (arrayFromVolume(labelmap) > 0).astype(np.uint8)


def brain_mask_on_volume(segmentation_node: Any, reference_volume_node: Any) -> np.ndarray:
    """The brain segment (:func:`brain_segment_id`) as a 0/1 uint8 array (KJI) on the reference grid."""
    return segment_mask_on_volume(segmentation_node, brain_segment_id(segmentation_node), reference_volume_node)


def brain_mask_on_volume_as_labelmap(segmentation_node: Any, reference_volume_node: Any,
                                     name: str | None = None) -> Any:
    """The brain mask as a label map (brain = 1) on a volume's grid, e.g. the x2 output.

    The label map has the reference's IJKToRAS and voxel count, observes the reference's
    parent transform and sits beside it in the subject hierarchy. The reference keeps a node
    reference (role ``BRAIN_MASK_REFERENCE_ROLE``) to it: called again for the same volume
    (a second run into the same output) it updates that label map instead of adding one.

    Parameters
    ----------
    segmentation_node : segmentation holding the brain segment (:func:`brain_segment_id`).
    reference_volume_node : volume whose grid the label map takes, in the segmentation's scene.
    name : name of a new label map; default ``"<reference name> brain mask"``.

    Returns
    -------
    The ``vtkMRMLLabelMapVolumeNode``.
    """
    mask = brain_mask_on_volume(segmentation_node, reference_volume_node)
    labelmap = reference_volume_node.GetNodeReference(BRAIN_MASK_REFERENCE_ROLE)
    if labelmap is None or not labelmap.IsA("vtkMRMLLabelMapVolumeNode"):
        scene = reference_volume_node.GetScene()
        labelmap = scene.AddNewNodeByClass(
            "vtkMRMLLabelMapVolumeNode",
            name or scene.GenerateUniqueName(f"{reference_volume_node.GetName()} brain mask"))
        labelmap.CreateDefaultDisplayNodes()
        reference_volume_node.SetNodeReferenceID(BRAIN_MASK_REFERENCE_ROLE, labelmap.GetID())
    disabled = labelmap.StartModify()
    _follow_grid(labelmap, reference_volume_node)  # a reused label map follows a changed grid or transform
    updateVolumeFromArray(labelmap, mask * np.uint8(BRAIN_MASK_LABEL))
    labelmap.EndModify(disabled)
    place_beside(reference_volume_node, labelmap)
    return labelmap
