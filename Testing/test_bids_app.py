"""``rrlsrn bids``: BIDS derivatives with provenance, selection, skip on rerun, failures and Ctrl-C.

The dataset is made in a temporary folder from crops of the bundled stack: two subjects, one
with a session. The tiny untrained network keeps it fast; the bundled model's identity is
checked where it matters (the sidecar's SHA256).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from RRLSRNSuperResLib.model.artifact import sha256_of
from RRLSRNSuperResLib.model.precision import cpu_runs_bf16_natively
from RRLSRNSuperResLib.resources import sample_mask_path, sample_volume_path

pytest.importorskip("bids")
AUTO_ON_CPU = "bf16" if cpu_runs_bf16_natively() else "fp32"

STACKS = ("sub-01/anat/sub-01_run-1_T2w.nii.gz", "sub-01/anat/sub-01_run-2_T2w.nii.gz",
          "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz")
# BIDS derivative file names: key-value entities (alphanumeric labels), desc last, then the suffix.
DERIVATIVE_NAME = re.compile(r"^sub-[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?(_[a-z]+-[A-Za-z0-9]+)*"
                             r"_desc-[A-Za-z0-9]+_(T2w|mask)\.(nii\.gz|json)$")


def crop(path: Path, first_slice: int, slices: int, side: int) -> sitk.Image:
    """A centred in-plane crop of some slices; RegionOfInterest keeps it in place in patient space."""
    image = sitk.ReadImage(str(path))
    start = [(image.GetSize()[0] - side) // 2, (image.GetSize()[1] - side) // 2, first_slice]
    return sitk.RegionOfInterest(image, [side, side, slices], start)


def make_dataset(root: Path, stacks=STACKS, side: int = 48, slices: int = 3) -> Path:
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.10.0"}))
    for index, relative in enumerate(stacks):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(crop(sample_volume_path(), 6 + index % 8, slices, side), str(root / relative))
    return root


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "raw")


def run_app(dataset: Path, output: Path, model: Path, *extra: str) -> int:
    return main(["bids", str(dataset), str(output), "participant", "--device", "cpu", "--model", str(model), *extra])


def outputs_of(output: Path) -> list[str]:
    return sorted(path.relative_to(output).as_posix() for path in output.rglob("*")
                  if path.is_file() and "logs" not in path.parts)


def test_derivatives_have_bids_names_the_x2_grid_and_sidecars_with_provenance(dataset, tmp_path,
                                                                               mrml_tiny_model_path, capsys):
    output = tmp_path / "derivatives" / "rrlsrn"
    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    assert outputs_of(output) == sorted([
        ".bidsignore", "README.md", "dataset_description.json",
        "sub-01/anat/sub-01_run-1_desc-rrlsrnx2_T2w.json", "sub-01/anat/sub-01_run-1_desc-rrlsrnx2_T2w.nii.gz",
        "sub-01/anat/sub-01_run-2_desc-rrlsrnx2_T2w.json", "sub-01/anat/sub-01_run-2_desc-rrlsrnx2_T2w.nii.gz",
        "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnx2_T2w.json",
        "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnx2_T2w.nii.gz"])
    for relative in outputs_of(output)[3:]:
        assert DERIVATIVE_NAME.match(Path(relative).name), relative

    for source in STACKS:
        name = Path(source).name.replace("_T2w.nii.gz", "_desc-rrlsrnx2_T2w")
        image = sitk.ReadImage(str(output / Path(source).parent / f"{name}.nii.gz"))
        original = sitk.ReadImage(str(dataset / source))
        assert image.GetSize() == (96, 96, 3)
        np.testing.assert_allclose(image.GetSpacing(), np.multiply(original.GetSpacing(), [0.5, 0.5, 1.0]))
        np.testing.assert_allclose(image.GetDirection(), original.GetDirection(), atol=1e-6)
        # x2 grid: output voxel (0, 0) is a quarter of an input voxel before input voxel (0, 0).
        np.testing.assert_allclose(image.TransformContinuousIndexToPhysicalPoint((0.5, 0.5, 0.0)),
                                   original.GetOrigin(), atol=1e-4)
        record = json.loads((output / Path(source).parent / f"{name}.json").read_text())
        assert record["Sources"] == [f"bids:raw:{source}"]
        rrlsrn = record["RRLSRN"]
        assert rrlsrn["Model"]["SHA256"] == sha256_of(mrml_tiny_model_path)
        assert set(rrlsrn["Versions"]) == {"rrlsrn-superres", "torch", "python"}
        assert rrlsrn["Device"] == "cpu" and rrlsrn["Precision"] == AUTO_ON_CPU and rrlsrn["Seconds"] >= 0
        assert rrlsrn["Command"][:3] == ["rrlsrn", "bids", str(dataset)] and "AcquisitionHandling" in rrlsrn

    description = json.loads((output / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert {"Name", "Version"} <= set(description["GeneratedBy"][0])
    assert (output / description["DatasetLinks"]["raw"]).resolve() == dataset.resolve(), "relative: portable"
    assert description["SourceDatasets"] == [{"URL": "bids:raw:"}]
    assert str(tmp_path) not in json.dumps(description), "no machine path in the description"
    assert (output / ".bidsignore").read_text() == "logs/\n"
    assert "3 stacks: 3 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_pybids_indexes_the_output_as_a_derivatives_dataset(dataset, tmp_path, mrml_tiny_model_path):
    from bids import BIDSLayout

    output = tmp_path / "derivatives" / "rrlsrn"
    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    layout = BIDSLayout(str(dataset), derivatives=str(output), validate=False)
    found = layout.get(scope="derivatives", desc="rrlsrnx2", suffix="T2w", extension=".nii.gz")
    assert sorted((f.entities["subject"], f.entities.get("session")) for f in found) == [
        ("01", None), ("01", None), ("02", "01")]


def test_the_bundled_model_is_named_by_its_sha256(dataset, tmp_path):
    from RRLSRNSuperResLib.model.artifact import read_model_card

    output = tmp_path / "out"
    assert main(["bids", str(dataset), str(output), "participant", "--device", "cpu", "--participant-label", "02"]) == 0
    record = json.loads(next(output.rglob("*_T2w.json")).read_text())
    assert record["RRLSRN"]["Model"]["SHA256"] == read_model_card()["sha256"] == sha256_of(
        Path(sample_volume_path()).parent.parent / "Models" / "rrlsrn_x2.pt")


def test_participant_label_selects_with_or_without_prefix(dataset, tmp_path, mrml_tiny_model_path, capsys):
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "sub-02") == 0
    assert [path for path in outputs_of(output) if path.endswith(".nii.gz")] == [
        "sub-02/ses-01/anat/sub-02_ses-01_desc-rrlsrnx2_T2w.nii.gz"]
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "01", "--session-label", "01") == 2
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "07") == 2
    assert "no participant 07" in capsys.readouterr().err


def test_a_rerun_skips_finished_work_and_redoes_it_when_options_change(dataset, tmp_path, mrml_tiny_model_path,
                                                                     capsys):
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    images = sorted(output.rglob("*_T2w.nii.gz"))
    stamps = [path.stat().st_mtime_ns for path in images]
    capsys.readouterr()

    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    assert "0 done, 3 skipped" in capsys.readouterr().out
    assert [path.stat().st_mtime_ns for path in images] == stamps

    assert run_app(dataset, output, mrml_tiny_model_path, "--plane", "k") == 0  # other options: other numbers
    assert "3 done, 0 skipped" in capsys.readouterr().out
    assert run_app(dataset, output, mrml_tiny_model_path, "--overwrite", "--participant-label", "01") == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    logs = sorted((output / "logs").glob("*.json"))
    assert len(logs) == 4 and json.loads(logs[-1].read_text())["summary"] == {"done": 2, "skipped": 0, "failed": 0}


def test_replacing_a_raw_stack_redoes_exactly_that_stack_and_says_so(dataset, tmp_path, mrml_tiny_model_path,
                                                                     capsys):
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    replaced = dataset / STACKS[1]
    sitk.WriteImage(crop(sample_volume_path(), 12, 3, 48), str(replaced))  # same name, other slices
    capsys.readouterr()

    assert run_app(dataset, output, mrml_tiny_model_path) == 0
    printed = capsys.readouterr().out
    assert "1 done, 2 skipped" in printed and f"{STACKS[1]}: done" in printed
    log = json.loads(sorted((output / "logs").glob("*.json"))[-1].read_text())
    redone = [entry for entry in log["stacks"] if entry["status"] == "done"]
    assert [entry["source"] for entry in redone] == [STACKS[1]] and "the input changed" in redone[0]["notes"][0]
    record = json.loads(next(output.rglob("sub-01_run-2_desc-rrlsrnx2_T2w.json")).read_text())
    assert record["RRLSRN"]["Input"]["SHA256"] == sha256_of(replaced)


def test_the_raw_acquisition_metadata_is_carried_into_the_sidecar(tmp_path, mrml_tiny_model_path):
    dataset = make_dataset(tmp_path / "raw")
    (dataset / "T2w.json").write_text(json.dumps({"RepetitionTime": 1.2, "MagneticFieldStrength": 1.5}))
    (dataset / "sub-01/anat/sub-01_run-1_T2w.json").write_text(json.dumps({"EchoTime": 0.091}))
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "01") == 0
    record = json.loads(next(output.rglob("sub-01_run-1_desc-rrlsrnx2_T2w.json")).read_text())
    assert (record["RepetitionTime"], record["MagneticFieldStrength"], record["EchoTime"]) == (1.2, 1.5, 0.091)
    assert record["SkullStripped"] is False


@pytest.mark.skipif(shutil.which("bids-validator-deno") is None and not Path(sys.executable).with_name(
    "bids-validator-deno").exists(), reason="bids-validator-deno not installed (pip install bids-validator-deno)")
def test_the_bids_validator_finds_no_error_in_the_derivatives(tmp_path, mrml_tiny_model_path):
    stacks = ("sub-01/anat/sub-01_run-1_T2w.nii.gz", "sub-01/anat/sub-01_run-2_T2w.nii.gz",
              "sub-02/ses-01/anat/sub-02_ses-01_run-1_T2w.nii.gz", "sub-02/ses-02/anat/sub-02_ses-02_run-1_T2w.nii.gz")
    dataset = make_dataset(tmp_path / "raw", stacks)
    (dataset / "T2w.json").write_text(json.dumps({"RepetitionTime": 1.2, "EchoTime": 0.091}))
    output = dataset / "derivatives" / "rrlsrn"
    assert run_app(dataset, output, mrml_tiny_model_path) == 0

    validator = shutil.which("bids-validator-deno") or str(Path(sys.executable).with_name("bids-validator-deno"))
    run = subprocess.run([validator, str(output), "--format", "json"], capture_output=True, text=True, timeout=300)
    issues = json.loads(run.stdout)["issues"]["issues"]
    errors = [(issue["code"], issue.get("subCode"), issue.get("location")) for issue in issues
              if issue["severity"] == "error"]
    assert errors == []


def test_one_bad_stack_is_reported_and_the_others_go_on(dataset, tmp_path, mrml_tiny_model_path, capsys):
    bad = dataset / "sub-01/anat/sub-01_run-2_T2w.nii.gz"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path, "--jobs", "2") == 1
    printed = capsys.readouterr().out
    assert "sub-01_run-2_T2w.nii.gz: failed" in printed and "2 done, 0 skipped, 1 failed" in printed
    log = json.loads(next((output / "logs").glob("*.json")).read_text())
    assert log["summary"] == {"done": 2, "skipped": 0, "failed": 1}
    (failed,) = [entry for entry in log["stacks"] if entry["status"] == "failed"]
    assert failed["source"] == "sub-01/anat/sub-01_run-2_T2w.nii.gz" and failed["error"] and failed["traceback"]
    assert not list(output.rglob("sub-01_run-2_desc-*")), "nothing is written for the failed stack"


def test_masks_from_derivatives_restrict_the_network_and_go_to_the_x2_grid(dataset, tmp_path, mrml_tiny_model_path):
    masks = tmp_path / "masks"
    relative = STACKS[2]
    target = masks / Path(relative).parent / Path(relative).name.replace("_T2w.nii.gz", "_desc-brain_mask.nii.gz")
    target.parent.mkdir(parents=True)
    sitk.WriteImage(crop(sample_mask_path(), 6 + 2, 3, 48), str(target))  # the grid of STACKS[2]
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "02",
                   "--mask-from-derivatives", str(masks)) == 0
    mask = sitk.ReadImage(str(output / "sub-02/ses-01/anat/sub-02_ses-01_desc-brain_mask.nii.gz"))
    assert mask.GetSize() == (96, 96, 3) and sitk.GetArrayFromImage(mask).any()
    record = json.loads(next(output.rglob("*_T2w.json")).read_text())
    assert record["Sources"][1] == record["RRLSRN"]["MaskSource"] == \
        "bids:masks:sub-02/ses-01/anat/sub-02_ses-01_desc-brain_mask.nii.gz"
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "01",
                   "--mask-from-derivatives", str(masks)) == 1, "a stack without its mask fails, loudly"


def test_ctrl_c_stops_with_one_line_and_leaves_no_partial_file(tmp_path, mrml_tiny_model_path):
    many = tuple(f"sub-{n:02d}/anat/sub-{n:02d}_T2w.nii.gz" for n in range(1, 41))
    dataset = make_dataset(tmp_path / "raw", many, side=96, slices=6)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "RRLSRNSuperResLib.cli.main",
               "bids", str(dataset), str(output), "participant", "--device", "cpu", "--model",
               str(mrml_tiny_model_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("rrlsrn bids: indexing"), "says at once what it is doing"
    first = process.stdout.readline()  # the first stack is done: interrupt in the middle of the run
    assert first.startswith("[1/40]"), first + process.stderr.read()
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGINT, first + rest + errors  # ends by SIGINT: shells report 130
    assert errors.strip().splitlines() == ["error: interrupted; no partially written file was left "
                                           "(finished outputs are kept)"]
    hidden = [path.name for path in output.rglob(".*") if path != output / ".bidsignore"]
    assert hidden == [], f"a temporary file was left behind: {rest}"
    images = sorted(output.rglob("*_T2w.nii.gz"))
    assert 1 <= len(images) < 40
    for image in images:
        sitk.ReadImage(str(image))  # complete
    log = json.loads(next((output / "logs").glob("*.json")).read_text())
    assert log["interrupted"] is True


def test_scale_4_writes_x4_derivatives_beside_the_x2_ones(dataset, tmp_path, mrml_tiny_model_path):
    output = tmp_path / "out"
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "02") == 0
    assert run_app(dataset, output, mrml_tiny_model_path, "--participant-label", "02", "--scale", "4") == 0
    folder = output / "sub-02/ses-01/anat"
    assert sorted(path.name for path in folder.iterdir()) == [
        "sub-02_ses-01_desc-rrlsrnx2_T2w.json", "sub-02_ses-01_desc-rrlsrnx2_T2w.nii.gz",
        "sub-02_ses-01_desc-rrlsrnx4_T2w.json", "sub-02_ses-01_desc-rrlsrnx4_T2w.nii.gz"]
    image = sitk.ReadImage(str(folder / "sub-02_ses-01_desc-rrlsrnx4_T2w.nii.gz"))
    original = sitk.ReadImage(str(dataset / STACKS[2]))
    assert image.GetSize() == (192, 192, 3)
    np.testing.assert_allclose(image.GetSpacing(), np.multiply(original.GetSpacing(), [0.25, 0.25, 1.0]))
    np.testing.assert_allclose(image.TransformContinuousIndexToPhysicalPoint((1.5, 1.5, 0.0)), original.GetOrigin(),
                               atol=1e-4)
    record = json.loads((folder / "sub-02_ses-01_desc-rrlsrnx4_T2w.json").read_text())
    assert record["RRLSRN"]["Options"]["scale"] == 4 and record["Description"].startswith("x4 in-plane")
    assert json.loads((folder / "sub-02_ses-01_desc-rrlsrnx2_T2w.json").read_text())["RRLSRN"]["Options"]["scale"] == 2


def test_reconstruct_refuses_scale_4(dataset, tmp_path, mrml_tiny_model_path, capsys):
    assert run_app(dataset, tmp_path / "out", mrml_tiny_model_path, "--reconstruct", "--scale", "4") == 2
    assert "leave --scale at 2" in capsys.readouterr().err
