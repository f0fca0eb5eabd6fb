"""The Slicer panel's decisions, without Qt: what input to refuse, which output node, what Apply says.

The widget in ``RRLSRNSuperRes.py`` is a thin binding over :class:`RunController`: it shows
the :class:`ButtonLook` it is given, forwards clicks and progress callbacks, and reports the
outcome. Which node a run writes into is ``volumes.output_node_for_run``'s decision. Kept
here, the decisions are tested in a bare slicer-core scene.

The run's phases: ``IDLE`` -> ``STARTING`` (Apply has turned into Cancel and the GUI has
repainted; PyTorch is being imported and the model loaded) -> ``RUNNING`` (from the first
progress callback) -> ``CANCELLING`` (Cancel clicked) -> ``IDLE``. A click while STARTING is
the second click of an impatient double click (Qt queued it while the first click's handler
ran) and is ignored; from RUNNING on a click is Cancel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import Progress, SuperResolutionCancelled, UserInputError
from .volumes import check_scalar_volume, node_in_scene


class RunPhase(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    CANCELLING = "cancelling"


class Click(enum.Enum):
    """What a click on the Apply/Cancel button means in the current phase."""

    START = "start"
    IGNORE = "ignore"
    CANCEL = "cancel"


@dataclass(frozen=True)
class ButtonLook:
    text: str
    tooltip: str
    enabled: bool


def sequence_browser_of(node: Any) -> Any:
    """The sequence browser whose proxy (the frame shown) ``node`` is, or None.

    Slicer loads a 4D volume as a sequence and shows one frame through a proxy node, an
    ordinary-looking scalar volume; the browser lists its proxies (as the Sequences logic's
    ``GetFirstBrowserNodeForProxyNode`` does, here without needing ``slicer.modules``).
    """
    scene = node.GetScene() if node is not None else None
    if scene is None or not node.GetID():
        return None
    browsers = [scene.GetNthNodeByClass(n, "vtkMRMLSequenceBrowserNode")
                for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode"))]
    return next((browser for browser in browsers if browser.IsProxyNodeID(node.GetID())), None)


def _sequence_problem(node: Any, role: str) -> str:
    browser = sequence_browser_of(node)
    if browser is None:
        return ""
    return (f"The {role} '{node.GetName()}' is the frame shown by the sequence '{browser.GetName()}' "
            "(a 4D volume): only that frame would be processed, and writing into it would change the "
            "sequence. To super-resolve one frame, clone it (Data module: right-click > Clone) and select "
            "the copy.")


def input_problem(input_node: Any, output_node: Any = None, brain_segmentation: Any = None,
                  restrict_to_brain: bool = False) -> str:
    """Why a run cannot start (shown on the disabled Apply button), or "" when it can.

    Everything the adapter would refuse after the click is refused here first: label maps,
    vector, tensor and multi-component volumes, empty volumes, sequence frames.
    """
    if input_node is None:
        return "Select an input volume."
    try:
        check_scalar_volume(input_node)
    except UserInputError as refused:
        return str(refused)[0].upper() + str(refused)[1:] + "."
    problem = _sequence_problem(input_node, "input") or (_sequence_problem(output_node, "output")
                                                         if output_node is not None else "")
    if problem:
        return problem
    if output_node is input_node:
        return "Choose an output other than the input (or 'Create new volume')."
    if restrict_to_brain and brain_segmentation is None:
        return "Select or create a brain segmentation, or untick 'Restrict to the brain box'."
    return ""


def cancel_when_referenced_nodes_leave(progress: Progress | None, nodes: Mapping[str, Any]) -> Progress:
    """``progress``, cancelling (naming the node) once any referenced node left its scene.

    The adapter already watches the input and output volumes; a run also reads other nodes
    after the network, e.g. the brain segmentation for the x2 label map. The GUI stays live
    during a run, so the user may delete one meanwhile: the run then stops as cancelled,
    before anything is written, instead of failing after the output was written.
    """
    watched = {role: (node, node.GetScene()) for role, node in nodes.items() if node is not None}

    def guarded(fraction: float, message: str) -> bool | None:
        answer = progress(fraction, message) if progress is not None else None
        for role, (node, scene) in watched.items():
            if scene is None or not node_in_scene(node, scene):
                raise SuperResolutionCancelled(
                    f"super-resolution stopped: the {role} '{node.GetName()}' was removed; nothing was added")
        return answer

    return guarded


class RunController:
    """The Apply/Cancel button's state machine and the panel's run decisions (no Qt)."""

    IDLE_TOOLTIP = "Super-resolve the input volume x2 in-plane."

    def __init__(self, idle_text: str = "Super-resolve", idle_tooltip: str = IDLE_TOOLTIP) -> None:
        """``idle_text`` and ``idle_tooltip``: the button's look while idle (one controller per run button)."""
        self.phase = RunPhase.IDLE
        self.cancel_requested = False
        self.idle_text, self.idle_tooltip = idle_text, idle_tooltip

    @property
    def running(self) -> bool:
        return self.phase is not RunPhase.IDLE

    def click(self) -> Click:
        """Interpret a click on the Apply/Cancel button and move to the next phase."""
        if self.phase is RunPhase.IDLE:
            self.phase = RunPhase.STARTING
            self.cancel_requested = False
            return Click.START
        if self.phase is RunPhase.RUNNING:
            self.request_cancel()
            return Click.CANCEL
        return Click.IGNORE  # starting (a double click's second click) or already cancelling

    def request_cancel(self) -> None:
        """Cancel at the next progress callback (Cancel clicked, or the scene is closing)."""
        if self.running:
            self.cancel_requested = True
            self.phase = RunPhase.CANCELLING

    def on_progress(self) -> None:
        """Called first thing in each progress callback: the start-up is over, clicks are Cancel from now on."""
        if self.phase is RunPhase.STARTING:
            self.phase = RunPhase.RUNNING

    @property
    def keep_going(self) -> bool:
        """The progress callback's answer (after the GUI processed events): False cancels the run."""
        return not self.cancel_requested

    def finish(self) -> None:
        self.phase = RunPhase.IDLE

    def button(self, problem: str = "") -> ButtonLook:
        """Text, tooltip and enabled state of the Apply button; ``problem`` from :func:`input_problem`."""
        if self.phase is RunPhase.IDLE:
            return ButtonLook(self.idle_text, problem or self.idle_tooltip, not problem)
        if self.phase is RunPhase.STARTING:
            return ButtonLook("Cancel", "Starting: loading PyTorch and the model...", True)
        if self.phase is RunPhase.RUNNING:
            return ButtonLook("Cancel", "Stop after the current batch; nothing is changed.", True)
        return ButtonLook("Cancelling...", "Stopping after the current batch; nothing is changed.", False)

    def cancelled_status(self, cancelled: SuperResolutionCancelled) -> str:
        """Status line of a cancelled run: the user's Cancel, or why the run stopped by itself."""
        if self.cancel_requested:
            return "Cancelled; no volume was added or changed."
        reason = str(cancelled)
        return reason[:1].upper() + reason[1:] + "."
