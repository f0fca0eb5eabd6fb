"""The background run (``mrml.background``) in a slicer-core scene: a child process, progress lines, cancel, grid."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import slicer
import slicer.util
from RRLSRNSuperResLib import superresolve_volume_node
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.mrml.background import superresolve_volume_node_in_background
from RRLSRNSuperResLib.mrml.volumes import ATTRIBUTE_DEVICE, ATTRIBUTE_SLICE_AXIS
from test_mrml_adapter import add_parent_transform, add_volume, ijk_to_ras, oblique_flipped_directions


def rrlsrn_folders() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("rrlsrn-*")}


@pytest.fixture
def oblique_stack(mrml_scene):
    voxels = np.random.default_rng(8).uniform(0, 400, (3, 12, 10)).astype(np.float32)
    source = add_volume(mrml_scene, voxels, spacing=(0.93, 1.07, 3.3), directions=oblique_flipped_directions(4),
                        origin=(-31.2, 17.9, 4.4))
    add_parent_transform(mrml_scene, source)
    return source


def test_a_background_run_streams_progress_and_matches_the_in_process_output_exactly(
        mrml_scene, oblique_stack, mrml_tiny_model_path):
    before = rrlsrn_folders()
    reports = []
    options = EngineOptions(device="cpu", precision="fp32", model=mrml_tiny_model_path)

    output = superresolve_volume_node_in_background(oblique_stack, python=sys.executable, options=options,
                                                    progress=lambda fraction, message: reports.append(
                                                        (fraction, message)))
    in_process = superresolve_volume_node(oblique_stack, device="cpu", precision="fp32", model=mrml_tiny_model_path)

    assert np.array_equal(ijk_to_ras(output), ijk_to_ras(in_process)), "the exact x2 grid"
    assert output.GetImageData().GetDimensions() == in_process.GetImageData().GetDimensions() == (20, 24, 3)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), slicer.util.arrayFromVolume(in_process))
    assert output.GetTransformNodeID() == oblique_stack.GetTransformNodeID()
    assert (output.GetAttribute(ATTRIBUTE_DEVICE), output.GetAttribute(ATTRIBUTE_SLICE_AXIS)) == ("cpu", "k")
    messages = [message for _, message in reports]
    assert "loading model" in messages and "3/3 slices" in messages and reports[-1][0] == 1.0
    assert rrlsrn_folders() == before, "the temporary folder is removed"


def test_cancelling_a_background_run_kills_it_and_leaves_no_node_and_no_file(mrml_scene, oblique_stack,
                                                                             mrml_tiny_model_path):
    before_folders, before_nodes = rrlsrn_folders(), mrml_scene.GetNumberOfNodes()
    seen = []

    def cancel_once_it_runs(fraction: float, message: str) -> bool:
        seen.append(message)
        return message != "loading model"

    with pytest.raises(SuperResolutionCancelled):
        superresolve_volume_node_in_background(oblique_stack, python=sys.executable, progress=cancel_once_it_runs,
                                               options=EngineOptions(device="cpu", model=mrml_tiny_model_path))

    assert seen[-1] == "loading model"
    assert mrml_scene.GetNumberOfNodes() == before_nodes and rrlsrn_folders() == before_folders


def test_a_user_error_in_the_child_is_a_user_error_here_in_slicer_words(mrml_scene, oblique_stack, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the child finds no CUDA GPU, even on a GPU machine
    before_nodes = mrml_scene.GetNumberOfNodes()
    with pytest.raises(UserInputError, match="^No working CUDA GPU was found: .*choose Device: CPU"):
        superresolve_volume_node_in_background(oblique_stack, python=sys.executable,
                                               options=EngineOptions(device="cuda"))
    assert mrml_scene.GetNumberOfNodes() == before_nodes


def test_the_result_read_back_is_not_copied_and_outlives_its_scratch_node(tmp_path):
    import gc

    from RRLSRNSuperResLib.mrml.background import read_nrrd_voxels, write_nrrd

    node = slicer.vtkMRMLScalarVolumeNode()
    expected = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    slicer.util.updateVolumeFromArray(node, expected)
    write_nrrd(node, tmp_path / "result.nrrd")

    voxels = read_nrrd_voxels(tmp_path / "result.nrrd")
    gc.collect()
    _ = [np.full(60, 1e9, np.float32) for _ in range(200)]

    assert not voxels.flags.owndata, "a view of the VTK scalars"
    np.testing.assert_array_equal(voxels, expected)


def test_the_child_gets_every_engine_option_and_the_mask_file():
    from RRLSRNSuperResLib.cli.engine_options import engine_options_from_args
    from RRLSRNSuperResLib.cli.main import build_parser
    from RRLSRNSuperResLib.mrml.background import command_arguments

    options = EngineOptions(model="m.pt", device="cpu", precision="bf16", plane="j", acquisition="as-is",
                            batch_size=4, consistency="bicubic", views=1, adapt_seconds=2.5, detail=0.25, scale=4)
    arguments = command_arguments(options, 1, keep_input_type=True, mask=True)

    assert arguments == [
        "--plane", "j", "--device", "cpu", "--precision", "bf16", "--acquisition", "as-is", "--consistency", "bicubic",
        "--views", "1", "--adapt", "2.5", "--detail", "0.25", "--batch-size", "4", "--model", "m.pt", "--scale", "4",
        "--output-type", "input", "--progress-lines", "--mask", "mask.nrrd"]
    parsed = build_parser("superres").parse_args(["superres", "input.nrrd", "output.nrrd", *arguments])
    assert engine_options_from_args(parsed) == replace(options, model=Path("m.pt")), "no option lost on the way"


def test_a_loaded_model_cannot_travel_to_the_child():
    import torch
    from RRLSRNSuperResLib.mrml.background import command_arguments

    with pytest.raises(UserInputError, match="takes a model file, not a loaded model"):
        command_arguments(EngineOptions(model=torch.nn.Identity()), 2)
