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
    assert (result.testsRun, result.errors, result.failures, result.skipped) == (1, [], [], [])


def test_self_test_is_skipped_with_a_reason_where_torch_is_missing(slicer_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # importlib.util.find_spec then answers None
    result = run_self_test(slicer_module)
    assert result.testsRun == 1 and not result.errors and not result.failures
    assert len(result.skipped) == 1 and "PyTorch" in result.skipped[0][1]
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
                                       keepMeasuredKSpace=False)
    options = slicer_module.RRLSRNSuperResLogic.engineOptions(parameters)
    assert options == EngineOptions(plane="k", device="cpu", batch_size=None,
                                    adapt_seconds=slicer_module.ADAPT_SECONDS, consistency="none")
    parameters.batchSize, parameters.adaptToScan, parameters.keepMeasuredKSpace = 4, False, True
    assert slicer_module.RRLSRNSuperResLogic.engineOptions(parameters) == EngineOptions(
        plane="k", device="cpu", batch_size=4)


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


def test_sample_is_registered_under_a_module_specific_name_with_its_sha256(slicer_module, monkeypatch):
    registered = {}
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kwargs: registered.update(kwargs))
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)

    slicer_module.registerSampleData()

    assert registered["fileNames"].startswith("RRLSRNSuperRes")
    algorithm, digest = registered["checksums"].split(":")
    path = slicer_module.resourcePath("SampleData", slicer_module.SAMPLE_FILE)
    assert algorithm == "SHA256" and digest == slicer.util.computeChecksum("SHA256", path)
    assert Path(slicer_module.resourcePath("Icons", "RRLSRNSuperResSample.png")).is_file()


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
