"""``--adapt``: self-supervised fine-tuning on the input's own slices, its guard, progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from RRLSRNSuperResLib.engine import adaptation
from RRLSRNSuperResLib.engine.options import EngineOptions
from RRLSRNSuperResLib.engine.volume import resolve_model, superresolve
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.resources import sample_mask_path, sample_volume_path


@pytest.fixture(scope="module")
def brain_slices():
    """Eight central slices of the bundled stack cropped to the brain region, normalised-ish, and the spacing."""
    image = sitk.ReadImage(str(sample_volume_path()))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_mask_path()))) > 0.5
    voxels = sitk.GetArrayFromImage(image).astype(np.float32)
    middle = int(np.argmax(mask.sum(axis=(1, 2))))
    return voxels[middle - 4: middle + 4, 100:196, 100:196], image.GetSpacing()


def test_adapted_copy_is_kept_only_when_it_beats_the_generic_model_on_held_out_slices(brain_slices):
    voxels, _ = brain_slices
    model, _ = resolve_model(None)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    normalised = voxels / np.percentile(voxels, 99)
    adapted, outcome = adaptation.adapt_to_scan(model, normalised, 3.0, torch.device("cpu"), None,
                                               lambda fraction, message: None)
    assert outcome.steps > 0 and np.isfinite([outcome.generic_psnr, outcome.adapted_psnr]).all()
    assert outcome.kept == (outcome.adapted_psnr > outcome.generic_psnr)
    assert (adapted is not model) == outcome.kept
    for name, value in model.state_dict().items():  # the generic (cached, shared) model is never touched
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_a_worse_adaptation_is_thrown_away(brain_slices, monkeypatch):
    voxels, _ = brain_slices
    model, _ = resolve_model(None)
    monkeypatch.setattr(adaptation, "LEARNING_RATE", 0.05)  # steps this large wreck a trained model
    monkeypatch.setattr(adaptation, "WARMUP_STEPS", 1)
    kept, outcome = adaptation.adapt_to_scan(model, voxels / np.percentile(voxels, 99), 2.0, torch.device("cpu"),
                                             None, lambda fraction, message: None)
    assert outcome.adapted_psnr < outcome.generic_psnr and not outcome.kept and kept is model
    assert "generic model used" in outcome.describe()


def test_superresolve_adapts_first_with_progress_and_cancel(brain_slices):
    voxels, spacing = brain_slices
    calls = []
    result = superresolve(voxels, spacing, EngineOptions(device="cpu", precision="fp32", adapt_seconds=2.0),
                          progress=lambda fraction, message: calls.append((fraction, message)))
    assert result.voxels.shape == (8, 192, 192)
    assert any(note.startswith("adapted to this scan:") for note in result.notes)
    fractions = [f for f, _ in calls]
    assert all(b >= a for a, b in zip(fractions, fractions[1:])) and fractions[-1] == 1.0
    adapting = [f for f, m in calls if m.startswith("adapting")]
    assert adapting and max(adapting) <= 0.5  # the first half of the bar is the adaptation

    with pytest.raises(SuperResolutionCancelled):
        superresolve(voxels, spacing, EngineOptions(device="cpu", adapt_seconds=30.0),
                     progress=lambda fraction, message: not message.startswith("adapting to this scan: step"))
    with pytest.raises(UserInputError):
        superresolve(voxels[:1], spacing, EngineOptions(device="cpu", adapt_seconds=1.0))


@pytest.mark.parametrize("consistency", ["kspace", "bicubic"])
def test_the_guard_scores_the_output_as_the_engine_delivers_it(brain_slices, consistency):
    """Projected onto its input, each held-out estimate can only come nearer its target (which is
    consistent with that input), so the delivered PSNR is never below the bare network's."""
    voxels, _ = brain_slices
    model, _ = resolve_model(None)
    pairs = adaptation._Pairs(voxels / np.percentile(voxels, 99), torch.device("cpu"), consistency)
    bare = adaptation.held_out_psnr(model, pairs, None)
    delivered = adaptation.held_out_psnr(model, pairs, None, consistency)
    assert delivered > bare + 0.05
