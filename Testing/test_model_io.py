"""The model artifact: only TorchScript archives load, the bundled one is checked, shapes are checked."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.model import artifact as model_io
from RRLSRNSuperResLib.resources import bundled_model_path


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_bundled_model_matches_its_card_and_maps_x2():
    card = model_io.read_model_card()
    assert card["sha256"] == model_io.sha256_of(bundled_model_path())
    model = model_io.load_model()
    assert model(torch.rand(3, 1, 17, 9)).shape == (3, 1, 34, 18)


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
    monkeypatch.setattr(model_io, "bundled_model_card_path", lambda: card)
    with pytest.raises(UserInputError, match="SHA256"):
        model_io.load_model()
