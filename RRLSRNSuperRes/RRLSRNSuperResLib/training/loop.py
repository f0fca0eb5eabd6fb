"""Training loop: in-plane patch sampling, on-the-fly degradation, checkpoints, validation.

Needs only numpy and torch (reads a pack from ``training.data``), so it runs on a GPU
machine without SimpleITK. Patches are cut with a margin, degraded, then cropped, so the
LR never sees the patch border (antialiasing and k-space truncation reach beyond it).

``scale`` 4 trains the second level of the x4 cascade (``engine.volume``): the LR is made at
x1/4, a frozen x2 model (``first_level_model``) makes the first level as the engine does
(projected onto the LR, its out-of-band detail scaled by a random detail gain), and the
network learns x2 from that to the HR, its output projected onto the LR at factor 4.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..imaging.consistency import project
from ..imaging.degrade import bicubic_upsample, crop_to_multiple, downsample
from ..imaging.mri_acquisition import simulate_acquisition
from ..model.losses import rrlsrn_loss
from ..model.mixed_precision import forward_mixed
from ..model.network import NetworkConfig, build_network
from ..model.optimizer_step import optimizer_step
from ..model.precision import resolve_precision
from .cascade import FirstLevel, consistency_of
from .data import TrainingVolume

DEGRADATION_MARGIN = 16  # HR pixels cut around each patch before degrading
FOREGROUND_LEVEL = 0.05  # normalised intensity counted as tissue
MIN_PATCH_FOREGROUND = 0.25
VALIDATION_SLICES_PER_AXIS = 8


@dataclass
class TrainingConfig:
    """Everything that defines a run; stored in checkpoints and the model card."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    steps: int = 20000
    batch: int = 64
    patch: int = 128  # HR patch side (LR is half)
    optimizer: str = "adam"  # "adam" (ours) or "sgd" (the paper's)
    learning_rate: float = 2e-4
    final_learning_rate: float = 1e-6  # cosine decay floor (adam)
    sgd_momentum: float = 0.9
    weight_decay: float = 0.0
    halve_every_steps: int = 0  # step decay (paper: every 50 epochs); 0 = cosine
    warmup_steps: int = 0  # linear ramp from 0: fine-tuning with a fresh Adam state needs it
    gdl_weight: float = 1.0
    kspace_fraction: float = 0.5  # share of each batch degraded by ideal k-space truncation
    acquisition_fraction: float = 0.0  # share by imaging.mri_acquisition (T2 blur, partial Fourier, noise)
    intensity_jitter: float = 0.25
    seed: int = 0
    precision: str = "auto"  # model.precision: bf16 autocast where the CPU or GPU runs it natively
    initial_model: str = ""  # TorchScript model to fine-tune from ("" = random initialisation)
    consistent_output: bool = False  # loss and validation on the output made consistent with its LR, as the engine does
    bare_loss_weight: float = 1.0  # with consistent_output: weight of the unprojected output's loss, which keeps the
    # network usable without the projection (--consistency none); 0 trains through the projection only
    scale: int = 2  # 4: train the second level of the x4 cascade on the first level's output
    first_level_model: str = ""  # with scale 4: the frozen x2 TorchScript model of the first level
    first_level_detail_min: float = 1.0  # with scale 4: the first level keeps a share of its out-of-band detail
    # drawn uniformly from [this, 1] per patch, as the engine's detail gain does

    @classmethod
    def paper(cls, **overrides) -> TrainingConfig:
        """The paper's recipe: SGD momentum 0.9, wd 1e-4, lr 1e-5 halved every 50 epochs, bicubic only."""
        values = dict(optimizer="sgd", learning_rate=1e-5, weight_decay=1e-4, halve_every_steps=50 * 1000,
                      kspace_fraction=0.0, batch=64, patch=128)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        values = dict(values)
        values["network"] = NetworkConfig(**values["network"])
        return cls(**values)


class PatchSampler:
    """Random in-plane HR patches (with degradation margin) from normalised volumes."""

    def __init__(self, volumes: list[TrainingVolume], side: int, seed: int):
        if not volumes:
            raise ValueError("no training volumes")
        # Small fetal brains are zero-padded (their background is 0 after normalisation) to fit a patch.
        self.volumes = [_pad_to(v, side) for v in volumes]
        self.side = side
        self.rng = np.random.default_rng(seed)

    def _one(self) -> np.ndarray:
        for _ in range(50):
            volume = self.volumes[self.rng.integers(len(self.volumes))]
            axis = volume.slice_axes[self.rng.integers(len(volume.slice_axes))]
            index = self.rng.integers(volume.voxels.shape[axis])
            image = np.take(volume.voxels, index, axis=axis)
            top = self.rng.integers(image.shape[0] - self.side + 1)
            left = self.rng.integers(image.shape[1] - self.side + 1)
            patch = image[top: top + self.side, left: left + self.side]
            if (patch > FOREGROUND_LEVEL).mean() >= MIN_PATCH_FOREGROUND:
                return patch
        return patch

    def batch(self, size: int) -> np.ndarray:
        patches = []
        for _ in range(size):
            patch = self._one()
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch.T
            patches.append(patch)
        return np.ascontiguousarray(np.stack(patches)[:, None], dtype=np.float32)


def _pad_to(volume: TrainingVolume, side: int) -> TrainingVolume:
    """Zero-pad the in-plane axes of a volume to at least ``side`` voxels."""
    inplane = {a for axis in volume.slice_axes for a in range(3) if a != axis}
    widths = [(0, 0) if a not in inplane else (max(side - n, 0) // 2, max(side - n, 0) - max(side - n, 0) // 2)
              for a, n in enumerate(volume.voxels.shape)]
    return TrainingVolume(volume.name, volume.subject, volume.role, np.pad(volume.voxels, widths), volume.slice_axes)


def degrade_with_margin(hr_with_margin: torch.Tensor, degradations: list[str], rng: np.random.Generator,
                        factor: int = 2) -> torch.Tensor:
    """Each chunk of the batch degraded x1/``factor`` by its degradation, margin kept."""
    def degrade(chunk: torch.Tensor, name: str) -> torch.Tensor:
        return simulate_acquisition(chunk, rng) if name == "acquisition" else downsample(chunk, name, factor)

    chunks = torch.tensor_split(hr_with_margin, len(degradations))
    return torch.cat([degrade(chunk, name) for chunk, name in zip(chunks, degradations) if len(chunk)])


def project_consistent(prediction: torch.Tensor, lr: torch.Tensor, degradations: list[str]) -> torch.Tensor:
    """Each equal chunk of the batch (``degrade_with_margin`` order) made consistent with its LR, as the engine
    does; acquisition-model LR is a blurred, noisy central k-space, so it is projected as k-space."""
    chunks = zip(torch.tensor_split(prediction, len(degradations)), torch.tensor_split(lr, len(degradations)),
                 degradations)
    return torch.cat([project(p, x, consistency_of(name)) for p, x, name in chunks if len(p)])


def batch_degradations(config: TrainingConfig) -> list[str]:
    """One entry per equal chunk of the batch: k-space and acquisition shares to 1/4, the rest bicubic."""
    kspace, acquisition = round(4 * config.kspace_fraction), round(4 * config.acquisition_fraction)
    if kspace + acquisition > 4:
        raise ValueError("kspace_fraction + acquisition_fraction must not exceed 1")
    return ["bicubic"] * (4 - kspace - acquisition) + ["kspace"] * kspace + ["acquisition"] * acquisition


def selection_gain(record: dict, config: TrainingConfig) -> float:
    """The validation gain a checkpoint is chosen by: over the degradations it is trained on
    (a bicubic-only model, such as the paper's recipe, is not judged on k-space LR, nor a k-space-only
    model, meant for the engine's k-space consistency, on bicubic LR)."""
    trained = set(batch_degradations(config))
    if trained == {"bicubic"}:
        return record["val_gain_bicubic_db"]
    if "bicubic" not in trained:
        return record["val_gain_kspace_db"]
    return record["val_gain_mean"]


def learning_rate_at(config: TrainingConfig, step: int) -> float:
    warmup = min((step + 1) / config.warmup_steps, 1.0) if config.warmup_steps else 1.0
    if config.halve_every_steps:
        return warmup * config.learning_rate * 0.5 ** (step // config.halve_every_steps)
    progress = min(step / max(config.steps, 1), 1.0)
    return warmup * (config.final_learning_rate + 0.5 * (config.learning_rate - config.final_learning_rate) * (
        1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.sgd_momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be adam or sgd, not {config.optimizer!r}")


def validation_slices(volumes: list[TrainingVolume]) -> list[np.ndarray]:
    """A fixed set of even-sized foreground slices from each validation volume, all axes."""
    slices = []
    for volume in volumes:
        for axis in volume.slice_axes:
            tissue = (volume.voxels > FOREGROUND_LEVEL).mean(axis=tuple(a for a in range(3) if a != axis))
            rich = np.flatnonzero(tissue > 0.5 * tissue.max())
            for index in rich[np.linspace(0, len(rich) - 1, VALIDATION_SLICES_PER_AXIS).astype(int)]:
                image = crop_to_multiple(np.take(volume.voxels, index, axis=axis))
                slices.append(image)
    return slices


@torch.no_grad()
def validation_gain(model: torch.nn.Module, slices: list[np.ndarray], device: torch.device,
                    consistent_output: bool = False, first_level: FirstLevel | None = None) -> dict[str, float]:
    """Mean PSNR gain (dB) of the model over bicubic upsampling on tissue pixels, per degradation
    (with ``consistent_output``, of its output projected onto the LR as the engine does; with
    ``first_level``, of the x4 cascade whose second level the model is, over bicubic x4)."""
    model.eval()
    factor = 2 if first_level is None else 4
    gains: dict[str, float] = {}
    for degradation in ("bicubic", "kspace"):
        values = []
        for image in slices:
            hr = torch.from_numpy(crop_to_multiple(image, factor))[None, None].to(device)
            lr = downsample(hr, degradation, factor)
            tissue = hr > FOREGROUND_LEVEL
            level_input = lr if first_level is None else first_level(lr, [degradation])
            estimate = model(level_input)
            if consistent_output:
                estimate = project(estimate, lr, degradation)
            mse_model = ((estimate - hr)[tissue] ** 2).mean()
            mse_bicubic = ((bicubic_upsample(lr, factor) - hr)[tissue] ** 2).mean()
            values.append(10 * torch.log10(mse_bicubic / mse_model).item())
        gains[degradation] = float(np.mean(values))
    model.train()
    return gains


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    config: TrainingConfig, history: list[dict]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "config": json.dumps(config.to_dict()), "history": json.dumps(history)}, temporary)
    temporary.replace(path)


def load_checkpoint(path: Path) -> dict:
    """Checkpoint contents; ``weights_only`` so a checkpoint can never run code."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["config"] = TrainingConfig.from_dict(json.loads(state["config"]))
    state["history"] = json.loads(state["history"])
    return state


def initial_weights(path: Path) -> dict:
    """The weights of a TorchScript model (e.g. the bundled one) to fine-tune from."""
    from ..model.artifact import load_model

    return {name: value.clone() for name, value in load_model(path).state_dict().items()}


@dataclass
class _Progress:
    """The state a run carries from step to step: model and optimizer, the (checkpoint's) config, the step,
    the validation history and best selection gain, and the training loss summed since the last record."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainingConfig
    step: int
    history: list
    best_gain: float
    running: torch.Tensor
    since_record: int = 0


def _start(config: TrainingConfig, last: Path, device: torch.device, resume: bool,
           log: Callable[[str], None]) -> _Progress:
    """A new model (random or ``initial_model``) and optimizer, or the last checkpoint's when resuming."""
    torch.manual_seed(config.seed)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model = build_network(config.network)
    if config.initial_model:
        model.load_state_dict(initial_weights(Path(config.initial_model)))
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    step, history = 0, []
    if resume and last.exists():
        state = load_checkpoint(last)
        config = state["config"]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
        log(f"resumed from {last} at step {step}")
    best_gain = max((selection_gain(h, config) for h in history), default=-math.inf)
    return _Progress(model, optimizer, config, step, history, best_gain, torch.zeros((), device=device))


def _training_loss(model: torch.nn.Module, level_input: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor,
                   degradations: list[str], config: TrainingConfig, compute_dtype) -> torch.Tensor:
    """The paper's loss of the model on a batch (its input: the LR, or at scale 4 the first level's output),
    on its output made consistent with the LR when configured (plus the bare output's, weighted, which
    keeps the network usable without the projection)."""
    prediction = forward_mixed(model, level_input.contiguous(memory_format=torch.channels_last), compute_dtype)
    if not config.consistent_output:
        return rrlsrn_loss(prediction, hr, config.gdl_weight)
    bare = prediction.float()
    loss = rrlsrn_loss(project_consistent(bare, lr, degradations), hr, config.gdl_weight)
    if config.bare_loss_weight:
        loss = loss + config.bare_loss_weight * rrlsrn_loss(bare, hr, config.gdl_weight)
    return loss


def _training_batch(hr_big: torch.Tensor, degradations: list[str], rng: np.random.Generator,
                    first_level: FirstLevel | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the network's input, the LR, the HR) of a batch of HR patches with margin, each cut out of its margin
    after degrading: the input is the LR itself at x2; at x4 the first level's output, made on the LR with
    its margin."""
    factor = 2 if first_level is None else 4
    lr_big = degrade_with_margin(hr_big, degradations, rng, factor)
    m = DEGRADATION_MARGIN
    lr, hr = _without_margin(lr_big, m // factor), _without_margin(hr_big, m)
    if first_level is None:
        return lr, lr, hr
    return _without_margin(first_level(lr_big, degradations, rng), m // 2), lr, hr


def _without_margin(images: torch.Tensor, margin: int) -> torch.Tensor:
    return images[..., margin:-margin, margin:-margin]


def _first_level(config: TrainingConfig, device: torch.device, compute_dtype) -> FirstLevel | None:
    """At scale 4 the frozen first level (the config must name it), else None."""
    if config.scale == 2:
        return None
    if config.scale != 4 or not config.first_level_model:
        raise ValueError("scale must be 2, or 4 with first_level_model (the cascade's frozen x2 first level)")
    if config.acquisition_fraction or config.patch % 4:
        raise ValueError("at scale 4 the LR is bicubic or k-space (no acquisition model) and the patch a multiple of 4")
    return FirstLevel(Path(config.first_level_model), device, compute_dtype, config.first_level_detail_min)


def _record(run: _Progress, val_slices: list[np.ndarray], device: torch.device, seconds: float, out_dir: Path,
            log: Callable[[str], None], first_level: FirstLevel | None = None) -> None:
    """Validate, log the record, save ``last.pt``, and ``best.pt`` when the selection gain is the best yet."""
    gains = validation_gain(run.model, val_slices, device, run.config.consistent_output, first_level)
    record = {"step": run.step, "seconds": round(seconds, 1),
              "loss": round(float(run.running) / run.since_record, 6),
              "val_gain_bicubic_db": round(gains["bicubic"], 4),
              "val_gain_kspace_db": round(gains["kspace"], 4),
              "val_gain_mean": round((gains["bicubic"] + gains["kspace"]) / 2, 4)}
    run.running, run.since_record = torch.zeros((), device=device), 0
    run.history.append(record)
    log(json.dumps(record))
    save_checkpoint(out_dir / "last.pt", run.model, run.optimizer, run.step, run.config, run.history)
    gain = selection_gain(record, run.config)
    if gain > run.best_gain:
        run.best_gain = gain
        save_checkpoint(out_dir / "best.pt", run.model, run.optimizer, run.step, run.config, run.history)


def train(volumes: list[TrainingVolume], config: TrainingConfig, out_dir: Path, device: torch.device,
          resume: bool = False, time_limit_s: float | None = None, validate_every: int = 1000,
          log: Callable[[str], None] = print) -> Path:
    """Train (or resume) and return the path of the best checkpoint by validation gain."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _start(config, out_dir / "last.pt", device, resume, log)
    config = run.config  # after a resume: the checkpoint's
    compute_dtype = resolve_precision(config.precision, device)
    first_level = _first_level(config, device, compute_dtype)
    val_slices = validation_slices([v for v in volumes if v.role == "val"])
    sampler = PatchSampler([v for v in volumes if v.role == "train"], config.patch + 2 * DEGRADATION_MARGIN,
                           config.seed + run.step)
    degradations = batch_degradations(config)
    rng = np.random.default_rng(config.seed + 1 + run.step)
    started = time.monotonic()
    while run.step < config.steps:
        hr_big = torch.from_numpy(sampler.batch(config.batch)).to(device, non_blocking=True)
        jitter = 1 + config.intensity_jitter * (2 * rng.random((config.batch, 1, 1, 1)) - 1)
        level_input, lr, hr = _training_batch(hr_big * torch.from_numpy(jitter.astype(np.float32)).to(device),
                                              degradations, rng, first_level)
        loss = _training_loss(run.model, level_input, lr, hr, degradations, config, compute_dtype)
        optimizer_step(run.optimizer, loss, learning_rate_at(config, run.step))
        run.step += 1
        run.running += loss.detach()  # summed on the device: no sync per step
        run.since_record += 1
        out_of_time = time_limit_s is not None and time.monotonic() - started > time_limit_s
        if run.step % validate_every == 0 or run.step == config.steps or out_of_time:
            _record(run, val_slices, device, time.monotonic() - started, out_dir, log, first_level)
        if out_of_time:
            log(f"time limit reached at step {run.step}; resume with --resume")
            break
    return out_dir / "best.pt"
