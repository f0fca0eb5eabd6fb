"""Minimal stand-ins for the parts of Slicer that slicer-core lacks, so the module file can run.

slicer-core gives the real MRML scene, the module logics and ``slicer.util``; it has no Qt, no
application and no ``ScriptedLoadableModule``. These stand-ins provide only what the module
file touches outside its Qt widget, and only where that is not what a test checks: ``qt.QIcon``,
``slicer.i18n``, ``slicer.parameterNodeWrapper``, the ``ScriptedLoadableModule`` base classes
and a ``slicer.app`` whose I/O manager loads volumes with Slicer's own Volumes logic. Every
MRML call still goes to the real slicer-core classes, in a real ``vtkMRMLScene`` that has the
module logics Slicer registers at start-up (colours, volumes, segmentations).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULE_FILE = ROOT / "RRLSRNSuperRes" / "RRLSRNSuperRes.py"


def application_scene() -> tuple[Any, Any]:
    """A scene with the colour, volumes and segmentations logics, as Slicer sets it up; and the volumes logic."""
    import slicer

    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLApplicationLogic(application_logic)
    colors.SetMRMLScene(scene)
    application_logic.SetModuleLogic("Colors", colors)
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLApplicationLogic(application_logic)
    volumes.SetMRMLScene(scene)
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    sequences = slicer.vtkSlicerSequencesLogic()  # registers the sequence and sequence browser nodes
    sequences.SetMRMLScene(scene)
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    scene.rrlsrn_logics = (application_logic, colors, volumes, segmentations, sequences)  # alive with the scene
    return scene, volumes


class _CoreIOManager:
    """``slicer.app.coreIOManager()`` for volumes: Slicer's Volumes logic reads the file."""

    def __init__(self, volumes_logic: Any):
        self.volumes_logic = volumes_logic

    def fileType(self, filename: str) -> str:  # noqa: N802 (Slicer's API)
        return "VolumeFile"

    def loadNodes(self, file_type: str, properties: dict, loaded: Any, messages: Any) -> bool:  # noqa: N802
        path = Path(properties["fileName"])
        name = properties.get("name", path.name.split(".")[0])
        node = self.volumes_logic.AddArchetypeVolume(str(path), name, 1 if properties.get("labelmap") else 0)
        if node is None:
            return False
        loaded.AddItem(node)
        return True


class Application:
    """``slicer.app``: no event loop, testing mode on; a test queues the user's actions.

    ``events[n]`` lists what the user did (clicks, node deletions: callables) while the
    module was busy, delivered by the ``n``-th ``processEvents()`` call (0 = the first),
    as Qt delivers queued input events when the module processes events.
    """

    def __init__(self, volumes_logic: Any):
        self._io = _CoreIOManager(volumes_logic)
        self.events: dict[int, list[Any]] = {}
        self.processed = 0

    def coreIOManager(self) -> _CoreIOManager:  # noqa: N802
        return self._io

    def processEvents(self) -> None:  # noqa: N802
        """Deliver the user's actions queued for this call."""
        delivered, self.processed = self.events.pop(self.processed, []), self.processed + 1
        for event in delivered:
            event()

    def connect(self, signal: str, slot: Any) -> None:
        """Signals never fire without Qt."""

    def testingEnabled(self) -> bool:  # noqa: N802
        return True


class _ScriptedLoadableModule:
    def __init__(self, parent: Any):
        self.parent = parent
        self.moduleName = self.__class__.__name__


class _ScriptedLoadableModuleWidget:
    def __init__(self, parent: Any = None):
        self.parent = parent
        self.moduleName = self.__class__.__name__[: -len("Widget")]

    def onReload(self) -> None:  # noqa: N802
        """Slicer's own part (re-executing the module file) needs the application."""


class _ScriptedLoadableModuleLogic:
    def __init__(self, parent: Any = None):
        self.parent = parent


class _ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message: str, msec: int = 1000) -> None:  # noqa: N802
        logging.info(message)


class Widget:
    """A widget of the module's .ui: the properties the module sets; its signals never fire."""

    def __init__(self) -> None:
        self.text, self.toolTip, self.format = "", "", ""
        self.enabled, self.visible, self.value = True, True, 0

    def connect(self, signal: str, slot: Any) -> None:
        """No Qt signals here: a test calls the slot itself."""

    def hide(self) -> None:
        self.visible = False

    def currentNode(self) -> None:  # noqa: N802
        return None

    def checkedNodes(self) -> list:  # noqa: N802 (qMRMLCheckableNodeComboBox's API)
        """The nodes a test checked (``widget.checked``), in the list's order."""
        return list(getattr(self, "checked", []))


class Ui(types.SimpleNamespace):
    """``self.ui``: every widget name the module asks for exists (the static test checks the .ui has it)."""

    def __getattr__(self, name: str) -> Widget:
        if name.startswith("__"):
            raise AttributeError(name)
        widget = Widget()
        setattr(self, name, widget)
        return widget


class _WithinRange:
    def __init__(self, minimum: float, maximum: float):
        self.minimum, self.maximum = minimum, maximum


def stand_in_modules() -> dict[str, types.ModuleType]:
    """The modules to put into ``sys.modules`` before the module file is imported."""
    qt = types.ModuleType("qt")
    qt.QIcon = lambda path="": ("QIcon", path)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.WithinRange = _WithinRange
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    scripted.ScriptedLoadableModule = _ScriptedLoadableModule
    scripted.ScriptedLoadableModuleWidget = _ScriptedLoadableModuleWidget
    scripted.ScriptedLoadableModuleLogic = _ScriptedLoadableModuleLogic
    scripted.ScriptedLoadableModuleTest = _ScriptedLoadableModuleTest
    return {"qt": qt, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": wrapper,
            "slicer.ScriptedLoadableModule": scripted}


def install(scene: Any, volumes_logic: Any) -> None:
    """Stand-ins into ``sys.modules``, and ``slicer.app`` / ``slicer.mrmlScene`` set (for a subprocess)."""
    import slicer

    sys.modules.update(stand_in_modules())
    slicer.app = Application(volumes_logic)
    slicer.mrmlScene = scene


def import_module_file() -> types.ModuleType:
    """Execute ``RRLSRNSuperRes.py`` as Slicer does: a top-level module named after the file."""
    spec = importlib.util.spec_from_file_location("RRLSRNSuperRes", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
