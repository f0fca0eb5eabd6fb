"""``rrlsrn bids ... --reconstruct``: one reconstruction per session, named and placed as BIDS derivatives, with
the raw metadata the stacks agree on and the provenance; resumable; a one-stack session fails alone; valid BIDS.

Three tiny stacks simulated from the oblique tiny head (as in ``test_reconstruct_cli``) make each session:
sub-01 (no session) and sub-02/ses-01, with their masks in a masks derivatives dataset. ``--no-superres``
at 1.6 mm keeps each reconstruction to seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.io.volumes import read_volume, write_volume
from RRLSRNSuperResLib.model.artifact import sha256_of
from RRLSRNSuperResLib.reconstruction.simulation import SimulationSettings, simulate_from_arrays
from test_evaluate_reconstruction_cli import tiny_head

pytest.importorskip("bids")

SESSIONS = ("sub-01/anat/sub-01", "sub-02/ses-01/anat/sub-02_ses-01")
OUTPUTS = sorted([
    ".bidsignore", "README.md", "dataset_description.json",
    "sub-01/anat/sub-01_desc-rrlsrnsvr_T2w.json", "sub-01/anat/sub-01_desc-rrlsrnsvr_T2w.nii.gz",
    "sub-01/anat/sub-01_desc-rrlsrnsvrbrain_mask.nii.gz",
    "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnsvr_T2w.json",
    "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnsvr_T2w.nii.gz",
    "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnsvrbrain_mask.nii.gz"])


def stack_name(session: str, run: int) -> str:
    return f"{session}_run-{run}_T2w.nii.gz"


def make_datasets(root: Path) -> tuple[Path, Path]:
    """The raw dataset (3 simulated stacks per session, RepetitionTime for all, EchoTime differing in sub-01)
    and the masks derivatives dataset (``<source entities>_desc-brain_mask.nii.gz``)."""
    head, mask = tiny_head(root)
    volume, brain = read_volume(head), read_volume(mask).voxels > 0
    simulated = simulate_from_arrays(volume.voxels.astype(np.float64), brain, volume.geometry,
                                     SimulationSettings(seed=3))
    raw, masks = root / "raw", root / "masks"
    for folder in (raw, masks):
        folder.mkdir()
        (folder / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.10.0"}))
    for session in SESSIONS:
        for run, stack in enumerate((item.stack for item in simulated), start=1):
            image = raw / stack_name(session, run)
            image.parent.mkdir(parents=True, exist_ok=True)
            write_volume(image, np.clip(stack.voxels_kji, 0, None).astype(np.int16), stack.geometry)
            brain_mask = masks / stack_name(session, run).replace("_T2w.nii.gz", "_desc-brain_mask.nii.gz")
            brain_mask.parent.mkdir(parents=True, exist_ok=True)
            write_volume(brain_mask, stack.mask_kji.astype(np.uint8), stack.geometry)
    (raw / "T2w.json").write_text(json.dumps({"RepetitionTime": 1.2, "EchoTime": 0.091, "SliceThickness": 3.2}))
    (raw / "sub-01/anat/sub-01_run-1_T2w.json").write_text(json.dumps({"EchoTime": 0.1}))
    return raw, masks


def run_app(raw: Path, output: Path, masks: Path, *extra: str, model: Path | None = None) -> int:
    """Reconstruct at 1.6 mm with the stacks' masks: without the RRLSRN step, or with ``model`` for it."""
    step = ["--model", str(model)] if model else ["--no-superres"]
    return main(["bids", str(raw), str(output), "participant", "--reconstruct", *step, "--resolution", "1.6",
                 "--device", "cpu", "--mask-from-derivatives", str(masks), *extra])


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory) -> Path:
    """One run over both sessions: the folder holding raw/, masks/ and raw/derivatives/rrlsrn (read only)."""
    root = tmp_path_factory.mktemp("bidsrecon")
    raw, masks = make_datasets(root)
    assert run_app(raw, raw / "derivatives" / "rrlsrn", masks) == 0
    return root


def outputs_of(output: Path) -> list[str]:
    return sorted(path.relative_to(output).as_posix() for path in output.rglob("*")
                  if path.is_file() and "logs" not in path.parts)


def volume_times(output: Path) -> dict[str, int]:
    """Each reconstruction's modification time (ns), by file name: what a skipping rerun leaves alone."""
    return {path.name: path.stat().st_mtime_ns for path in output.rglob("*_desc-rrlsrnsvr_T2w.nii.gz")}


def test_one_volume_its_mask_and_sidecar_per_session_with_bids_sources_and_provenance(reconstructed):
    raw, output = reconstructed / "raw", reconstructed / "raw" / "derivatives" / "rrlsrn"
    assert outputs_of(output) == OUTPUTS
    for session in SESSIONS:
        image = sitk.ReadImage(str(output / f"{session}_desc-rrlsrnsvr_T2w.nii.gz"))
        mask = sitk.ReadImage(str(output / f"{session}_desc-rrlsrnsvrbrain_mask.nii.gz"))
        np.testing.assert_allclose(image.GetSpacing(), (1.6, 1.6, 1.6))
        assert mask.GetSize() == image.GetSize() and sitk.GetArrayFromImage(mask).any()
        record = json.loads((output / f"{session}_desc-rrlsrnsvr_T2w.json").read_text())
        stacks = [stack_name(session, run) for run in (1, 2, 3)]
        mask_uris = [f"bids:masks:{name.replace('_T2w', '_desc-brain_mask')}" for name in stacks]
        assert record["Sources"] == [f"bids:raw:{name}" for name in stacks] + mask_uris
        assert record["Masks"] == mask_uris and record["SkullStripped"] is False
        assert record["RepetitionTime"] == 1.2 and "SliceThickness" not in record, "per-stack geometry left out"
        provenance = record["RRLSRN"]
        assert [entry["SHA256"] for entry in provenance["Input"]] == [sha256_of(raw / name) for name in stacks]
        assert provenance["TemplateStack"] in record["Sources"][:3]
        assert [stack["Source"] for stack in provenance["Stacks"]] == record["Sources"][:3]
        assert [len(stack["Slices"]) for stack in provenance["Stacks"]] == [
            sitk.ReadImage(str(raw / name)).GetSize()[2] for name in stacks]
        assert provenance["Model"] is None and provenance["InPlaneSuperResolution"] is False
        assert provenance["Options"]["reconstruction"]["resolution_mm"] == 1.6
        assert set(provenance["Versions"]) == {"rrlsrn-superres", "torch", "python"}
        assert provenance["Command"][:2] == ["rrlsrn", "bids"] and "--reconstruct" in provenance["Command"]
    first, second = (json.loads((output / f"{session}_desc-rrlsrnsvr_T2w.json").read_text()) for session in SESSIONS)
    assert "EchoTime" not in first and second["EchoTime"] == 0.091, "only the metadata the stacks agree on"


def test_a_rerun_skips_and_a_replaced_stack_redoes_its_session_and_says_so(reconstructed, tmp_path, capsys):
    shutil.copytree(reconstructed, tmp_path / "copy")  # DatasetLinks are relative: the copy stands alone
    raw, masks = tmp_path / "copy" / "raw", tmp_path / "copy" / "masks"
    output, before = raw / "derivatives" / "rrlsrn", volume_times(raw / "derivatives" / "rrlsrn")
    capsys.readouterr()
    assert run_app(raw, output, masks) == 0
    assert "2 sessions: 0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    assert volume_times(output) == before and len(before) == 2

    replaced = raw / stack_name(SESSIONS[1], 2)
    image = sitk.ReadImage(str(replaced))
    sitk.WriteImage(image + 5, str(replaced))  # same name and grid, other content
    assert run_app(raw, output, masks) == 0
    printed = capsys.readouterr().out
    assert "2 sessions: 1 done, 1 skipped, 0 failed" in printed and "sub-02/ses-01/anat: done" in printed
    log = json.loads(sorted((output / "logs").glob("*.json"))[-1].read_text())
    (redone,) = [entry for entry in log["stacks"] if entry["status"] == "done"]
    assert "an input stack changed" in redone["notes"][0]
    record = json.loads((output / f"{SESSIONS[1]}_desc-rrlsrnsvr_T2w.json").read_text())
    assert record["RRLSRN"]["Input"][1]["SHA256"] == sha256_of(replaced)
    after = volume_times(output)
    assert after["sub-01_desc-rrlsrnsvr_T2w.nii.gz"] == before["sub-01_desc-rrlsrnsvr_T2w.nii.gz"], "untouched"
    assert after["sub-02_ses-01_desc-rrlsrnsvr_T2w.nii.gz"] != before["sub-02_ses-01_desc-rrlsrnsvr_T2w.nii.gz"]


def test_a_session_with_one_stack_fails_with_a_clear_message_and_the_others_go_on(reconstructed, tmp_path, capsys):
    raw, masks = tmp_path / "raw", reconstructed / "masks"
    shutil.copytree(reconstructed / "raw", raw, ignore=shutil.ignore_patterns("derivatives"))
    for run in (2, 3):
        (raw / stack_name(SESSIONS[1], run)).unlink()
    output = tmp_path / "out"
    assert run_app(raw, output, masks) == 1
    printed = capsys.readouterr().out
    assert "2 sessions: 1 done, 0 skipped, 1 failed" in printed
    assert "sub-02/ses-01/anat: failed UserInputError: a 3D reconstruction needs at least 2 stacks (got 1)" in printed
    assert not list(output.rglob("sub-02_ses-01_desc-*")), "nothing written for the failed session"
    assert (output / f"{SESSIONS[0]}_desc-rrlsrnsvr_T2w.json").is_file()


def test_the_rrlsrn_step_takes_the_engine_options_and_records_the_model(reconstructed, tmp_path,
                                                                       mrml_tiny_model_path):
    output = tmp_path / "out"
    assert run_app(reconstructed / "raw", output, reconstructed / "masks", "--participant-label", "01",
                   "--views", "1", model=mrml_tiny_model_path) == 0
    record = json.loads((output / f"{SESSIONS[0]}_desc-rrlsrnsvr_T2w.json").read_text())["RRLSRN"]
    assert record["InPlaneSuperResolution"] is True and record["EngineOptions"]["views"] == 1
    assert record["Model"]["SHA256"] == sha256_of(mrml_tiny_model_path) and record["Options"]["views"] == 1


@pytest.mark.parametrize("extra", [["--resolution", "1"], ["--no-superres"]])
def test_reconstruction_options_without_reconstruct_are_refused(reconstructed, tmp_path, capsys, extra):
    assert main(["bids", str(reconstructed / "raw"), str(tmp_path / "out"), "participant", *extra]) == 2
    assert "go with --reconstruct" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bids-validator-deno") is None and not Path(sys.executable).with_name(
    "bids-validator-deno").exists(), reason="bids-validator-deno not installed (pip install bids-validator-deno)")
def test_the_bids_validator_finds_no_error_in_the_reconstructions(reconstructed):
    validator = shutil.which("bids-validator-deno") or str(Path(sys.executable).with_name("bids-validator-deno"))
    output = reconstructed / "raw" / "derivatives" / "rrlsrn"
    run = subprocess.run([validator, str(output), "--format", "json"], capture_output=True, text=True, timeout=300)
    issues = json.loads(run.stdout)["issues"]["issues"]
    errors = [(issue["code"], issue.get("subCode"), issue.get("location")) for issue in issues
              if issue["severity"] == "error"]
    assert errors == []
