"""Run the project's own command in a separate process, as Slicer's AI extensions run their inference.

A native crash or an out-of-memory in torch would take Slicer and the user's unsaved scene
down with it; in a child process it only ends that process, and its memory returns to the
system when it ends. The child is ``python -m RRLSRNSuperResLib.cli.main <command> ...
--progress-lines`` (in Slicer the interpreter is ``PythonSlicer``) on temporary NRRD files:
it prints ``PROGRESS <fraction> <message>`` lines, which move the caller's progress callback,
and a final ``RESULT <json>`` line (or ``ERROR <json>``, a user error with its Slicer
wording). :func:`run_in_background` is that generic part; super-resolution (``superres``, here,
with a brain mask as one more file, ``--mask``, on the input's own IJKToRAS) and the 3D
reconstruction (``reconstruct``, ``mrml.reconstruction``) build on it. Cancel (the callback
returning False, or a watched node removed) kills the child; the temporary folder is always
removed (:func:`scratch_folder`), and no node is added or changed unless the run completed.

Geometry of super-resolution: the child only computes voxels. The output grid is computed here,
from the input node's own IJKToRAS, exactly as the in-process path does (the NRRD round trip of
spacing and directions is not bit-exact), and the slice axis is resolved here and passed as ``--plane``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVolume, updateVolumeFromArray

from ..errors import Progress, SuperResolutionCancelled, UserInputError
from ..imaging.geometry import slice_axis
from .messages import worded_for_slicer
from .volumes import check_run_nodes, geometry_from_node, store_result, watch_run_nodes

if TYPE_CHECKING:
    from ..engine.options import EngineOptions

LIB_PARENT = Path(__file__).resolve().parent.parent.parent  # the folder holding RRLSRNSuperResLib
POLL_SECONDS = 0.1  # the callback runs at least this often, so Slicer's GUI stays responsive
KILL_WAIT_SECONDS = 5.0


@dataclass
class ProcessResult:
    """What ``mrml.volumes.store_result`` needs, read back from the child."""

    voxels: np.ndarray
    slice_axis: int
    device: str
    precision: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def engine_arguments(options: EngineOptions) -> list[str]:
    """The ``rrlsrn`` engine options (shared by ``superres`` and ``reconstruct``) that ``options`` sets."""
    if options.model is not None and not isinstance(options.model, (str, Path)):
        raise UserInputError("a background run takes a model file, not a loaded model; run it in-process instead")
    arguments = ["--device", options.device, "--precision", options.precision, "--acquisition", options.acquisition,
                 "--consistency", options.consistency, "--views", str(options.views),
                 "--adapt", repr(float(options.adapt_seconds)), "--detail", str(options.detail)]
    if options.batch_size:
        arguments += ["--batch-size", str(int(options.batch_size))]
    if options.model is not None:
        arguments += ["--model", str(options.model)]
    return arguments


def command_arguments(options: EngineOptions, axis: int, *, keep_input_type: bool = False,
                      mask: bool = False) -> list[str]:
    """``rrlsrn superres`` options for ``options``, the slice axis resolved (IJK index); ``mask``: the
    brain mask is the temporary ``mask.nrrd`` beside the input."""
    arguments = ["--plane", "ijk"[axis], *engine_arguments(options), "--scale", str(options.scale),
                 "--output-type", "input" if keep_input_type else "float32", "--progress-lines"]
    if mask:
        arguments += ["--mask", "mask.nrrd"]
    return arguments


def write_nrrd(node: Any, path: Path) -> None:
    """A volume node (its voxels and IJKToRAS, not its parent transform) as an uncompressed NRRD file."""
    storage = slicer.vtkMRMLNRRDStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(0)  # a temporary file: speed over size
    if not storage.WriteData(node):
        raise RuntimeError(f"could not write '{node.GetName()}' to {path}")


def write_mask_nrrd(mask_kji: np.ndarray, input_volume_node: Any, path: Path) -> None:
    """The brain mask (KJI, on the input's grid) as a uint8 0/1 label map with the input's own IJKToRAS,
    so the child finds it on the input file's grid exactly."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    input_volume_node.GetIJKToRASMatrix(ijk_to_ras)
    mask_node = slicer.vtkMRMLLabelMapVolumeNode()
    mask_node.SetIJKToRASMatrix(ijk_to_ras)
    updateVolumeFromArray(mask_node, np.ascontiguousarray(mask_kji, dtype=np.uint8))
    write_nrrd(mask_node, path)


def read_nrrd_node(path: Path, node: Any = None) -> Any:
    """A NRRD file read into ``node`` (default: a new scalar volume node, in no scene); its IJKToRAS comes
    from the file's header (LPS or RAS space, as Slicer's reader converts it)."""
    node = node if node is not None else slicer.vtkMRMLScalarVolumeNode()
    storage = slicer.vtkMRMLNRRDStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise RuntimeError(f"could not read the result {path}")
    return node


def read_nrrd_voxels(path: Path) -> np.ndarray:
    """The result's voxels (KJI) without a copy: the array views the VTK scalars read from the file,
    and numpy's buffer reference keeps them alive after the scratch node is gone."""
    return arrayFromVolume(read_nrrd_node(path))


def _start(python: str, arguments: Sequence[str], folder: Path) -> tuple[subprocess.Popen, queue.Queue]:
    """The child ``rrlsrn <arguments>`` (the subcommand first), and a queue its stdout lines arrive on (a
    thread reads them; None marks the end)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LIB_PARENT), environment.get("PYTHONPATH")]))
    with open(folder / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen([python, "-m", "RRLSRNSuperResLib.cli.main", *arguments],
                                   stdout=subprocess.PIPE, stderr=stderr, cwd=folder, env=environment, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _follow(process: subprocess.Popen, lines: queue.Queue, progress: Progress) -> dict:
    """Feed PROGRESS lines to ``progress`` until the child ends; its RESULT (or ERROR). Raises on cancel."""
    fraction, message, result = 0.0, "starting PyTorch in a separate process", {}
    while True:
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line.startswith("PROGRESS "):
            _, value, *text = line.split(" ", 2)
            fraction, message = float(value), (text[0] if text else "")
        elif line.startswith(("RESULT ", "ERROR ")):
            result = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])}
        if progress(fraction, message) is False:
            raise SuperResolutionCancelled("cancelled; nothing was written")
    process.wait()
    return result


def _failure(process: subprocess.Popen, folder: Path, reported: dict) -> Exception:
    """The error a failed child is reported as: the command's own user error, with its Slicer wording."""
    if "ERROR" in reported:
        return UserInputError(reported["ERROR"]["message"], in_slicer=reported["ERROR"]["in_slicer"])
    text = (folder / "stderr.txt").read_text(errors="replace").strip()
    if process.returncode < 0:
        return RuntimeError(f"the background process was ended by signal {-process.returncode} "
                            "(out of memory?); Slicer and the scene are unaffected")
    return RuntimeError(f"the background process failed (exit code {process.returncode}): {text[-2000:]}")


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary ``rrlsrn-*`` folder for a child's files, removed after the block however it ends."""
    folder = Path(tempfile.mkdtemp(prefix="rrlsrn-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_in_background(python: str, arguments: Sequence[str], folder: Path, progress: Progress) -> dict:
    """Run ``rrlsrn <arguments> --progress-lines`` (the subcommand first, ``--progress-lines`` included)
    in ``folder``, feeding ``progress``; its RESULT summary. Raises the child's user error (Slicer-worded),
    ``SuperResolutionCancelled`` when ``progress`` cancels (the child is killed), or ``RuntimeError``."""
    process = None
    try:
        process, lines = _start(python, arguments, folder)
        reported = _follow(process, lines, progress)
        if process.returncode != 0 or "RESULT" not in reported:
            raise _failure(process, folder, reported)
        return reported["RESULT"]
    finally:
        if process is not None:
            _stop(process)


@worded_for_slicer()
def superresolve_volume_node_in_background(input_volume_node: Any, output_volume_node: Any = None, *,
                                           python: str, options: Optional[EngineOptions] = None,
                                           keep_input_type: bool = False, mask_kji: Optional[np.ndarray] = None,
                                           progress: Optional[Progress] = None) -> Any:
    """Like ``volumes.superresolve_volume_node``, but the network runs in a child process.

    ``python`` is the interpreter to run the command with (``PythonSlicer`` in Slicer,
    ``sys.executable`` elsewhere). ``options``: an ``engine.options.EngineOptions`` (None: the
    defaults); ``keep_input_type``: the output in the input's voxel type, clipped; ``mask_kji``: the
    brain mask on the input grid (KJI), passed to the child as a temporary NRRD (``--mask``). Same
    output node rules, geometry, display and provenance.
    """
    from ..engine.options import DEFAULT_OPTIONS

    options = options or DEFAULT_OPTIONS
    check_run_nodes(input_volume_node, output_volume_node)
    geometry = geometry_from_node(input_volume_node)
    axis = slice_axis(geometry.spacing, options.plane, size=geometry.size)
    guarded = watch_run_nodes(progress, input_volume_node, output_volume_node)
    with scratch_folder() as folder:
        write_nrrd(input_volume_node, folder / "input.nrrd")
        if mask_kji is not None:
            write_mask_nrrd(mask_kji, input_volume_node, folder / "mask.nrrd")
        arguments = command_arguments(options, axis, keep_input_type=keep_input_type, mask=mask_kji is not None)
        summary = run_in_background(python, ["superres", "input.nrrd", "output.nrrd", *arguments], folder, guarded)
        result = ProcessResult(read_nrrd_voxels(folder / "output.nrrd"), int(summary["slice_axis"]),
                               summary["device"], summary["precision"], float(summary["seconds"]), summary["notes"])
    return store_result(input_volume_node, output_volume_node, result, geometry, options.scale)
