"""``rrlsrn report`` end to end on small synthetic volumes with small untrained models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from RRLSRNSuperResLib.cli import main as cli
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.evaluation import simulated_lr
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.io.volumes import write_volume
from RRLSRNSuperResLib.model.artifact import export_torchscript
from RRLSRNSuperResLib.model.network import NetworkConfig, build_network

SPACING_IJK = (1.0, 1.0, 3.0)


def head(shape_kji: tuple[int, int, int], frequency: float) -> tuple[np.ndarray, np.ndarray]:
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape_kji), indexing="ij")
    inside = (j / 0.7) ** 2 + (i / 0.6) ** 2 < 1
    image = 400.0 * inside * (1.0 + 0.3 * np.cos(frequency * j + 2 * k) * np.sin(7 * i)) + 20.0
    return image.astype(np.float32), inside.astype(np.float32)


@pytest.fixture
def volumes(tmp_path: Path) -> list[str]:
    words = []
    masks = []
    for n, frequency in enumerate((7.0, 9.0)):
        image, mask = head((3, 40, 44), frequency)
        geometry = Geometry(size=(44, 40, 3), spacing=SPACING_IJK, origin=(0.0, 0.0, 0.0),
                            direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        write_volume(tmp_path / f"hr{n}.nii.gz", image, geometry)
        write_volume(tmp_path / f"mask{n}.nii.gz", mask, geometry)
        words.append(str(tmp_path / f"hr{n}.nii.gz"))
        masks += ["--mask", str(tmp_path / f"mask{n}.nii.gz")]
    return words + masks


def tiny_model(path: Path, architecture: str) -> str:
    torch.manual_seed(1)
    config = NetworkConfig(architecture=architecture, depth=1, channels=8)
    export_torchscript(build_network(config).state_dict(), config, path)
    return str(path)


def test_report_writes_the_tables_json_and_figures(volumes, tmp_path, capsys):
    model = tiny_model(tmp_path / "rrlsrn.pt", "rrlsrn")
    srcnn = tiny_model(tmp_path / "srcnn.pt", "srcnn")
    out = tmp_path / "report"
    assert cli.main(["report", *volumes, "--out", str(out), "--model", model, "--srcnn", srcnn,
                     "--ablation", f"no_gdl={model}", "--ablation-reference", model,
                     "--device", "cpu", "--precision", "fp32"]) == 0
    report = json.loads((out / "report.json").read_text())
    for degradation, reference in (("bicubic", "cubic"), ("kspace", "sinc")):
        table = report["degradations"][degradation]
        assert table["reference_baseline"] == reference
        assert set(table["methods"]) == {"cubic", "bicubic", "sinc", "srcnn", "rrlsrn"}
        for scores in table["methods"].values():
            for kind in ("psnr", "ssim"):
                stats = scores[kind]
                assert stats["n"] == 2 and stats["ci95"][0] <= stats["mean"] <= stats["ci95"][1]
        # The baselines are the ones `rrlsrn evaluate` scores, volume by volume.
        hr, mask = head((3, 40, 44), 7.0)
        direct = simulated_lr.evaluate_volume(hr, SPACING_IJK, mask, degradation, EngineOptions(
            model=model, device="cpu", precision="fp32", consistency=degradation))  # matched, as the report's default
        first = table["volumes"][0]["psnr"]
        for method, name in (("cubic", "cubic_spline"), ("sinc", "sinc"), ("rrlsrn", "rrlsrn")):
            assert first[method] == pytest.approx(direct["psnr"][name], abs=1e-6)
        gain = table["gain_over_reference"]["rrlsrn"]["psnr_db"]["mean"]
        assert gain == pytest.approx(np.mean([v["psnr"]["rrlsrn"] - v["psnr"][reference] for v in table["volumes"]]))
        # The ablation is the model itself here: the full model gains exactly nothing over it.
        ablation = report["ablations"]["no_gdl"][degradation]
        assert ablation["full_model_gain_db"]["mean"] == pytest.approx(0.0, abs=1e-9)
        assert ablation["component_helps"].startswith("no")
    assert report["ablations"]["no_gdl"]["paper_gain_of_full_model_db"] == 0.1
    assert report["learned_models"] == {"consistency": "matched", "views": 2, "detail": "auto"}
    assert "outputs made consistent with the LR" in (out / "report.md").read_text(encoding="utf-8")
    assert report["ablations"]["no_gdl"]["full_model"] == model
    assert [report["models"][f"rrlsrn_{d}"]["path"] for d in ("bicubic", "kspace")] == [model, model]
    assert report["degradations"]["kspace"]["methods"]["sinc"]["psnr"]["mean"] > \
        report["degradations"]["kspace"]["methods"]["cubic"]["psnr"]["mean"]  # sinc inverts k-space LR
    runtime = report["runtime"]
    assert runtime["device"] == "cpu" and runtime["slices"] == 6
    assert {"cubic", "srcnn", "rrlsrn"} <= set(runtime["methods"])
    assert all(row["seconds_per_slice"] > 0 for row in runtime["methods"].values())
    text = (out / "report.md").read_text()
    assert "### k-space LR" in text and "| SRCNN |" in text and "without GDL" in text
    for degradation in ("bicubic", "kspace"):
        assert (out / f"figure_{degradation}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_refuses_a_malformed_ablation(volumes, tmp_path, capsys):
    assert cli.main(["report", *volumes, "--out", str(tmp_path / "r"), "--ablation", "no_gdl"]) == 2
    assert "NAME=MODEL" in capsys.readouterr().err


def test_report_scale_4_compares_every_method_at_x4(volumes, tmp_path):
    model = tiny_model(tmp_path / "rrlsrn.pt", "rrlsrn")
    srcnn = tiny_model(tmp_path / "srcnn.pt", "srcnn")
    out = tmp_path / "report"
    assert cli.main(["report", *volumes, "--out", str(out), "--model", model, "--srcnn", srcnn, "--scale", "4",
                     "--degradation", "kspace", "--device", "cpu", "--precision", "fp32", "--views", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["scale"] == 4 and report["conventions"]["kspace"]["scale"] == 4
    assert "Scale: x4 in-plane" in (out / "report.md").read_text(encoding="utf-8")
    hr, mask = head((3, 40, 44), 7.0)
    direct = simulated_lr.evaluate_volume(hr, SPACING_IJK, mask, "kspace", EngineOptions(
        model=model, device="cpu", precision="fp32", consistency="kspace", views=1, scale=4))
    assert direct["evaluated_shape_shw"] == [3, 40, 44]
    first = report["degradations"]["kspace"]["volumes"][0]["psnr"]
    for method, name in (("cubic", "cubic_spline"), ("sinc", "sinc"), ("rrlsrn", "rrlsrn")):
        assert first[method] == pytest.approx(direct["psnr"][name], abs=1e-6)
