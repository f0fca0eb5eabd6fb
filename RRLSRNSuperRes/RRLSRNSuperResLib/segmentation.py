"""Fetal brain segmentation node from the automatic mask, and masks read back on any grid.

Only ``vtkMRML*`` classes, the segmentations logic's static labelmap import/export and the
``slicer.util`` volume array helpers are used, never Qt, ``slicer.app``, ``slicer.mrmlScene``
or ``slicer.modules``: the same code runs in Slicer and in a bare slicer-core scene (where the
caller registers ``vtkSlicerSegmentationsModuleLogic`` with the scene once, as Slicer does at
start-up, so the representation converters exist). ``slicer.util``'s segment array helpers
are not used because they reach for ``slicer.modules`` and the global scene.

Arrays are numpy [k, j, i] (KJI) on the reference volume's grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVolume, updateVolumeFromArray

from .masks import fetal_brain_mask
from .mrml import check_scalar_volume

SEGMENT_NAME = "Fetal brain"
SEGMENT_COLOR = (0.98, 0.82, 0.56)  # warm light orange: visible over grey T2 and over bright fluid
# DICOM/SNOMED code for "Brain" in Slicer's general anatomy terminology, so Segment Editor and
# DICOM SEG export label the segment with a standard anatomical term.
BRAIN_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list"
    "~SCT^123037004^Anatomical Structure~SCT^12738006^Brain~^^~Anatomic codes - DICOM master list~^^~^^"
)


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
    input volume and it observes the input's parent transform, so it stays aligned.
    """
    check_scalar_volume(input_volume_node)
    seed_ijk = None if seed_ras is None else _ras_to_ijk(input_volume_node, seed_ras)
    mask = fetal_brain_mask(arrayFromVolume(input_volume_node), input_volume_node.GetSpacing(), seed_ijk)
    scene = input_volume_node.GetScene()
    segmentation_node = scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{input_volume_node.GetName()} brain mask"))
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(input_volume_node)
    segmentation_node.SetAndObserveTransformNodeID(input_volume_node.GetTransformNodeID())
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", SEGMENT_NAME, SEGMENT_COLOR)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), BRAIN_TERMINOLOGY)
    set_segment_mask(segmentation_node, segment_id, mask, input_volume_node)
    return segmentation_node


def _ras_to_ijk(volume_node: Any, ras: Sequence[float]) -> np.ndarray:
    """Continuous IJK index of a RAS point (mm) in the volume's own frame."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(matrix)
    point = matrix.MultiplyPoint((*(float(value) for value in ras), 1.0))
    return np.asarray(point[:3])


def _temporary_labelmap(reference_volume_node: Any) -> Any:
    """A labelmap node on the reference volume's grid (IJKToRAS copied), added to its scene."""
    scene = reference_volume_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", scene.GenerateUniqueName("__mask_transfer__"))
    matrix = vtk.vtkMatrix4x4()
    reference_volume_node.GetIJKToRASMatrix(matrix)
    labelmap.SetIJKToRASMatrix(matrix)
    return labelmap


def set_segment_mask(segmentation_node: Any, segment_id: str, mask_kji: np.ndarray,
                     reference_volume_node: Any) -> None:
    """Replace a segment's voxels by a 0/1 mask on the reference volume's grid (numpy KJI)."""
    labelmap = _temporary_labelmap(reference_volume_node)
    try:
        updateVolumeFromArray(labelmap, (np.asarray(mask_kji) > 0).astype(np.uint8))
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmap, segmentation_node, segment_ids):
            raise RuntimeError(f"could not import the mask into segment {segment_id!r}")
    finally:
        reference_volume_node.GetScene().RemoveNode(labelmap)


def segment_mask_on_volume(segmentation_node: Any, segment_id: str, reference_volume_node: Any) -> np.ndarray:
    """A segment as a 0/1 uint8 array (numpy KJI) on any volume's grid, e.g. the x2 output.

    The segmentations logic resamples the segment onto the reference geometry (nearest
    neighbour), so passing the super-resolved volume gives the mask on the x2 grid.
    """
    labelmap = _temporary_labelmap(reference_volume_node)
    try:
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, segment_ids, labelmap, reference_volume_node):
            raise RuntimeError(f"could not export segment {segment_id!r} onto {reference_volume_node.GetName()}")
        return (arrayFromVolume(labelmap) > 0).astype(np.uint8)
    finally:
        reference_volume_node.GetScene().RemoveNode(labelmap)
