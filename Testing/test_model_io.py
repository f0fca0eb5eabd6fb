"""The model artifact: only TorchScript archives load, the bundled one is checked, shapes are checked."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.model import artifact as model_io
from RRLSRNSuperResLib.resources import bundled_model_card_path, bundled_model_path


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("consistency", ["kspace", "bicubic"])
def test_each_bundled_model_matches_its_card_and_maps_x2(consistency):
    path = bundled_model_path(consistency)
    card = model_io.read_model_card(bundled_model_card_path(consistency))
    assert card["sha256"] == model_io.sha256_of(path) and card["file"] == path.name
    identity = model_io.model_identity(None, consistency)
    assert identity == {"name": card["name"], "path": str(path), "bundled": True, "sha256": card["sha256"]}
    model = model_io.load_model(path)
    assert model(torch.rand(3, 1, 17, 9)).shape == (3, 1, 34, 18)


def test_mri_stacks_and_bicubic_lr_get_their_own_bundled_models():
    """The model fine-tuned on bicubic LR alone serves only LR said to be made that way."""
    assert bundled_model_path() == bundled_model_path("kspace") == bundled_model_path("none")
    assert bundled_model_path("bicubic") != bundled_model_path()
    assert model_io.read_model_card(bundled_model_card_path("bicubic"))["training"]["config"]["kspace_fraction"] == 0.0


def test_a_pickle_is_refused_without_running_its_code(tmp_path):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(tmp_path / "marker")))
    with pytest.raises(UserInputError, match="not a TorchScript"):
        model_io.load_model(evil)
    assert not (tmp_path / "marker").exists()


def test_a_torch_save_checkpoint_is_not_a_model(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(UserInputError, match="TorchScript"):
        model_io.load_model(path)


def test_a_model_that_is_not_x2_is_refused(tmp_path):
    path = tmp_path / "identity.pt"
    torch.jit.script(torch.nn.Identity()).save(str(path))
    with pytest.raises(UserInputError, match="x2"):
        model_io.load_model(path)


def test_a_bundled_model_that_does_not_match_its_card_is_refused(tmp_path, monkeypatch):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"sha256": "0" * 64}))
    monkeypatch.setattr(model_io, "bundled_card_of", lambda path: card)
    with pytest.raises(UserInputError, match="SHA256"):
        model_io.load_model()


BUNDLED_MODELS = ["rrlsrn_x2", "rrlsrn_x2_bicubic", "rrlsrn_x2_kspace", "rrlsrn_x4_level2", "rrlsrn_x4_level2_bicubic",
                  "srcnn_x2"]


def bundled(name: str) -> Path:
    return bundled_model_path().with_name(f"{name}.pt")


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_each_bundled_model_ships_a_state_dict_its_card_checks(name):
    card = model_io.read_model_card(bundled(name).with_suffix(".json"))
    weights = bundled(name).with_name(card["state_dict"]["file"])
    assert weights.suffix == ".pth" and weights.stat().st_size < 20e6
    assert card["state_dict"]["sha256"] == model_io.sha256_of(weights)
    assert torch.__version__ in card["torch_versions_tested"]


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_without_torch_jit_the_bundled_models_load_from_their_state_dicts_with_identical_outputs(name, monkeypatch):
    """Issue 26 item 10: newer torch deprecates torch.jit, which loaded the bundled models."""
    probe = torch.rand(2, 1, 23, 17, generator=torch.Generator().manual_seed(4))
    scripted = model_io.load_model(bundled(name))
    if name == "srcnn_x2" and not isinstance(scripted, torch.jit.ScriptModule):
        pytest.skip(f"torch {torch.__version__} cannot load the SRCNN archive scripted by a newer torch")
    assert isinstance(scripted, torch.jit.ScriptModule), "TorchScript is preferred while torch has it"
    monkeypatch.delattr(torch.jit, "load")

    plain = model_io.load_model(bundled(name))

    assert not isinstance(plain, torch.jit.ScriptModule) and not plain.training
    with torch.no_grad():
        assert torch.equal(plain(probe), scripted(probe))


def test_without_torch_jit_the_engine_gives_the_same_volume_and_a_user_torchscript_file_is_refused(
        monkeypatch, mrml_tiny_model_path):
    import numpy as np
    from RRLSRNSuperResLib.engine import volume as engine
    from RRLSRNSuperResLib.engine.options import EngineOptions

    voxels = np.random.default_rng(2).uniform(0, 300, (2, 20, 18)).astype(np.float32)
    cpu_fp32 = EngineOptions(device="cpu", precision="fp32")
    engine._cached_model.cache_clear()
    with_jit = engine.superresolve(voxels, (1.0, 1.0, 3.0), cpu_fp32).voxels
    monkeypatch.delattr(torch.jit, "load")
    engine._cached_model.cache_clear()
    try:
        without_jit = engine.superresolve(voxels, (1.0, 1.0, 3.0), cpu_fp32).voxels
        with pytest.raises(UserInputError, match="cannot load TorchScript"):
            model_io.load_model(mrml_tiny_model_path)
    finally:
        engine._cached_model.cache_clear()  # the other tests get TorchScript models again
    np.testing.assert_array_equal(without_jit, with_jit)


def test_a_bundled_model_scripted_by_a_newer_torch_loads_from_its_state_dict(monkeypatch, tmp_path):
    """torch 2.8 (Python 3.9, Slicer 5.8) cannot load the SRCNN archive scripted by torch 2.13."""
    def unknown_operator(*args, **kwargs):
        raise RuntimeError("Unknown builtin op: aten::_upsample_lanczos2d_aa")

    probe = torch.rand(1, 1, 15, 11, generator=torch.Generator().manual_seed(5))
    scripted = model_io.load_model(bundled("srcnn_x2"))
    monkeypatch.setattr(torch.jit, "load", unknown_operator)

    plain = model_io.load_model(bundled("srcnn_x2"))

    assert not isinstance(plain, torch.jit.ScriptModule)
    with torch.no_grad():
        assert torch.equal(plain(probe), scripted(probe))
    with pytest.raises(UserInputError, match="could not be loaded as TorchScript"):
        model_io.load_model(shutil.copy(bundled("srcnn_x2"), tmp_path))  # not bundled: nothing to fall back to


def test_at_x4_the_bundled_models_identity_names_its_second_level_too():
    """Provenance (evaluate, report, BIDS sidecars) must say which second level ran at x4."""
    from RRLSRNSuperResLib.bids.app import sidecar_model
    from RRLSRNSuperResLib.resources import bundled_second_level_path

    for consistency in ("kspace", "bicubic"):
        identity = model_io.model_identity(None, consistency, scale=4)
        second = bundled_second_level_path(consistency)
        assert identity["second_level"]["sha256"] == model_io.read_model_card(second.with_suffix(".json"))["sha256"]
        assert identity["second_level"]["bundled"] and identity["second_level"]["path"] == str(second)
        assert sidecar_model(None, consistency, 4)["SecondLevel"]["File"] == second.name
    assert "second_level" not in model_io.model_identity(None, "kspace", scale=2)
    given = bundled_model_path()
    assert "second_level" not in model_io.model_identity(given, "kspace", scale=4), "a given model runs both levels"
    assert "SecondLevel" not in sidecar_model(given, "kspace", 4)
