"""MRML adapter: super-resolve a volume node into another volume node (docs/design.md contract).

Only the ``slicer`` namespace that slicer-core also provides is used here (``vtkMRML*``
classes and the ``slicer.util`` array helpers), never Qt, ``slicer.app`` or
``slicer.modules``, so the same code runs inside Slicer and in a bare ``vtkMRMLScene``.

Conventions: Slicer arrays are numpy [k, j, i] (KJI); the node's IJKToRAS is converted to
the Lib's :class:`~..imaging.geometry.Geometry` in RAS (origin, spacing and direction columns = IJK
axes) and back, so the x2 grid maths of ``imaging.geometry`` applies unchanged. The array is
computed before any node is created or modified: a cancelled or failed run leaves the scene
exactly as it was. The engine (and so torch) is imported on the first super-resolution,
so the geometry helpers here also serve callers that have no torch yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVolume

from ..errors import Progress, SuperResolutionCancelled, UserInputError
from ..imaging.geometry import Geometry, upsampled_geometry
from .messages import worded_for_slicer
from .voxel_transfer import adopt_voxels

if TYPE_CHECKING:
    from ..engine.volume import SuperResolutionResult

def output_name_suffix(scale: int = 2) -> str:
    """What an output's name adds to its input's: `` x2 RRLSRN`` (`` x4 RRLSRN`` at x4)."""
    return f" x{scale} RRLSRN"


OUTPUT_NAME_SUFFIX = output_name_suffix(2)

# Provenance stored on the output node (saved with the scene, read by the Slicer module).
ATTRIBUTE_DEVICE = "RRLSRN.Device"
ATTRIBUTE_PRECISION = "RRLSRN.Precision"
ATTRIBUTE_SECONDS = "RRLSRN.Seconds"
ATTRIBUTE_SLICE_AXIS = "RRLSRN.SliceAxis"
ATTRIBUTE_NOTES = "RRLSRN.Notes"
ATTRIBUTE_INPUT_NODE_ID = "RRLSRN.InputNodeID"

# Checked most specific first: vector, streaming and DTI volumes all derive from
# vtkMRMLTensorVolumeNode, which derives from vtkMRMLScalarVolumeNode.
_REFUSED_VOLUME_CLASSES = (
    ("vtkMRMLLabelMapVolumeNode", "a label map (segmentation labels, not intensities)"),
    ("vtkMRMLDiffusionWeightedVolumeNode", "a diffusion-weighted volume"),
    ("vtkMRMLDiffusionTensorVolumeNode", "a diffusion tensor volume"),
    ("vtkMRMLTensorVolumeNode", "a vector or tensor volume"),
)

def check_scalar_volume(node: Any, role: str = "input") -> None:
    """Refuse anything but a single-component ``vtkMRMLScalarVolumeNode`` with voxels.

    Label maps, vector and diffusion volumes are scalar-volume subclasses in MRML, so an
    ``IsA("vtkMRMLScalarVolumeNode")`` test alone would let them through.
    """
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        kind = "nothing" if node is None else node.GetClassName()
        raise UserInputError(f"the {role} must be a scalar volume (vtkMRMLScalarVolumeNode), not {kind}")
    for class_name, description in _REFUSED_VOLUME_CLASSES:
        if node.IsA(class_name):
            raise UserInputError(
                f"'{node.GetName()}' is {description}; RRLSRN super-resolves scalar intensity images only "
                "(convert it to a scalar volume first)")
    if role == "input":
        image = node.GetImageData()
        if image is None or 0 in image.GetDimensions():
            raise UserInputError(f"'{node.GetName()}' has no voxels; load or select an image volume")
        if image.GetNumberOfScalarComponents() != 1:
            raise UserInputError(
                f"'{node.GetName()}' has {image.GetNumberOfScalarComponents()} components per voxel; "
                "RRLSRN needs a single-component (greyscale) volume")


def geometry_from_node(node: Any) -> Geometry:
    """The node's voxel grid in RAS: size (I, J, K), spacing (mm), origin, direction columns."""
    directions = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(directions)
    direction = tuple(directions.GetElement(row, column) for row in range(3) for column in range(3))
    return Geometry(
        size=tuple(int(n) for n in node.GetImageData().GetDimensions()),
        spacing=tuple(float(s) for s in node.GetSpacing()),
        origin=tuple(float(o) for o in node.GetOrigin()),
        direction=direction,
    )


def apply_geometry(node: Any, geometry: Geometry) -> None:
    """Set origin, spacing and directions on the node (IJKToRAS); the image data stays unit-grid."""
    directions = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            directions.SetElement(row, column, geometry.direction_matrix[row, column])
    node.SetIJKToRASDirectionMatrix(directions)
    node.SetSpacing(*geometry.spacing)
    node.SetOrigin(*geometry.origin)


def _read_only_voxels(node: Any) -> np.ndarray:
    """A read-only view of the node's voxels (KJI): the input can never be written by mistake."""
    voxels = arrayFromVolume(node).view()
    voxels.flags.writeable = False
    return voxels


def _check_output(output_node: Any, input_node: Any) -> None:
    check_scalar_volume(output_node, role="output")
    if output_node is input_node:
        raise UserInputError("the output must differ from the input (the input's voxels are never overwritten)")
    if output_node.GetScene() is not input_node.GetScene():
        raise UserInputError(f"output '{output_node.GetName()}' is not in the input's scene")


def _new_output_node(input_node: Any, scale: int) -> Any:
    scene = input_node.GetScene()
    name = scene.GenerateUniqueName(input_node.GetName() + output_name_suffix(scale))
    return scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)


def output_node_for_run(input_node: Any, selected_output: Any) -> Any:
    """The node a run on ``input_node`` may write into: ``selected_output``, unless it holds the
    result of another input (then ``None``: a new node).

    A front end leaves the last result selected as the output; without this rule the next run
    on another input would silently overwrite that result and keep the other input's name.
    A node the user picked that is no result of ours, or this input's previous result, is reused.
    """
    if selected_output is None:
        return None
    source_id = selected_output.GetAttribute(ATTRIBUTE_INPUT_NODE_ID)
    return None if source_id and source_id != input_node.GetID() else selected_output


def _name_after_input(output_node: Any, input_node: Any, scale: int) -> None:
    """A reused output is renamed after its input, so its name never names another stack (or scale)."""
    name = input_node.GetName() + output_name_suffix(scale)
    current = output_node.GetName() or ""
    if current != name and not current.startswith(name + "_"):
        output_node.SetName(input_node.GetScene().GenerateUniqueName(name))


def copy_display(source_node: Any, target_node: Any) -> None:
    """Give ``target_node`` a display node with the source's look: window/level (fixed), colour, interpolation.

    The display node is created even when the source has none (a volume made by a script),
    otherwise the slice views would show nothing. Auto window/level is switched off on the
    output so that the network's small overshoot does not shift the grey scale away from
    the input's.
    """
    target_node.CreateDefaultDisplayNodes()
    source = source_node.GetDisplayNode()
    if source is None:
        return
    target = target_node.GetDisplayNode()
    disabled = target.StartModify()
    target.SetAutoWindowLevel(False)
    target.SetWindowLevel(source.GetWindow(), source.GetLevel())
    target.SetAndObserveColorNodeID(source.GetColorNodeID())
    target.SetInterpolate(source.GetInterpolate())
    target.EndModify(disabled)


def place_beside(input_node: Any, output_node: Any) -> None:
    """Put the output under the input's parent item (its study) in the subject hierarchy.

    Skipped when the scene has no subject hierarchy or the input has no item in it (a bare
    slicer-core scene creates items only on request; Slicer creates them for every node).
    """
    hierarchy_class = getattr(slicer, "vtkMRMLSubjectHierarchyNode", None)
    hierarchy = hierarchy_class.GetSubjectHierarchyNode(input_node.GetScene()) if hierarchy_class else None
    if hierarchy is None:
        return
    input_item = hierarchy.GetItemByDataNode(input_node)
    if not input_item:
        return
    parent = hierarchy.GetItemParent(input_item)
    output_item = hierarchy.GetItemByDataNode(output_node)
    if output_item:
        hierarchy.SetItemParent(output_item, parent)
    else:
        hierarchy.CreateItem(parent, output_node)


def node_in_scene(node: Any, scene: Any) -> bool:
    """``node`` is still in ``scene`` (not removed, the scene not closed)."""
    return node.GetScene() is scene and scene.GetNodeByID(node.GetID()) is node


def _cancel_when_nodes_leave(progress: Progress | None, scene: Any, *nodes: Any) -> Progress:
    """``progress``, cancelling once any of ``nodes`` was removed or the scene was closed.

    Slicer's GUI keeps responding during a run (the progress callback processes events), so
    the user can close the scene or delete the input meanwhile; the run then stops at the
    next batch with nothing added, instead of writing into a node that is gone.
    """
    def guarded(fraction: float, message: str) -> bool | None:
        answer = progress(fraction, message) if progress is not None else None
        if not all(node_in_scene(node, scene) for node in nodes):
            raise SuperResolutionCancelled(
                "super-resolution stopped: the input or output volume was removed, or the scene closed; "
                "nothing was added")
        return answer

    return guarded


def _record_provenance(output_node: Any, input_node: Any, result: SuperResolutionResult) -> None:
    output_node.SetAttribute(ATTRIBUTE_DEVICE, result.device)
    output_node.SetAttribute(ATTRIBUTE_PRECISION, result.precision)
    output_node.SetAttribute(ATTRIBUTE_SECONDS, f"{result.seconds:.3f}")
    output_node.SetAttribute(ATTRIBUTE_SLICE_AXIS, "ijk"[result.slice_axis])
    output_node.SetAttribute(ATTRIBUTE_NOTES, "\n".join(result.notes))
    output_node.SetAttribute(ATTRIBUTE_INPUT_NODE_ID, input_node.GetID() or "")


def _write_output(output_node: Any, input_node: Any, result: SuperResolutionResult, geometry: Geometry) -> None:
    """All node changes in one modify block, so observers see one consistent update.

    The result's voxels become the node's without a copy (``voxel_transfer.adopt_voxels``).
    """
    disabled = output_node.StartModify()
    apply_geometry(output_node, geometry)
    adopt_voxels(output_node, result.voxels)
    output_node.SetAndObserveTransformNodeID(input_node.GetTransformNodeID())
    _record_provenance(output_node, input_node, result)
    output_node.EndModify(disabled)
    copy_display(input_node, output_node)
    place_beside(input_node, output_node)


@worded_for_slicer()
def superresolve_volume_node(
    input_volume_node: Any,
    output_volume_node: Any = None,
    *,
    device: str = "auto",
    progress: Progress | None = None,
    **options: Any,
) -> Any:
    """Super-resolve a scalar volume node x2 (``scale=4``: x4) in-plane into a new or given volume node.

    Parameters
    ----------
    input_volume_node : vtkMRMLScalarVolumeNode in a scene; its voxels are only read.
    output_volume_node : a previous output (or any scalar volume in the same scene) to
        overwrite, renamed after the input; ``None`` adds a new node named
        ``"<input name> x2 RRLSRN"`` (``x4`` at x4). Front ends pass ``output_node_for_run``'s choice.
    device : ``auto``, ``cpu`` or ``cuda`` (``mps`` on Apple), see ``devices.select_device``.
    progress : ``progress(fraction, message)``, called at least once per batch; returning
        ``False`` raises ``SuperResolutionCancelled`` before any node is added or changed.
        So does removing the input or the given output node, or closing the scene, meanwhile.
    **options : ``mask_kji`` (on the input grid, KJI order) and ``output_dtype`` as for
        ``engine.superresolve``; every other keyword is a field of ``engine.options.EngineOptions``
        (``model``, ``precision``, ``plane``, ``acquisition`` (default ``auto``: an interpolated
        stack is super-resolved on its acquisition grid), ``batch_size``, ``consistency``,
        ``views``, ``adapt_seconds``, ``detail``, ``scale``), run by ``engine.acquisition.superresolve_acquired``.

    Returns
    -------
    The output vtkMRMLScalarVolumeNode: IJKToRAS per the x2 (x4) geometry contract in RAS,
    observing the input's parent transform, with the input's window/level and colour, placed
    beside the input in the subject hierarchy; device, time and notes as node attributes.
    """
    from ..engine.acquisition import superresolve_acquired
    from ..engine.options import EngineOptions

    call = {key: options.pop(key) for key in ("mask_kji", "output_dtype") if key in options}
    engine = EngineOptions(device=device, **options)  # checked before the scene is touched

    check_run_nodes(input_volume_node, output_volume_node)
    geometry = geometry_from_node(input_volume_node)
    guarded = watch_run_nodes(progress, input_volume_node, output_volume_node)
    result = superresolve_acquired(_read_only_voxels(input_volume_node), geometry.spacing, engine, progress=guarded,
                                   **call)
    return store_result(input_volume_node, output_volume_node, result, geometry, engine.scale)


def check_run_nodes(input_volume_node: Any, output_volume_node: Any) -> None:
    """Refuse a run before any work: the input a scalar volume in a scene, the output (if given) valid."""
    check_scalar_volume(input_volume_node)
    if input_volume_node.GetScene() is None:
        raise UserInputError(f"'{input_volume_node.GetName()}' is not in a scene")
    if output_volume_node is not None:
        _check_output(output_volume_node, input_volume_node)


def watch_run_nodes(progress: Progress | None, input_volume_node: Any, output_volume_node: Any) -> Progress:
    """``progress``, cancelling once the input or the given output node left the scene."""
    watched = [node for node in (input_volume_node, output_volume_node) if node is not None]
    return _cancel_when_nodes_leave(progress, input_volume_node.GetScene(), *watched)


def store_result(input_volume_node: Any, output_volume_node: Any, result: SuperResolutionResult,
                 input_geometry: Geometry, scale: int = 2) -> Any:
    """Write a finished run into ``output_volume_node`` (renamed after the input) or a new node.

    ``result`` needs ``voxels`` (KJI), ``slice_axis``, ``device``, ``precision``, ``seconds`` and
    ``notes``; the output grid is the x``scale`` grid of ``input_geometry`` (the input's, taken before
    the run).
    """
    output_geometry = upsampled_geometry(input_geometry, result.slice_axis, scale)
    if output_volume_node is None:
        output = _new_output_node(input_volume_node, scale)
    else:
        output = output_volume_node
        _name_after_input(output, input_volume_node, scale)
    _write_output(output, input_volume_node, result, output_geometry)
    return output
