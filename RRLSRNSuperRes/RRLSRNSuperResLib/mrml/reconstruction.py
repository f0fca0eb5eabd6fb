"""Several stack nodes to one 3D reconstruction: a new volume node and a new brain segmentation.

The job is ``rrlsrn reconstruct`` itself (``pipeline.reconstruction``), on the stacks (and their
brain masks) exported to temporary NRRD files that keep each node's IJKToRAS: in a child process
(``mrml.background``, what the Slicer panel runs; Cancel kills it), or in this process
(``python=None``, for scripts and the self-test). Both paths share the export, the job's files
and the loading, so they give the same result. The result is loaded from the file the command
wrote (its header is LPS; Slicer's NRRD reader turns it into the node's RAS IJKToRAS), always
as NEW nodes: "<first stack> 3D reconstruction" and its "... brain mask" segmentation. Nothing
is added unless the run completed; the temporary folder is removed on success, failure and
cancel.

Masks pair with stacks by position: the first checked mask belongs to the first checked stack,
and so on. A segmentation is exported onto its stack's grid (any grid, parent transforms
followed); a label map must already lie on its stack's grid, which also catches masks given in
another order than the stacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import vtk
from slicer.util import arrayFromVolume

from ..errors import Progress, UserInputError
from .background import engine_arguments, read_nrrd_node, run_in_background, scratch_folder, write_mask_nrrd, write_nrrd
from .messages import worded_for_slicer
from .run_controller import cancel_when_referenced_nodes_leave
from .segmentations import add_brain_segmentation, brain_mask_on_volume
from .volumes import check_scalar_volume, place_beside

if TYPE_CHECKING:
    from ..engine.options import EngineOptions

RESULT_NAME_SUFFIX = " 3D reconstruction"
ATTRIBUTE_STACK_NODE_IDS = "RRLSRN.Reconstruction.StackNodeIDs"  # space-separated, in the stacks' order
ATTRIBUTE_SUMMARY = "RRLSRN.Reconstruction.Summary"  # the command's RESULT (JSON): time, device, template, ...
GRID_TOLERANCE = 1e-4  # mm, of the IJKToRAS entries, for a label map on its stack's grid


@dataclass(frozen=True)
class ReconstructionRequest:
    """What to reconstruct: ``stacks`` (2+ scalar volume nodes of one subject), ``masks`` (none, for the
    automatic fetal brain mask, or one per stack in the same order: label maps or segmentations),
    ``resolution_mm`` (isotropic output voxel), ``superres`` (RRLSRN x2 in-plane on each stack first) and
    the engine's options (None: the defaults; device and precision also serve the reconstruction)."""

    stacks: Sequence[Any]
    masks: Sequence[Any] = ()
    resolution_mm: float = 0.8
    superres: bool = True
    engine: Optional[EngineOptions] = None


@dataclass(frozen=True)
class ReconstructionNodes:
    """The new nodes of a finished run, and the command's summary of it."""

    volume: Any
    segmentation: Any
    summary: dict


def _ordinal(index: int) -> str:
    return {0: "1st", 1: "2nd", 2: "3rd"}.get(index, f"{index + 1}th")


def _grid_of(node: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]), \
        tuple(node.GetImageData().GetDimensions()) if node.GetImageData() else ()


def _check_mask(mask: Any, stack: Any, index: int) -> None:
    """A mask is a segmentation (any grid) or a label map on its stack's grid, under the same transform."""
    where = f"the {_ordinal(index)} brain mask '{mask.GetName()}' (paired with the {_ordinal(index)} stack " \
            f"'{stack.GetName()}')"
    if mask.IsA("vtkMRMLSegmentationNode"):
        return
    if not mask.IsA("vtkMRMLLabelMapVolumeNode"):
        raise UserInputError(f"{where} is a {mask.GetClassName()}; select label maps or segmentations as masks")
    (mask_matrix, mask_size), (stack_matrix, stack_size) = _grid_of(mask), _grid_of(stack)
    if mask_size != stack_size or not np.allclose(mask_matrix, stack_matrix, atol=GRID_TOLERANCE) \
            or mask.GetTransformNodeID() != stack.GetTransformNodeID():
        raise UserInputError(
            f"{where} is not on that stack's grid. Masks pair with stacks in the order the two lists show them "
            "(top to bottom); check one mask per stack in the same order, or use segmentations, which fit any grid")


def check_request(request: ReconstructionRequest) -> None:
    """Every refusal before any work: 2+ scalar stacks in one scene under one transform, masks one per stack."""
    stacks, masks = list(request.stacks), list(request.masks)
    if len(stacks) < 2:
        raise UserInputError(f"a 3D reconstruction needs at least 2 stacks (got {len(stacks)}); check stacks of "
                             "one subject acquired in several orientations")
    for stack in stacks:
        check_scalar_volume(stack)
    scene = stacks[0].GetScene()
    if scene is None or any(node.GetScene() is not scene for node in stacks + masks):
        raise UserInputError("the stacks and masks must all be in the same scene")
    if len({stack.GetTransformNodeID() for stack in stacks}) > 1:
        raise UserInputError("the stacks are under different transforms; harden them (Data module: right-click > "
                             "Harden transform) or put every stack under the same transform")
    if masks and len(masks) != len(stacks):
        raise UserInputError(f"{len(masks)} brain masks are checked for {len(stacks)} stacks; check one mask per "
                             "stack, in the stacks' order, or none for automatic masks")
    for index, (mask, stack) in enumerate(zip(masks, stacks)):
        _check_mask(mask, stack, index)
    if not request.resolution_mm > 0:
        raise UserInputError(f"the output resolution must be positive, not {request.resolution_mm} mm")


def request_problem(request: ReconstructionRequest) -> str:
    """Why a reconstruction cannot start (shown on the disabled Reconstruct button), or "" when it can."""
    try:
        check_request(request)
    except UserInputError as refused:
        return refused.in_slicer[:1].upper() + refused.in_slicer[1:] + "."
    return ""


def _file_stem(index: int, node: Any) -> str:
    """A file name stem that keeps the node's name readable in progress messages (no dots: they end a stem)."""
    return f"{index + 1}_" + (re.sub(r"[^A-Za-z0-9_-]+", "_", node.GetName() or "stack").strip("_") or "stack")


def export_inputs(request: ReconstructionRequest, folder: Path) -> tuple[list[str], list[str]]:
    """The stacks (voxels and IJKToRAS) and their masks (0/1 on each stack's grid) as NRRD files in ``folder``."""
    stack_files, mask_files = [], []
    for index, stack in enumerate(request.stacks):
        stack_files.append(f"{_file_stem(index, stack)}.nrrd")
        write_nrrd(stack, folder / stack_files[-1])
    for index, (mask, stack) in enumerate(zip(request.masks, request.stacks)):
        voxels = brain_mask_on_volume(mask, stack) if mask.IsA("vtkMRMLSegmentationNode") else \
            arrayFromVolume(mask) > 0
        mask_files.append(f"{_file_stem(index, stack)}_brain.nrrd")
        write_mask_nrrd(voxels, stack, folder / mask_files[-1])
    return stack_files, mask_files


def command_arguments(request: ReconstructionRequest, engine: EngineOptions, stack_files: Sequence[str],
                      mask_files: Sequence[str]) -> list[str]:
    """``rrlsrn reconstruct`` for the exported files (relative to the folder the child runs in)."""
    arguments = ["reconstruct", *stack_files, "--output", "output.nrrd", "--resolution", repr(float(
        request.resolution_mm))]
    if mask_files:
        arguments += ["--mask", *mask_files]
    if not request.superres:
        arguments.append("--no-superres")
    return arguments + engine_arguments(engine) + ["--progress-lines"]


def _run_in_process(request: ReconstructionRequest, engine: EngineOptions, folder: Path, files: tuple[list[str],
                    list[str]], progress: Progress) -> dict:
    """The command's job on the same files, in this process; the same summary as the child's RESULT line."""
    from ..pipeline.reconstruction import (
        ReconstructionJob,
        overall_progress,
        reconstruct_files,
        reconstruction_options,
        run_summary,
    )

    stack_files, mask_files = files
    job = ReconstructionJob(stacks=tuple(folder / name for name in stack_files), output=folder / "output.nrrd",
                            masks=tuple(folder / name for name in mask_files), superres=request.superres,
                            engine=engine, reconstruction=reconstruction_options(request.resolution_mm, engine))
    files_written = reconstruct_files(job, progress_for=overall_progress(job, progress))
    return run_summary(files_written, job)


def _add_result_nodes(request: ReconstructionRequest, folder: Path, summary: dict) -> ReconstructionNodes:
    """The written volume and mask as new nodes beside the first stack, under the stacks' transform."""
    first = request.stacks[0]
    scene = first.GetScene()
    volume = read_nrrd_node(folder / summary["volume"])
    volume.SetName(scene.GenerateUniqueName(first.GetName() + RESULT_NAME_SUFFIX))
    volume.SetAttribute(ATTRIBUTE_STACK_NODE_IDS, " ".join(stack.GetID() for stack in request.stacks))
    volume.SetAttribute(ATTRIBUTE_SUMMARY, _summary_json(summary))
    volume = scene.AddNode(volume)
    volume.SetAndObserveTransformNodeID(first.GetTransformNodeID())
    volume.CreateDefaultDisplayNodes()
    place_beside(first, volume)
    mask = arrayFromVolume(read_nrrd_node(folder / summary["mask"])) > 0
    segmentation = add_brain_segmentation(volume, mask)
    place_beside(first, segmentation)
    return ReconstructionNodes(volume, segmentation, summary)


def _summary_json(summary: dict) -> str:
    import json

    return json.dumps({key: value for key, value in summary.items() if key not in ("volume", "mask")})


@worded_for_slicer()
def reconstruct_stack_nodes(request: ReconstructionRequest, *, python: Optional[str] = None,
                            progress: Optional[Progress] = None) -> ReconstructionNodes:
    """Reconstruct ``request.stacks`` into a new volume node and brain segmentation (see the module docstring).

    ``python``: the interpreter of the child process (``PythonSlicer`` in Slicer, ``sys.executable``
    elsewhere); None runs the job in this process. ``progress(fraction, message)``: one 0..1 scale over
    the whole job; returning ``False``, or removing a stack or mask from the scene, cancels
    (``SuperResolutionCancelled``): no node is added and no temporary file is left.
    """
    from ..engine.options import DEFAULT_OPTIONS

    check_request(request)
    engine = request.engine or DEFAULT_OPTIONS
    watched = {f"{_ordinal(i)} stack": node for i, node in enumerate(request.stacks)}
    watched.update({f"{_ordinal(i)} brain mask": node for i, node in enumerate(request.masks)})
    guarded = cancel_when_referenced_nodes_leave(progress, watched)
    with scratch_folder() as folder:
        files = export_inputs(request, folder)
        if python is None:
            summary = _run_in_process(request, engine, folder, files, guarded)
        else:
            summary = run_in_background(python, command_arguments(request, engine, *files), folder, guarded)
        return _add_result_nodes(request, folder, summary)
