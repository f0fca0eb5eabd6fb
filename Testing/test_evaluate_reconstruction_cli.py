"""``rrlsrn evaluate-reconstruction`` end to end on a tiny volume, its user errors, and the real-data scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from RRLSRNSuperResLib.cli import main as cli
from RRLSRNSuperResLib.evaluation.leave_one_out import compare
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.io.volumes import write_volume
from scipy.spatial.transform import Rotation

SIZE = 40
SPACING_MM = 1.6


def tiny_head(tmp_path):
    """A 40^3 volume at 1.6 mm, oblique, off-origin: an ellipsoid 'brain' with inner structure, and its mask."""
    kk, jj, ii = np.meshgrid(*(np.linspace(-1, 1, SIZE),) * 3, indexing="ij")
    radius = (ii / 0.75) ** 2 + (jj / 0.65) ** 2 + (kk / 0.6) ** 2
    voxels = (radius < 1) * (300.0 + 120.0 * np.cos(5 * ii) * np.sin(4 * jj + 2 * kk) + 200.0 * (radius < 0.2))
    geometry = Geometry(size=(SIZE,) * 3, spacing=(SPACING_MM,) * 3, origin=(-30.0, 25.0, -12.0),
                        direction=tuple(Rotation.from_rotvec([0.1, -0.2, 0.15]).as_matrix().reshape(-1)))
    write_volume(tmp_path / "head.nii.gz", voxels.astype(np.float32), geometry)
    write_volume(tmp_path / "head_mask.nii.gz", (radius < 1).astype(np.float32), geometry)
    return tmp_path / "head.nii.gz", tmp_path / "head_mask.nii.gz"


def test_runs_end_to_end_and_writes_every_method(tmp_path, capsys):
    volume, mask = tiny_head(tmp_path)
    out = tmp_path / "scores.json"
    status = cli.main(["evaluate-reconstruction", str(volume), "--mask", str(mask), "--motion", "moderate",
                       "--no-superres-variant", "--seed", "2", "--json", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    scores = report["volumes"][0]
    assert set(scores["methods"]) >= {"naive_fusion", "best_stack_linear", "best_stack_cubic", "reconstruction",
                                      "no_motion_correction"}
    assert "with_rrlsrn" not in scores["methods"] and "with_zero_fill" not in scores["methods"]
    assert scores["rrlsrn_gain_db"] == {}
    for method in scores["methods"].values():
        assert 5.0 < method["psnr"] < 60.0 and 0.0 < method["ssim"] <= 1.0
    methods = scores["methods"]
    gain = scores["psnr_gain_over_naive_db"]["reconstruction"]
    assert gain == pytest.approx(methods["reconstruction"]["psnr"] - methods["naive_fusion"]["psnr"])
    poses = scores["methods"]["reconstruction"]["pose_errors"]
    assert poses["slices"] == sum(stack["slices_with_brain"] for stack in scores["stacks"])
    assert poses["slices"] < sum(stack["shape_kji"][0] for stack in scores["stacks"])
    assert [stack["spacing_ijk"] for stack in scores["stacks"]] == [pytest.approx([3.2, 3.2, 6.4])] * 3
    assert report["settings"]["simulation"]["motion"]["drift_rotation_deg"] == 2.0
    assert "reconstruction" in capsys.readouterr().out


def test_without_volumes_or_with_unpaired_masks_it_says_what_to_give(tmp_path, capsys):
    assert cli.main(["evaluate-reconstruction"]) == 2
    assert "give at least one 3D VOLUME" in capsys.readouterr().err
    volume, mask = tiny_head(tmp_path)
    assert cli.main(["evaluate-reconstruction", "--leave-one-out", str(volume), str(volume), str(volume)]) == 2
    assert "one --mask per stack" in capsys.readouterr().err


def test_prediction_scores_ignore_gain_and_offset_but_not_structure():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(3, 10, 12)) * 50 + 200
    mask = np.ones(real.shape, dtype=bool)
    exact = compare(real, 0.5 * real - 7.0, mask)
    assert exact["ncc"] == pytest.approx(1.0) and exact["psnr"] > 200.0
    noisy = compare(real, real + rng.normal(size=real.shape) * 5.0, mask)
    peak = real.max() - real.min()
    assert noisy["psnr"] == pytest.approx(20 * math.log10(peak / 5.0), abs=0.3)
    assert 0.98 < noisy["ncc"] < 1.0


def test_leave_one_out_runs_on_three_stacks_and_writes_json(tmp_path, capsys):
    import SimpleITK as sitk
    from RRLSRNSuperResLib.reconstruction import motion, simulation

    volume, mask = tiny_head(tmp_path)
    simulated = simulation.simulate_stacks(sitk.ReadImage(str(volume)), sitk.ReadImage(str(mask)),
                                           simulation.SimulationSettings(motion=motion.MOTION_LEVELS["none"],
                                                                         in_plane_factor=2.0, slice_factor=3.0))
    arguments = ["evaluate-reconstruction", "--resolution", "2.4", "--json", str(tmp_path / "loo.json"),
                 "--leave-one-out"]
    masks = []
    for item in simulated:
        stack = item.stack
        path, mask_path = tmp_path / f"{stack.name}.nii.gz", tmp_path / f"{stack.name}_mask.nii.gz"
        write_volume(path, stack.voxels_kji, stack.geometry)
        write_volume(mask_path, stack.mask_kji.astype(np.float32), stack.geometry)
        arguments.append(str(path))
        masks += ["--mask", str(mask_path)]
    assert cli.main(arguments + masks) == 0
    report = json.loads((tmp_path / "loo.json").read_text())
    assert [r["left_out"] for r in report["results"]] == [item.stack.name for item in simulated]
    for result in report["results"]:
        assert 0.5 < result["reconstruction"]["ncc"] <= 1.0 and result["reconstruction"]["pixels"] > 100
        assert result["ncc_gain"] == pytest.approx(result["reconstruction"]["ncc"] - result["naive_fusion"]["ncc"])
    assert isinstance(report["beaten"], int)
    assert "left-out stack" in capsys.readouterr().out
