"""The module file's logic, sample registration and self-test, executed in a real slicer-core scene.

Only Qt, the application object and the scripted-module base classes are stood in for
(``slicer_stand_ins.py``); every MRML call is slicer-core's. The self-test runs through
unittest's runner, as ``slicer_add_python_unittest`` runs it under CTest.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import unittest
from pathlib import Path

import numpy as np
import pytest
import slicer
import slicer.util
import slicer_stand_ins
import vtk
from RRLSRNSuperResLib.engine.options import EngineOptions

CPU = EngineOptions(device="cpu")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def slicer_module(monkeypatch):
    """The module file imported against slicer-core, with ``slicer.mrmlScene`` an application-like scene."""
    scene, volumes = slicer_stand_ins.application_scene()
    for name, module in slicer_stand_ins.stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "app", slicer_stand_ins.Application(volumes), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    yield slicer_stand_ins.import_module_file()
    scene.Clear(True)


def run_self_test(module: types.ModuleType) -> unittest.TestResult:
    suite = unittest.TestLoader().loadTestsFromTestCase(module.RRLSRNSuperResTest)
    return unittest.TextTestRunner(stream=open("/dev/null", "w"), verbosity=0).run(suite)


def load_sample(module: types.ModuleType):
    return slicer.util.loadVolume(module.resourcePath("SampleData", module.SAMPLE_FILE))


def add_slab(volume, first: int, count: int, rows: slice = slice(None), name: str = "slab"):
    """Slices ``first:first + count`` (and ``rows`` and the same columns) of a volume, in place in RAS."""
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(matrix)
    start = rows.start or 0
    ijk_to_ras[:, 3] = ijk_to_ras @ [start, start, first, 1.0]
    voxels = slicer.util.arrayFromVolume(volume)[first: first + count, rows, rows].copy()
    return slicer.util.addVolumeFromArray(voxels, ijk_to_ras, name)


def test_self_test_passes_under_unittests_runner_as_ctest_runs_it(slicer_module):
    result = run_self_test(slicer_module)
    assert (result.testsRun, result.errors, result.failures, result.skipped) == (2, [], [], [])


def test_self_test_is_skipped_with_a_reason_where_torch_is_missing(slicer_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # importlib.util.find_spec then answers None
    result = run_self_test(slicer_module)
    assert result.testsRun == 2 and not result.errors and not result.failures
    assert len(result.skipped) == 2 and "PyTorch" in result.skipped[0][1]
    slicer_module.RRLSRNSuperResTest().runTest()  # Reload and Test: reports the skip, raises nothing


def test_logic_super_resolves_the_loaded_sample_onto_the_x2_grid(slicer_module):
    sample = load_sample(slicer_module)
    node = add_slab(sample, 10, 2, slice(120, 184))
    crop = slicer.util.arrayFromVolume(node)
    logic = slicer_module.RRLSRNSuperResLogic()

    output = logic.process(node, options=CPU, keepInputType=True)

    assert slicer.util.arrayFromVolume(output).shape == (2, 128, 128)
    assert slicer.util.arrayFromVolume(output).dtype == crop.dtype
    np.testing.assert_allclose(output.GetSpacing(), np.array(sample.GetSpacing()) * [0.5, 0.5, 1.0])
    assert output.GetDisplayNode() is not None
    assert "done in" in logic.summary(output, "cpu")
    assert "2 axial slices along K" in logic.describeSlicing(node, "auto")
    # The whole sample is measured as acquired (air noise fills its band up to Nyquist).
    assert logic.describeSlicing(sample, "auto").endswith("effective in-plane resolution 1.125 x 1.125 mm, as acquired")


def test_the_parameter_node_becomes_the_engines_options(slicer_module):
    """``batchSize`` 0 (the spin box's "automatic") is ``batch_size`` None; the check boxes are seconds and models."""
    parameters = types.SimpleNamespace(plane=slicer_module.SlicingPlane.K, device=slicer_module.Device.CPU,
                                       precision=slicer_module.Precision.AUTO, batchSize=0, adaptToScan=True,
                                       keepMeasuredKSpace=False, scale=slicer_module.Scale.X2)
    options = slicer_module.RRLSRNSuperResLogic.engineOptions(parameters)
    assert options == EngineOptions(plane="k", device="cpu", batch_size=None,
                                    adapt_seconds=slicer_module.ADAPT_SECONDS, consistency="none")
    parameters.batchSize, parameters.adaptToScan, parameters.keepMeasuredKSpace = 4, False, True
    parameters.scale = slicer_module.Scale.X4
    assert slicer_module.RRLSRNSuperResLogic.engineOptions(parameters) == EngineOptions(
        plane="k", device="cpu", batch_size=4, scale=4)


def test_the_reconstruction_takes_the_panels_device_precision_and_batch_size_but_no_adaptation(slicer_module):
    parameters = types.SimpleNamespace(plane=slicer_module.SlicingPlane.J, device=slicer_module.Device.CPU,
                                       precision=slicer_module.Precision.BF16, batchSize=4, adaptToScan=True,
                                       keepMeasuredKSpace=True)
    assert slicer_module.RRLSRNSuperResLogic.reconstructionEngineOptions(parameters) == EngineOptions(
        device="cpu", precision="bf16", batch_size=4)


def test_the_output_keeps_the_measured_kspace_unless_told_not_to(slicer_module):
    from RRLSRNSuperResLib.imaging.degrade import downsample_slices

    node = add_slab(load_sample(slicer_module), 10, 2, slice(120, 184))
    measured = slicer.util.arrayFromVolume(node).astype(np.float32)
    logic = slicer_module.RRLSRNSuperResLogic()
    kept = slicer.util.arrayFromVolume(logic.process(node, options=CPU))
    free = slicer.util.arrayFromVolume(logic.process(node, options=EngineOptions(device="cpu", consistency="none")))
    tolerance = 1e-4 * np.ptp(measured)
    np.testing.assert_allclose(downsample_slices(kept, "kspace"), measured, atol=tolerance)
    assert np.abs(downsample_slices(free, "kspace") - measured).max() > 100 * tolerance


def test_adapt_to_this_scan_runs_first_and_says_so_in_the_status_line(slicer_module):
    node = add_slab(load_sample(slicer_module), 10, 3, slice(112, 208))
    logic = slicer_module.RRLSRNSuperResLogic()
    fractions = []

    output = logic.process(node, options=EngineOptions(device="cpu", adapt_seconds=1.0),
                           progress=lambda fraction, message: fractions.append(fraction))

    assert slicer.util.arrayFromVolume(output).shape == (3, 192, 192)
    assert "adapted to this scan:" in logic.summary(output, "cpu")
    assert fractions[-1] == 1.0 and all(b >= a for a, b in zip(fractions, fractions[1:]))


def test_logic_restricted_to_a_brain_segmentation_writes_its_x2_labelmap(slicer_module):
    sample = load_sample(slicer_module)
    node = add_slab(sample, 9, 2)
    logic = slicer_module.RRLSRNSuperResLogic()
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "seed")
    points.AddControlPointWorld(vtk.vtkVector3d(0.0, 0.0, 0.0))
    points.SetNthControlPointPositionWorld(0, 0.0, 0.0, 0.0, slicer.vtkMRMLMarkupsNode.PositionPreview)

    segmentation = logic.createBrainSegmentation(sample, points)  # the preview point is ignored: FOV centre
    output = logic.process(node, options=CPU, brainSegmentation=segmentation)

    labelmap = logic.brainMaskLabelmap(output)
    assert labelmap is not None and labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    assert slicer.util.arrayFromVolume(labelmap).shape == slicer.util.arrayFromVolume(output).shape
    assert slicer.util.arrayFromVolume(labelmap).any()
    assert output.GetSpacing()[0] == pytest.approx(sample.GetSpacing()[0] / 2)


def test_input_problems_are_explained(slicer_module):
    logic = slicer_module.RRLSRNSuperResLogic()
    parameters = types.SimpleNamespace(inputVolume=None, outputVolume=None, restrictToBrain=False,
                                       brainSegmentation=None)
    assert "Select an input" in logic.inputProblem(parameters)
    parameters.inputVolume = load_sample(slicer_module)
    assert logic.inputProblem(parameters) == ""
    parameters.outputVolume = parameters.inputVolume
    assert "other than the input" in logic.inputProblem(parameters)


def test_a_second_run_on_another_input_adds_a_new_volume_and_keeps_the_first(slicer_module):
    """The widget leaves the result selected as the output; the next click on stack C must not
    overwrite stack A's result (it used to, keeping A's name)."""
    sample = load_sample(slicer_module)
    stack_a, stack_c = add_slab(sample, 10, 1, slice(140, 172), "stackA"), add_slab(sample, 12, 1, slice(140, 172),
                                                                                     "stackC")
    logic = slicer_module.RRLSRNSuperResLogic()
    parameters = types.SimpleNamespace(inputVolume=stack_a, outputVolume=None)
    parameters.outputVolume = logic.process(stack_a, logic.outputVolumeForRun(parameters), options=CPU)
    result_a = parameters.outputVolume
    voxels_a = slicer.util.arrayFromVolume(result_a).copy()

    parameters.inputVolume = stack_c
    result_c = logic.process(stack_c, logic.outputVolumeForRun(parameters), options=CPU)

    assert result_c is not result_a
    assert (result_a.GetName(), result_c.GetName()) == ("stackA x2 RRLSRN", "stackC x2 RRLSRN")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(result_a), voxels_a)
    parameters.inputVolume = stack_a
    assert logic.outputVolumeForRun(parameters) is result_a, "a rerun on stack A replaces its own result"


def registered_samples(monkeypatch) -> dict:
    """What the module registers with SampleData, by sample name (a stand-in ``SampleDataLogic``)."""
    registered = {}
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kwargs: registered.update({kwargs["sampleName"]: kwargs}))
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    return registered


def test_sample_is_registered_under_a_module_specific_name_with_its_sha256(slicer_module, monkeypatch):
    registered = registered_samples(monkeypatch)

    slicer_module.registerSampleData()

    sample = registered[slicer_module.SAMPLE_NAME]
    assert sample["fileNames"].startswith("RRLSRNSuperRes")
    algorithm, digest = sample["checksums"].split(":")
    path = slicer_module.resourcePath("SampleData", slicer_module.SAMPLE_FILE)
    assert algorithm == "SHA256" and digest == slicer.util.computeChecksum("SHA256", path)
    assert Path(slicer_module.resourcePath("Icons", "RRLSRNSuperResSample.png")).is_file()


def test_the_six_reconstruction_stacks_and_their_masks_are_registered_in_the_same_order(slicer_module, monkeypatch):
    from RRLSRNSuperResLib.resources import reconstruction_sample_paths

    registered = registered_samples(monkeypatch)

    slicer_module.registerSampleData()

    stacks, masks = registered["FetalBrainT2Stacks"], registered["FetalBrainT2StackMasks"]
    assert stacks["category"] == masks["category"] == registered["FetalBrainT2Stack"]["category"]
    assert stacks["nodeNames"] == [f"sub-01_run-{run}_T2w" for run in range(1, 7)]
    assert masks["nodeNames"] == [f"sub-01_run-{run}_T2w_desc-brain_mask" for run in range(1, 7)]
    assert (stacks["loadFileProperties"], masks["loadFileProperties"]) == ({}, {"labelmap": True})
    for sample, paths in zip((stacks, masks), reconstruction_sample_paths()):
        assert [Path(uri[len("file://"):]) for uri in sample["uris"]] == paths and all(p.is_file() for p in paths)
        assert len(set(sample["fileNames"])) == 6 and all(name.startswith("RRLSRNSuperRes-") for name in
                                                           sample["fileNames"])
        assert [checksum.split(":")[1] for checksum in sample["checksums"]] == [
            slicer.util.computeChecksum("SHA256", str(path)) for path in paths]


class SampleDataBefore512:
    """Slicer 5.6-5.10's SampleData: its panel titles each section with the category key itself."""

    sources: dict = {}

    @classmethod
    def registerCustomSampleDataSource(cls, category="Custom", **source):  # noqa: N802 (Slicer's API)
        cls.sources.setdefault(category, []).append(source)

    @classmethod
    def sectionTitles(cls) -> list[str]:  # noqa: N802
        return sorted(cls.sources)


class SampleDataSince512(SampleDataBefore512):
    """Slicer 5.12 and later: a category key and a separately registered title."""

    titles: dict = {}

    @classmethod
    def registerCustomSampleDataCategory(cls, category, title):  # noqa: N802
        cls.titles[category] = title

    @classmethod
    def sectionTitles(cls) -> list[str]:  # noqa: N802
        return sorted(cls.titles.get(category, category) for category in cls.sources)


@pytest.mark.parametrize("sample_data_logic", [SampleDataBefore512, SampleDataSince512])
def test_the_sample_data_section_reads_well_on_every_supported_slicer(slicer_module, monkeypatch,
                                                                      sample_data_logic):
    """Issue 26 item 8: on Slicer 5.6-5.10 the section was titled with the raw key "RRLSRNSuperRes"."""
    monkeypatch.setattr(sample_data_logic, "sources", {})
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = sample_data_logic
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)

    slicer_module.registerSampleData()

    assert sample_data_logic.sectionTitles() == ["RRLSRN Super-Resolution"]


def test_module_and_widget_find_resources_in_the_top_level_folder(slicer_module):
    """The base classes (and the developer-mode Edit UI button) would look in RRLSRNSuperRes/Resources."""
    parent = types.SimpleNamespace()
    module = slicer_module.RRLSRNSuperRes(parent)
    widget = slicer_module.RRLSRNSuperResWidget()
    for owner in (module, widget):
        path = Path(owner.resourcePath("UI/RRLSRNSuperRes.ui"))
        assert path.is_file() and path.parent.parent == ROOT / "Resources"
    assert parent.icon[1] == str(ROOT / "Resources" / "Icons" / "RRLSRNSuperRes.png")


def test_reload_imports_the_loaded_lib_modules_anew_in_dependency_order(slicer_module, monkeypatch):
    import RRLSRNSuperResLib
    import RRLSRNSuperResLib.cli.main  # noqa: F401 (the last room)
    import RRLSRNSuperResLib.mrml.segmentations  # noqa: F401 (mrml, masks, imaging, errors)

    before = {name: module for name, module in sys.modules.items() if name.startswith("RRLSRNSuperResLib")}
    rooms = RRLSRNSuperResLib.SUBPACKAGES
    imported = []
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, package=None: imported.append(name) or real_import(name, package))
    try:
        slicer_module.RRLSRNSuperResWidget().onReload()
        after = {name: module for name, module in sys.modules.items() if name.startswith("RRLSRNSuperResLib")}
    finally:  # the other tests hold the original classes (UserInputError, ...): put the originals back
        for name in [name for name in sys.modules if name.startswith("RRLSRNSuperResLib")]:
            del sys.modules[name]
        sys.modules.update(before)

    assert set(after) == set(before)
    assert all(after[name] is not before[name] for name in before), "every module object is new"
    ranks = [next(rank for rank, room in enumerate(rooms) if name.startswith(f"RRLSRNSuperResLib.{room}"))
             for name in imported if any(name.startswith(f"RRLSRNSuperResLib.{room}") for room in rooms)]
    assert ranks == sorted(ranks) and len(set(ranks)) >= 4, imported


def test_module_runs_in_slicers_python_without_scikit_image():
    """A fresh interpreter that refuses scikit-image and all else Slicer's Python lacks (see slicer_python.py)."""
    script = f"""
import sys, unittest
sys.path.insert(0, {str(ROOT / "Testing")!r})
import slicer_python
refused = slicer_python.restrict_to_slicer_python()
assert "skimage" in refused and "PIL" in refused, refused
try:
    import skimage.filters  # noqa: F401
    raise SystemExit("scikit-image was importable")
except ImportError:
    pass
import slicer, slicer.util, vtk, numpy as np
import slicer_stand_ins
scene, volumes = slicer_stand_ins.application_scene()
slicer_stand_ins.install(scene, volumes)
module = slicer_stand_ins.import_module_file()
suite = unittest.TestLoader().loadTestsFromTestCase(module.RRLSRNSuperResTest)
result = unittest.TextTestRunner(verbosity=0).run(suite)
assert result.wasSuccessful() and not result.skipped, result
sample = slicer.util.loadVolume(module.resourcePath("SampleData", module.SAMPLE_FILE))
logic = module.RRLSRNSuperResLogic()
segmentation = logic.createBrainSegmentation(sample)
matrix = vtk.vtkMatrix4x4()
sample.GetIJKToRASMatrix(matrix)
slab_to_ras = slicer.util.arrayFromVTKMatrix(matrix)
slab_to_ras[:, 3] = slab_to_ras @ [0, 0, 10, 1]
slab = slicer.util.addVolumeFromArray(slicer.util.arrayFromVolume(sample)[10:12].copy(), slab_to_ras, "slab")
from RRLSRNSuperResLib.engine.options import EngineOptions
output = logic.process(slab, options=EngineOptions(device="cpu"), brainSegmentation=segmentation)
assert slicer.util.arrayFromVolume(output).shape == (2, 640, 640)
assert slicer.util.arrayFromVolume(logic.brainMaskLabelmap(output)).any()
from RRLSRNSuperResLib.evaluation import metrics
assert 0.99 < metrics.ssim_map(np.ones((16, 16)), np.ones((16, 16)), 1.0).min()
print("RAN IN SLICER PYTHON", sorted(refused & {{"skimage", "PIL", "matplotlib"}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RAN IN SLICER PYTHON ['PIL', 'matplotlib', 'skimage']" in result.stdout


# The widget's own code, bound to a stand-in .ui (slicer_stand_ins.Ui): Apply/Cancel, refusals, outcomes.


def bound_widget(module: types.ModuleType, monkeypatch, **fields):
    """The widget as ``setup()`` leaves it: logic, parameter node (CPU), .ui; the slice views stood in."""
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kwargs: None, raising=False)
    widget = module.RRLSRNSuperResWidget()
    widget.ui = slicer_stand_ins.Ui()
    widget.logic = module.RRLSRNSuperResLogic()
    parameters = module.RRLSRNSuperResParameterNode()
    for name, value in {"inputVolume": None, "outputVolume": None, "brainSegmentation": None,
                        "device": module.Device.CPU, **fields}.items():
        setattr(parameters, name, value)
    widget._parameterNode = parameters
    return widget


def scalar_volume_count() -> int:
    return slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")


def test_apply_turns_into_cancel_and_repaints_before_torch_and_the_model_and_a_double_click_is_ignored(
        slicer_module, monkeypatch):
    """Issue 26 item 2: the second click of a double click (queued by Qt) used to cancel the run."""
    widget = bound_widget(slicer_module, monkeypatch, inputVolume=add_slab(load_sample(slicer_module), 10, 2,
                                                                           slice(120, 184)))
    progress_calls, seen_at_first_repaint = [], []
    show_progress = widget._onProgress
    widget._onProgress = lambda fraction, message: progress_calls.append(message) or show_progress(fraction, message)
    slicer.app.events[0] = [lambda: seen_at_first_repaint.append((widget.ui.applyButton.text, len(progress_calls))),
                            widget.onApplyButton]
    monkeypatch.setattr(widget.logic, "process", lambda *args, **kwargs: pytest.fail("the panel runs in a child"))

    widget.onApplyButton()

    assert seen_at_first_repaint == [("Cancel", 0)], "Cancel shown and painted before the first progress callback"
    output = widget._parameterNode.outputVolume
    assert output is not None and slicer.util.arrayFromVolume(output).shape == (2, 128, 128)
    assert "done in" in widget.ui.statusLabel.text
    assert (widget.ui.applyButton.text, widget.ui.applyButton.enabled) == ("Super-resolve", True)


def test_a_click_once_the_run_has_started_cancels_it_and_adds_nothing(slicer_module, monkeypatch):
    widget = bound_widget(slicer_module, monkeypatch, inputVolume=add_slab(load_sample(slicer_module), 10, 2,
                                                                           slice(120, 184)))
    before = scalar_volume_count()
    slicer.app.events[2] = [widget.onApplyButton]  # during the second progress callback

    widget.onApplyButton()

    assert widget.ui.statusLabel.text == "Cancelled; no volume was added or changed."
    assert scalar_volume_count() == before and widget._parameterNode.outputVolume is None
    assert widget.ui.applyButton.text == "Super-resolve" and not widget.controller.running


def brain_box_segmentation(volume):
    """A "Fetal brain" segmentation of ``volume``: its central box."""
    from RRLSRNSuperResLib.mrml.segmentations import SEGMENT_NAME, set_segment_mask

    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "brain")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("", SEGMENT_NAME)
    mask = np.zeros(slicer.util.arrayFromVolume(volume).shape, np.uint8)
    mask[:, 16:48, 16:48] = 1
    set_segment_mask(segmentation, segment_id, mask, volume)
    return segmentation


def test_deleting_the_brain_segmentation_mid_run_stops_the_run_instead_of_failing_after_writing(
        slicer_module, monkeypatch):
    """Issue 26 item 3: the x2 label map step used to fail ("Super-resolution failed") after the output was written."""
    volume = add_slab(load_sample(slicer_module), 10, 2, slice(120, 184))
    segmentation = brain_box_segmentation(volume)
    widget = bound_widget(slicer_module, monkeypatch, inputVolume=volume, brainSegmentation=segmentation,
                          restrictToBrain=True)
    before = scalar_volume_count()
    slicer.app.events[2] = [lambda: slicer.mrmlScene.RemoveNode(segmentation)]
    monkeypatch.setattr(widget.logic, "process", lambda *args, **kwargs: pytest.fail("the panel runs in a child"))

    widget.onApplyButton()  # tryWithErrorDisplay re-raises in testing mode: a failure would raise here

    assert widget.ui.statusLabel.text == ("Super-resolution stopped: the brain segmentation 'brain' was removed; "
                                          "nothing was added.")
    assert scalar_volume_count() == before


def add_sequence_frame(volume):
    """A 4D volume as Slicer loads it: a sequence of three frames shown through a proxy volume."""
    scene = slicer.mrmlScene
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    for time in range(3):
        sequence.SetDataNodeAtValue(volume, str(time))
    proxy = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "cine frame")
    slicer.util.updateVolumeFromArray(proxy, slicer.util.arrayFromVolume(volume))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "cine browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.AddProxyNode(proxy, sequence, False)
    return proxy


def test_sequence_frames_multi_component_volumes_and_label_maps_are_refused_before_the_click(slicer_module):
    """Issue 26 item 7: a 4D frame and a 3-component volume passed the check (refused only after the click)."""
    logic = slicer_module.RRLSRNSuperResLogic()
    volume = add_slab(load_sample(slicer_module), 10, 2, slice(120, 152))
    parameters = types.SimpleNamespace(inputVolume=add_sequence_frame(volume), outputVolume=None,
                                       restrictToBrain=False, brainSegmentation=None)
    assert logic.inputProblem(parameters).startswith(
        "The input 'cine frame' is the frame shown by the sequence 'cine browser' (a 4D volume)")
    parameters.inputVolume, parameters.outputVolume = volume, parameters.inputVolume
    assert logic.inputProblem(parameters).startswith("The output 'cine frame' is the frame shown by the sequence")

    rgb = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "rgb")
    image = vtk.vtkImageData()  # slicer.util's array helpers refuse 3 components in a scalar volume node
    image.SetDimensions(8, 8, 2)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    rgb.SetAndObserveImageData(image)
    labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labels, np.zeros((2, 8, 8), np.uint8))
    parameters.outputVolume = None
    parameters.inputVolume = rgb
    assert logic.inputProblem(parameters) == ("'rgb' has 3 components per voxel; RRLSRN needs a single-component "
                                              "(greyscale) volume.")
    parameters.inputVolume = labels
    assert logic.inputProblem(parameters).startswith("'labels' is a label map")
    parameters.inputVolume = volume
    assert logic.inputProblem(parameters) == ""


def test_settings_changes_reuse_the_bandwidth_estimate_until_the_voxels_change(slicer_module, monkeypatch):
    """Issue 26 item 4: every parameter change measured the bandwidth over the whole volume again."""
    from RRLSRNSuperResLib.imaging import bandwidth

    estimates = []
    measure = bandwidth.estimate_bandwidth
    monkeypatch.setattr(bandwidth, "estimate_bandwidth", lambda *args: estimates.append(args[2]) or measure(*args))
    volume = add_slab(load_sample(slicer_module), 8, 6, slice(100, 196))
    widget = bound_widget(slicer_module, monkeypatch, inputVolume=volume)
    described = []
    for name, value in [("device", slicer_module.Device.AUTO), ("precision", slicer_module.Precision.FP32),
                        ("batchSize", 4), ("plane", slicer_module.SlicingPlane.K), ("adaptToScan", True)]:
        setattr(widget._parameterNode, name, value)
        widget._onParameterNodeModified()
        described.append(widget.ui.planeHintLabel.text)
    assert estimates == [2] and len(set(described)) == 1 and "6 axial slices along K" in described[0]

    widget._parameterNode.plane = slicer_module.SlicingPlane.J
    widget._onParameterNodeModified()
    widget._parameterNode.plane = slicer_module.SlicingPlane.K
    widget._onParameterNodeModified()
    assert estimates == [2, 1], "another slice axis is measured once, then both are kept"
    slicer.util.arrayFromVolume(volume)[:] //= 2
    slicer.util.arrayFromVolumeModified(volume)
    widget._onParameterNodeModified()
    assert estimates == [2, 1, 2], "new voxels are measured again"


def test_a_run_above_the_memory_threshold_asks_first_and_a_no_starts_nothing(slicer_module, monkeypatch):
    from RRLSRNSuperResLib.mrml import run_estimate

    volume = add_slab(load_sample(slicer_module), 10, 2, slice(120, 184))
    widget = bound_widget(slicer_module, monkeypatch, inputVolume=volume)
    monkeypatch.setattr(run_estimate, "available_memory_bytes", lambda: 100_000)  # bytes: the 164 kB run is too big
    asked = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, **kwargs: asked.append(text) and False)
    before = scalar_volume_count()

    widget.onApplyButton()

    assert asked[0].startswith("The result will be 128 x 128 x 2 voxels and needs about 0.2 MB of memory "
                               "(0.1 MB are free now)")
    assert "more than the free memory" in asked[0]
    assert widget.ui.statusLabel.text == "Not started." and scalar_volume_count() == before
    assert widget.ui.applyButton.text == "Super-resolve" and not widget.controller.running


def test_the_logic_runs_the_bundled_model_in_a_separate_process_with_progress(slicer_module):
    """Issue 26 item 9: the network out of Slicer's process; outside Slicer the child is this Python."""
    node = add_slab(load_sample(slicer_module), 10, 2, slice(120, 184))
    logic = slicer_module.RRLSRNSuperResLogic()
    fractions = []

    output = logic.processInBackground(node, options=EngineOptions(device="cpu"), keepInputType=True,
                                       progress=lambda fraction, message: fractions.append(fraction))
    in_process = logic.process(node, options=EngineOptions(device="cpu"), keepInputType=True)

    assert slicer_module.pythonSlicerExecutable() == sys.executable
    assert output.GetName() == "slab x2 RRLSRN" and "done in" in logic.summary(output, "cpu")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), slicer.util.arrayFromVolume(in_process))
    assert slicer.util.arrayFromVolume(output).dtype == slicer.util.arrayFromVolume(node).dtype
    assert fractions[-1] == 1.0 and len(fractions) >= 3


def test_the_background_run_restricted_to_the_brain_equals_the_in_process_one(slicer_module):
    """The panel runs in the background also with "Restrict to brain": the mask travels as a temporary NRRD."""
    node = add_slab(load_sample(slicer_module), 10, 2, slice(120, 184))
    segmentation = brain_box_segmentation(node)
    logic = slicer_module.RRLSRNSuperResLogic()

    output = logic.processInBackground(node, options=CPU, brainSegmentation=segmentation)
    in_process = logic.process(node, options=CPU, brainSegmentation=segmentation)
    unmasked = logic.process(node, options=CPU)

    voxels = slicer.util.arrayFromVolume(output)
    np.testing.assert_array_equal(voxels, slicer.util.arrayFromVolume(in_process))
    assert not np.array_equal(voxels, slicer.util.arrayFromVolume(unmasked)), "the child used the mask"
    labelmap = logic.brainMaskLabelmap(output)
    assert labelmap is not None and slicer.util.arrayFromVolume(labelmap).shape == voxels.shape == (2, 128, 128)
    assert slicer.util.arrayFromVolume(labelmap).sum() == 2 * 64 * 64, "the 32 x 32 box at x2, on 2 slices"


def test_apply_without_a_valid_input_says_why_and_starts_nothing(slicer_module, monkeypatch):
    widget = bound_widget(slicer_module, monkeypatch)
    widget._checkCanApply()
    assert (widget.ui.applyButton.enabled, widget.ui.applyButton.toolTip) == (False, "Select an input volume.")

    widget.onApplyButton()  # as a script would: the disabled button cannot be clicked

    assert widget.ui.statusLabel.text == "Select an input volume." and not widget.controller.running


# The 3D reconstruction section: Reconstruct/Cancel, refusals, outcome (stacks simulated as in the self-test).


def simulated_stack_nodes(module: types.ModuleType):
    """Three stacks (and label map masks on their grids) simulated from the self-test's oblique head."""
    from RRLSRNSuperResLib.reconstruction.simulation import SimulationSettings, simulate_from_arrays

    head, geometry = module.RRLSRNSuperResTest._simulatedHead()
    stacks, masks = [], []
    for simulated in simulate_from_arrays(head, head > 0, geometry, SimulationSettings(seed=3)):
        stack = simulated.stack
        ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ stack.geometry.index_to_physical_matrix()
        stacks.append(slicer.util.addVolumeFromArray(stack.voxels_kji.astype(np.float32), ijk_to_ras, stack.name))
        masks.append(slicer.util.addVolumeFromArray(stack.mask_kji.astype(np.uint8), ijk_to_ras, stack.name + " mask",
                                                    "vtkMRMLLabelMapVolumeNode"))
    return stacks, masks


def reconstruction_widget(module: types.ModuleType, monkeypatch, stacks, masks):
    widget = bound_widget(module, monkeypatch, reconstructionResolution=1.6, reconstructionSuperRes=False)
    widget.ui.stacksSelector.checked, widget.ui.stackMasksSelector.checked = stacks, masks
    monkeypatch.setattr(widget.logic, "reconstruct", lambda *args, **kwargs: pytest.fail("the panel runs in a child"))
    return widget


def test_reconstruct_turns_into_cancel_locks_super_resolve_and_adds_a_new_volume(slicer_module, monkeypatch):
    stacks, masks = simulated_stack_nodes(slicer_module)
    widget = reconstruction_widget(slicer_module, monkeypatch, stacks, masks)
    seen = []
    slicer.app.events[0] = [lambda: seen.append((widget.ui.reconstructButton.text, widget.ui.applyButton.enabled,
                                                 widget.ui.stacksSelector.enabled))]
    before = scalar_volume_count()

    widget.onReconstructButton()

    assert seen == [("Cancel", False, False)], "Cancel painted, Super-resolve and the stack list locked"
    assert scalar_volume_count() == before + 1
    result = slicer.mrmlScene.GetFirstNodeByName(f"{stacks[0].GetName()} 3D reconstruction")
    assert result is not None and np.allclose(result.GetSpacing(), 1.6)
    assert widget.ui.statusLabel.text.startswith(f"'{result.GetName()}' done in ")
    assert "from 3 stacks (without the RRLSRN step)" in widget.ui.statusLabel.text
    assert (widget.ui.reconstructButton.text, widget.ui.reconstructButton.enabled) == ("Reconstruct", True)
    assert widget.ui.stacksSelector.enabled and not widget.reconstructionController.running


def test_a_click_during_the_reconstruction_cancels_it_and_adds_nothing(slicer_module, monkeypatch):
    stacks, masks = simulated_stack_nodes(slicer_module)
    widget = reconstruction_widget(slicer_module, monkeypatch, stacks, masks)
    before_nodes = slicer.mrmlScene.GetNumberOfNodes()
    slicer.app.events[3] = [widget.onReconstructButton]

    widget.onReconstructButton()

    assert widget.ui.statusLabel.text == "Cancelled; no volume was added or changed."
    assert slicer.mrmlScene.GetNumberOfNodes() == before_nodes
    assert widget.ui.reconstructButton.text == "Reconstruct" and not widget.reconstructionController.running


def test_reconstruct_says_why_it_is_disabled_until_the_stacks_and_masks_pair(slicer_module, monkeypatch):
    stacks, masks = simulated_stack_nodes(slicer_module)
    widget = reconstruction_widget(slicer_module, monkeypatch, stacks[:1], [])
    widget._checkCanApply()
    assert not widget.ui.reconstructButton.enabled
    assert widget.ui.reconstructButton.toolTip.startswith("A 3D reconstruction needs at least 2 stacks (got 1)")

    widget.ui.stacksSelector.checked, widget.ui.stackMasksSelector.checked = stacks, masks[:2]
    widget._checkCanApply()
    assert widget.ui.reconstructButton.toolTip.startswith("2 brain masks are checked for 3 stacks")
    widget.ui.stackMasksSelector.checked = [masks[1], masks[0], masks[2]]
    widget._checkCanApply()
    assert "is not on that stack's grid. Masks pair with stacks in the order" in widget.ui.reconstructButton.toolTip

    widget.ui.stackMasksSelector.checked = masks
    widget._checkCanApply()
    assert widget.ui.reconstructButton.enabled and widget.ui.reconstructButton.toolTip.startswith("Fuse the checked")
