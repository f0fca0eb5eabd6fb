"""``rrlsrn reconstruct`` from files to files: outputs, sidecar, the RRLSRN step, and the user's errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.io.volumes import read_volume, write_volume
from RRLSRNSuperResLib.reconstruction.simulation import SimulationSettings, simulate_from_arrays
from test_evaluate_reconstruction_cli import tiny_head


@pytest.fixture(scope="module")
def stack_files(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """Three orthogonal stacks (and masks) simulated from the tiny oblique head, with moderate motion."""
    folder = tmp_path_factory.mktemp("stacks")
    head, mask = tiny_head(folder)
    volume, brain = read_volume(head), read_volume(mask).voxels > 0
    stacks, masks = [], []
    for simulated in simulate_from_arrays(volume.voxels.astype(np.float64), brain, volume.geometry,
                                          SimulationSettings(seed=3)):
        stack = simulated.stack
        stacks.append(folder / f"{stack.name}.nii.gz")
        masks.append(folder / f"{stack.name}_mask.nii.gz")
        write_volume(stacks[-1], np.clip(stack.voxels_kji, 0, None).astype(np.int16), stack.geometry)
        write_volume(masks[-1], stack.mask_kji.astype(np.uint8), stack.geometry)
    return stacks, masks


def test_writes_the_volume_its_mask_and_a_sidecar_with_every_slice_pose(stack_files, tmp_path, capsys):
    stacks, masks = stack_files
    output = tmp_path / "recon.nii.gz"
    assert main(["reconstruct", *map(str, stacks), "--mask", *map(str, masks), "--output", str(output),
                 "--resolution", "1.6", "--no-superres", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "from 3 stacks" in printed and f"wrote {output}" in printed

    image = sitk.ReadImage(str(output))
    np.testing.assert_allclose(image.GetSpacing(), (1.6, 1.6, 1.6))
    np.testing.assert_allclose(image.GetDirection(), (-1, 0, 0, 0, -1, 0, 0, 0, 1)), "RAS-aligned axes, in LPS"
    assert image.GetPixelID() == sitk.sitkInt16, "the stacks' integer type where the values fit"
    mask = sitk.ReadImage(str(tmp_path / "recon_mask.nii.gz"))
    assert mask.GetSize() == image.GetSize() and sitk.GetArrayFromImage(mask).any()
    record = json.loads((tmp_path / "recon.json").read_text())["RRLSRN"]
    assert record["InPlaneSuperResolution"] is False and record["Model"] is None
    assert [len(stack["Slices"]) for stack in record["Stacks"]] == [sitk.ReadImage(str(s)).GetSize()[2]
                                                                    for s in stacks]
    pose = np.asarray(record["Stacks"][0]["Slices"][0]["TransformLPS"])
    assert pose.shape == (4, 4) and np.allclose(pose[3], [0, 0, 0, 1])
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5), "a rigid transform"


def test_the_rrlsrn_step_runs_on_every_stack_and_is_recorded(stack_files, tmp_path, mrml_tiny_model_path):
    stacks, masks = stack_files
    output = tmp_path / "recon.nrrd"
    assert main(["reconstruct", *map(str, stacks), "--mask", *map(str, masks), "--output", str(output),
                 "--resolution", "1.6", "--model", str(mrml_tiny_model_path), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "recon.json").read_text())["RRLSRN"]
    assert record["InPlaneSuperResolution"] is True and record["Model"]["path"] == str(mrml_tiny_model_path)
    assert (tmp_path / "recon_mask.nrrd").is_file()


@pytest.mark.parametrize(("words", "message"), [
    (["one"], "at least 2 stacks"),
    (["two", "--mask", "m1"], "one --mask per stack"),
    (["two", "--output-ext", ".dcm"], "cannot tell the format"),
    (["flat"], "not a 3D stack"),
])
def test_user_errors_are_one_line_and_write_nothing(stack_files, tmp_path, capsys, words, message):
    stacks, masks = stack_files
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(16, 16, 1, sitk.sitkInt16), str(flat))
    inputs = {"one": [str(stacks[0])], "two": [str(stacks[0]), str(stacks[1])], "flat": [str(stacks[0]), str(flat)]}
    arguments = inputs[words[0]] + [w if w != "m1" else str(masks[0]) for w in words[1:] if w != "--output-ext"]
    suffix = words[-1] if "--output-ext" in words else ".nii.gz"
    assert main(["reconstruct", *arguments, "--output", str(tmp_path / f"out{suffix}"), "--no-superres"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not list(tmp_path.glob("out*"))


def test_for_a_parent_process_a_user_error_is_an_error_line_in_slicer_words(stack_files, tmp_path, capsys):
    """``--progress-lines`` (Slicer's background run): the refusal also goes to stdout as ``ERROR <json>``."""
    stacks, masks = stack_files
    assert main(["reconstruct", *map(str, stacks), "--mask", str(masks[0]), "--output", str(tmp_path / "out.nrrd"),
                 "--no-superres", "--progress-lines"]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR ")
    reported = json.loads(lines[0][len("ERROR "):])
    assert reported["message"].startswith("give one --mask per stack, in the same order (1 masks for 3 stacks)")
    assert reported["in_slicer"].startswith("check one brain mask per stack, in the stacks' order (1 masks for 3")


def test_progress_lines_run_on_one_rising_scale_over_every_phase():
    from RRLSRNSuperResLib.pipeline.reconstruction import ReconstructionJob, overall_progress

    reports = []
    job = ReconstructionJob(stacks=(Path("a.nii.gz"), Path("b.nii.gz")), output=Path("out.nii.gz"))
    progress_for = overall_progress(job, lambda fraction, message: reports.append((fraction, message)))
    for label in ("RRLSRN x2 a", "RRLSRN x2 b", "3D reconstruction"):
        progress_for(label)(0.0, "")
        progress_for(label)(1.0, "done")
    assert reports == [(0.0, "RRLSRN x2 a"), (0.25, "RRLSRN x2 a: done"), (0.25, "RRLSRN x2 b"),
                       (0.5, "RRLSRN x2 b: done"), (0.5, "3D reconstruction"), (1.0, "3D reconstruction: done")]
    no_superres = overall_progress(ReconstructionJob(stacks=job.stacks, output=job.output, superres=False),
                                   lambda fraction, message: reports.append((fraction, message)))
    no_superres("3D reconstruction")(0.5, "")
    assert reports[-1] == (0.5, "3D reconstruction")
