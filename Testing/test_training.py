"""Network, losses, training pack, training loop with resume, and TorchScript export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from RRLSRNSuperResLib.model.artifact import export_torchscript, load_model
from RRLSRNSuperResLib.model.losses import charbonnier_loss, gradient_difference_loss, rrlsrn_loss
from RRLSRNSuperResLib.model.network import RRLSRN, NetworkConfig
from RRLSRNSuperResLib.training.data import TrainingVolume, inplane_slice_axes, read_pack, write_pack
from RRLSRNSuperResLib.training.loop import TrainingConfig, load_checkpoint, train


def test_image_branch_starts_as_bilinear_interpolation_on_the_x2_grid():
    model = RRLSRN(NetworkConfig(depth=1, channels=4))
    image = torch.rand(1, 1, 12, 10)
    bilinear = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
    upsampled = model.upsample_image(image)
    torch.testing.assert_close(upsampled[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1])


def test_depth_is_configurable_and_image_branch_can_be_frozen():
    deep, shallow = RRLSRN(NetworkConfig(depth=10)), RRLSRN(NetworkConfig(depth=2))
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (deep, shallow)]
    assert convs == [12, 4]  # input conv + depth + residual conv
    assert not RRLSRN(NetworkConfig(image_branch=False)).upsample_image.weight.requires_grad
    assert deep(torch.rand(2, 1, 8, 6)).shape == (2, 1, 16, 12)


def test_losses():
    x = torch.rand(2, 1, 8, 8)
    assert charbonnier_loss(x, x).item() == pytest.approx(1e-3)
    assert charbonnier_loss(x, x + 0.5).item() == pytest.approx(np.sqrt(0.25 + 1e-6), rel=1e-5)
    assert gradient_difference_loss(x, x + 3.0).item() == pytest.approx(0.0, abs=1e-6)  # a shift keeps edges
    assert gradient_difference_loss(x, torch.zeros_like(x)).item() > 0
    assert rrlsrn_loss(x, x * 0.5).item() == pytest.approx(
        charbonnier_loss(x, x * 0.5).item() + gradient_difference_loss(x, x * 0.5).item(), rel=1e-6)
    assert rrlsrn_loss(x, x * 0.5, gdl_weight=0).item() == pytest.approx(charbonnier_loss(x, x * 0.5).item())


def test_paper_recipe_is_reproducible_as_a_configuration():
    paper = TrainingConfig.paper()
    assert (paper.optimizer, paper.learning_rate, paper.sgd_momentum, paper.weight_decay) == ("sgd", 1e-5, 0.9, 1e-4)
    assert (paper.batch, paper.patch, paper.kspace_fraction) == (64, 128, 0.0)
    assert TrainingConfig.from_dict(paper.to_dict()) == paper


def test_slicing_axes_follow_the_fine_spacings():
    assert inplane_slice_axes((0.8, 0.8, 0.8)) == (0, 1, 2)
    assert inplane_slice_axes((0.41, 0.41, 1.5)) == (0,)  # numpy axis 0 is k


def smooth_volumes(count: int, role: str) -> list[TrainingVolume]:
    rng = np.random.default_rng(len(role))
    volumes = []
    for n in range(count):
        k, j, i = np.meshgrid(*(np.linspace(0, 1, s) for s in (24, 40, 40)), indexing="ij")
        voxels = 0.5 + 0.4 * np.sin(6 * i + 3 * n) * np.cos(5 * j) + 0.05 * rng.standard_normal((24, 40, 40))
        volumes.append(TrainingVolume(f"{role}{n}", f"subject-{role}{n}", role, voxels.astype(np.float32), (0, 1, 2)))
    return volumes


def test_pack_round_trip_keeps_voxels_to_the_quantisation_step(tmp_path):
    volumes = smooth_volumes(2, "train")
    write_pack(volumes, tmp_path / "pack.npz")
    back = read_pack(tmp_path / "pack.npz")
    assert [(v.name, v.subject, v.role, v.slice_axes) for v in back] == [
        (v.name, v.subject, v.role, v.slice_axes) for v in volumes]
    for original, restored in zip(volumes, back):
        assert np.abs(original.voxels - restored.voxels).max() <= 0.5 / 4000 + 1e-6


def test_training_improves_validation_resumes_and_exports(tmp_path):
    volumes = smooth_volumes(2, "train") + smooth_volumes(1, "val")
    config = TrainingConfig(network=NetworkConfig(depth=1, channels=8), steps=30, batch=4, patch=16,
                            learning_rate=1e-3)
    best = train(volumes, config, tmp_path, torch.device("cpu"), validate_every=10, log=lambda line: None)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 30 and [h["step"] for h in state["history"]] == [10, 20, 30]
    losses = [h["loss"] for h in state["history"]]
    assert all(loss > 0 for loss in losses), "the mean loss of the steps since the last record, however few"
    assert losses[-1] < losses[0]

    longer = TrainingConfig(**{**config.__dict__, "steps": 40})
    train(volumes, longer, tmp_path, torch.device("cpu"), resume=True, validate_every=10, log=lambda line: None)
    resumed = load_checkpoint(tmp_path / "last.pt")
    assert resumed["step"] == 30, "resume keeps the checkpoint's own schedule"

    best_state = load_checkpoint(best)
    export_torchscript(best_state["model"], best_state["config"].network, tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")
    assert model(torch.rand(1, 1, 6, 6)).shape == (1, 1, 12, 12)


def test_resume_continues_an_interrupted_run(tmp_path):
    volumes = smooth_volumes(1, "train") + smooth_volumes(1, "val")
    config = TrainingConfig(network=NetworkConfig(depth=1, channels=4), steps=20, batch=2, patch=16)
    train(volumes, config, tmp_path, torch.device("cpu"), validate_every=5, time_limit_s=0.0, log=lambda line: None)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1
    train(volumes, config, tmp_path, torch.device("cpu"), resume=True, validate_every=5, log=lambda line: None)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 20


def test_train_command_builds_a_pack_from_a_list_of_volumes_and_exports(tmp_path, capsys):
    import SimpleITK as sitk
    from RRLSRNSuperResLib.cli.main import main

    paths = []
    for n, volume in enumerate(smooth_volumes(2, "train") + smooth_volumes(1, "val")):
        image = sitk.GetImageFromArray(volume.voxels * 500)
        image.SetSpacing((0.8, 0.8, 0.8))
        paths.append(tmp_path / f"subject{n}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    run = tmp_path / "run"
    assert main(["train", "--volumes", str(paths[0]), str(paths[1]), "--val-volumes", str(paths[2]),
                 "--pack", str(tmp_path / "pack.npz"), "--out", str(run), "--device", "cpu", "--steps", "4",
                 "--batch", "2", "--patch", "16", "--depth", "1", "--channels", "4", "--validate-every", "2"]) == 0
    assert [v.role for v in read_pack(tmp_path / "pack.npz")] == ["train", "train", "val"]
    assert load_model(run / "rrlsrn_x2.pt")(torch.rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)
    assert main(["train", "--volumes", str(paths[0]), "--pack", str(tmp_path / "p2.npz"),
                 "--out", str(run)]) == 2
    assert "--val-volumes" in capsys.readouterr().err


def test_fine_tuning_starts_from_the_given_model_and_trains_srcnn_too(tmp_path):
    volumes = smooth_volumes(1, "train") + smooth_volumes(1, "val")
    network = NetworkConfig(depth=1, channels=4)
    start = RRLSRN(network)
    export_torchscript(start.state_dict(), network, tmp_path / "start.pt")
    config = TrainingConfig(network=network, steps=1, batch=4, patch=16, learning_rate=0.0,
                            final_learning_rate=0.0, initial_model=str(tmp_path / "start.pt"),
                            acquisition_fraction=0.5, kspace_fraction=0.25)
    train(volumes, config, tmp_path / "tuned", torch.device("cpu"), validate_every=1, log=lambda line: None)
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")["model"]
    for name, value in start.state_dict().items():
        torch.testing.assert_close(tuned[name], value)  # learning rate 0: still the initial model

    srcnn = TrainingConfig(network=NetworkConfig(architecture="srcnn", channels=8), steps=2, batch=4, patch=16)
    train(volumes, srcnn, tmp_path / "srcnn", torch.device("cpu"), validate_every=1, log=lambda line: None)
    export_torchscript(load_checkpoint(tmp_path / "srcnn" / "last.pt")["model"], srcnn.network,
                       tmp_path / "srcnn.pt")
    assert load_model(tmp_path / "srcnn.pt")(torch.rand(1, 1, 6, 5)).shape == (1, 1, 12, 10)


def test_batch_shares_of_the_three_degradations():
    from RRLSRNSuperResLib.training.loop import batch_degradations

    assert batch_degradations(TrainingConfig(kspace_fraction=0.25, acquisition_fraction=0.5)) == [
        "bicubic", "kspace", "acquisition", "acquisition"]
    with pytest.raises(ValueError):
        batch_degradations(TrainingConfig(kspace_fraction=0.75, acquisition_fraction=0.5))


def test_checkpoints_are_chosen_by_the_degradations_they_are_trained_on():
    """A bicubic-only model (the paper's recipe) is chosen on bicubic LR, a k-space-only one on k-space LR,
    a mixed one on the mean."""
    from RRLSRNSuperResLib.training.loop import selection_gain

    record = {"val_gain_bicubic_db": 8.0, "val_gain_kspace_db": -3.0, "val_gain_mean": 2.5}
    assert selection_gain(record, TrainingConfig.paper()) == 8.0
    assert selection_gain(record, TrainingConfig(kspace_fraction=0.0)) == 8.0
    assert selection_gain(record, TrainingConfig()) == 2.5
    assert selection_gain(record, TrainingConfig(kspace_fraction=0.0, acquisition_fraction=0.25)) == 2.5
    assert selection_gain(record, TrainingConfig(kspace_fraction=1.0)) == record["val_gain_kspace_db"]
    assert selection_gain(record, TrainingConfig(kspace_fraction=0.5, acquisition_fraction=0.5)) == \
        record["val_gain_kspace_db"]


@pytest.mark.parametrize("bare_loss_weight", [0.0, 1.0])
def test_consistent_output_training_validates_the_projected_output(tmp_path, bare_loss_weight):
    """With ``consistent_output`` the loss and the validation see the output the engine delivers."""
    from RRLSRNSuperResLib.training.loop import validation_gain, validation_slices

    volumes = smooth_volumes(1, "train") + smooth_volumes(1, "val")
    network = NetworkConfig(depth=1, channels=4)
    config = TrainingConfig(network=network, steps=4, batch=4, patch=16, consistent_output=True,
                            bare_loss_weight=bare_loss_weight)
    train(volumes, config, tmp_path, torch.device("cpu"), validate_every=2, log=lambda line: None)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["config"].consistent_output and [h["step"] for h in state["history"]] == [2, 4]
    assert state["config"].bare_loss_weight == bare_loss_weight
    model = RRLSRN(network)
    model.load_state_dict(state["model"])
    slices = validation_slices([v for v in volumes if v.role == "val"])
    free = validation_gain(model, slices, torch.device("cpu"))
    projected = validation_gain(model, slices, torch.device("cpu"), consistent_output=True)
    assert projected["kspace"] == pytest.approx(state["history"][-1]["val_gain_kspace_db"], abs=1e-3)
    assert projected["kspace"] > free["kspace"], "a barely trained network gains from the measured band"


def _tiny_first_level(tmp_path) -> str:
    network = NetworkConfig(depth=1, channels=4)
    torch.manual_seed(1)
    export_torchscript(RRLSRN(network).state_dict(), network, tmp_path / "first.pt")
    return str(tmp_path / "first.pt")


@pytest.mark.parametrize("degradation", ["kspace", "bicubic"])
def test_the_cascades_first_level_is_made_as_the_engine_makes_it(tmp_path, degradation):
    """Consistent with the x1/4 LR at factor 2, and keeping a share in [detail_min, 1] of its out-of-band
    detail per image (all of it without a random generator)."""
    from RRLSRNSuperResLib.imaging.consistency import project
    from RRLSRNSuperResLib.imaging.degrade import downsample
    from RRLSRNSuperResLib.training.cascade import FirstLevel

    lr = torch.rand(4, 1, 12, 12)
    level = FirstLevel(_tiny_first_level(tmp_path), torch.device("cpu"), None,
                       detail_min=0.3)
    full = level(lr, [degradation])
    torch.testing.assert_close(downsample(full, degradation), lr, atol=1e-4, rtol=0)
    torch.testing.assert_close(full, project(level.model(lr), lr, degradation))
    base = project(torch.zeros_like(full), lr, degradation)
    scaled = level(lr, [degradation], np.random.default_rng(0))
    torch.testing.assert_close(downsample(scaled, degradation), lr, atol=1e-4, rtol=0)
    shares = [float(((s - b) * (f - b)).sum() / ((f - b) ** 2).sum()) for s, f, b in zip(scaled, full, base)]
    assert all(0.3 <= share <= 1.0 for share in shares) and len(set(np.round(shares, 4))) == 4
    torch.testing.assert_close(scaled - base, torch.tensor(shares).view(4, 1, 1, 1) * (full - base))


def test_second_level_training_feeds_the_first_levels_output_and_validates_the_cascade(tmp_path):
    from RRLSRNSuperResLib.training.cascade import FirstLevel
    from RRLSRNSuperResLib.training.loop import DEGRADATION_MARGIN, _training_batch, validation_gain

    first = _tiny_first_level(tmp_path)
    level = FirstLevel(first, torch.device("cpu"), None)
    hr_big = torch.rand(4, 1, 16 + 2 * DEGRADATION_MARGIN, 16 + 2 * DEGRADATION_MARGIN)
    level_input, lr, hr = _training_batch(hr_big, ["bicubic", "kspace"], np.random.default_rng(0), level)
    assert (level_input.shape[-1], lr.shape[-1], hr.shape[-1]) == (8, 4, 16)

    volumes = smooth_volumes(1, "train") + smooth_volumes(1, "val")
    network = NetworkConfig(depth=1, channels=4)
    config = TrainingConfig(network=network, steps=2, batch=4, patch=16, scale=4, first_level_model=first,
                            initial_model=first, consistent_output=True, first_level_detail_min=0.5)
    train(volumes, config, tmp_path / "run", torch.device("cpu"), validate_every=1, log=lambda line: None)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["config"].scale == 4 and [h["step"] for h in state["history"]] == [1, 2]
    model = RRLSRN(network)
    model.load_state_dict(state["model"])
    from RRLSRNSuperResLib.training.loop import validation_slices

    slices = [image[:36, :36] for image in validation_slices([v for v in volumes if v.role == "val"])]
    cascade = validation_gain(model, slices, torch.device("cpu"), True, FirstLevel(first, torch.device("cpu"), None))
    single = validation_gain(model, slices, torch.device("cpu"), True)
    assert cascade != single  # x4 against bicubic x4, not x2
    for bad in (dict(first_level_model=""), dict(acquisition_fraction=0.25), dict(patch=18)):
        with pytest.raises(ValueError):
            train(volumes, TrainingConfig(**{**config.__dict__, **bad}), tmp_path / "bad", torch.device("cpu"),
                  log=lambda line: None)
