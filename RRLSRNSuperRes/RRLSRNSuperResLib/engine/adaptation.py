"""Adapt the model to this scan (``--adapt SECONDS``): self-supervised fine-tuning on its own slices.

Zero-shot super-resolution (Shocher et al., CVPR 2018) in-plane, as SMORE/ECLARE do through-plane:
the input's slices, degraded x2 by the k-space acquisition model (or the bicubic degradation,
when the engine is told the input came through it), are the inputs and the
slices themselves the targets. A copy of the model is fine-tuned on patches of these pairs
with the paper's loss for the given seconds (bf16 where the hardware runs it natively), so it
learns this scan's anatomy, contrast and degradation one octave down, and applies it one up.

Loss and guard see the output as the engine delivers it: made consistent with its input
(``imaging.consistency``) when the engine projects, so the copy learns only the unmeasured band.

A guard: every ``HOLDOUT_EVERY``-th slice is held out of the fine-tuning, and the adapted copy
is kept only if it restores those slices (from their own x2 degradation) better than the
generic model; otherwise the generic model runs. The note says which. The guard measures one
octave below the output, so it cannot see every harm at the output's scale: before the
projection, on smooth reconstructions cut into stacks, it passed a copy that lost 1.2 dB there
(docs/results.md); with it, every copy on those stacks gained, but the SSIM of the fetal ones fell a
little. Hence opt-in (it also costs a minute), and labelled experimental.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import UserInputError
from ..imaging.consistency import project
from ..imaging.degrade import crop_to_multiple, downsample
from ..model.losses import rrlsrn_loss
from ..model.mixed_precision import forward_mixed
from ..model.optimizer_step import optimizer_step

HOLDOUT_EVERY = 4
PATCH = 32  # LR side of a training patch (its target is 64 x 64)
BATCH = 8
# Chosen on the validation split's volumes cut into thick stacks (never on the MIALSRTK stacks):
# of 5e-6, 2e-5 and 5e-5, the smallest gained most at x2 and lost least where it lost (docs/results.md).
LEARNING_RATE = 5e-6
WARMUP_STEPS = 20
FOREGROUND_LEVEL = 0.05
MIN_PATCH_FOREGROUND = 0.25
MIN_SLICES = 2  # one to learn from, one to check on


@dataclass(frozen=True)
class Adaptation:
    """What the adaptation did: steps, seconds, and the held-out PSNRs (dB, normalised units)."""

    steps: int
    seconds: float
    generic_psnr: float
    adapted_psnr: float
    kept: bool

    def describe(self) -> str:
        verdict = "kept" if self.kept else "not kept (no better on held-out slices): generic model used"
        return (f"adapted to this scan: {self.steps} steps in {self.seconds:.0f} s; held-out slices "
                f"{self.generic_psnr:.2f} -> {self.adapted_psnr:.2f} dB; {verdict}")


class _Pairs:
    """The slices (targets) and their x2 degradations (inputs), split into learn and hold-out."""

    def __init__(self, normalised_slices: np.ndarray, device: torch.device, degradation: str = "kspace"):
        targets = torch.from_numpy(np.ascontiguousarray(crop_to_multiple(normalised_slices), dtype=np.float32))[:, None]
        with torch.no_grad():
            inputs = downsample(targets, degradation)
        held = np.zeros(len(targets), dtype=bool)
        held[HOLDOUT_EVERY - 1:: HOLDOUT_EVERY] = True
        if not held.any():
            held[-1] = True
        self.learn = (inputs[~held].to(device), targets[~held].to(device))
        self.check = (inputs[held].to(device), targets[held].to(device))

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.learn
        side = min(PATCH, inputs.shape[-2], inputs.shape[-1])
        chosen_inputs, chosen_targets = [], []
        for _ in range(BATCH):
            for _attempt in range(20):
                index = int(rng.integers(len(inputs)))
                top = int(rng.integers(inputs.shape[-2] - side + 1))
                left = int(rng.integers(inputs.shape[-1] - side + 1))
                target = targets[index, :, 2 * top: 2 * (top + side), 2 * left: 2 * (left + side)]
                if (target > FOREGROUND_LEVEL).float().mean() >= MIN_PATCH_FOREGROUND:
                    break
            patch = inputs[index, :, top: top + side, left: left + side]
            if rng.random() < 0.5:
                patch, target = patch.flip(-1), target.flip(-1)
            if rng.random() < 0.5:
                patch, target = patch.transpose(-1, -2), target.transpose(-1, -2)
            chosen_inputs.append(patch)
            chosen_targets.append(target)
        return torch.stack(chosen_inputs), torch.stack(chosen_targets)


def trainable_copy(model: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """A deep copy whose parameters are leaves (a plain deepcopy records the clone in autograd)."""
    with torch.no_grad():
        copied = copy.deepcopy(model)
    for mine, theirs in zip(copied.parameters(), model.parameters()):
        mine.requires_grad_(theirs.requires_grad)
    return copied.train()


def _delivered(model: torch.nn.Module, inputs: torch.Tensor, dtype: Optional[torch.dtype],
               consistency: str) -> torch.Tensor:
    """The model's output on ``inputs`` as the engine delivers it (projected under ``consistency``)."""
    return project(forward_mixed(model, inputs, dtype).float(), inputs, consistency)


@torch.no_grad()
def held_out_psnr(model: torch.nn.Module, pairs: _Pairs, dtype: Optional[torch.dtype],
                  consistency: str = "none") -> float:
    """PSNR (peak 1 = the normalised tissue level) of the model on the held-out slices' pairs."""
    inputs, targets = pairs.check
    squared = [((_delivered(model, x[None], dtype, consistency) - y[None]) ** 2).mean()
               for x, y in zip(inputs, targets)]
    return float(-10 * torch.log10(torch.stack(squared).mean()))


def adapt_to_scan(model: torch.jit.ScriptModule, normalised_slices: np.ndarray, seconds: float,
                  device: torch.device, dtype: Optional[torch.dtype],
                  report: Callable[[float, str], None],
                  consistency: str = "none") -> tuple[torch.jit.ScriptModule, Adaptation]:
    """A copy of ``model`` fine-tuned on the slices (``S x H x W``, normalised) for ``seconds``, if it
    beats the generic model on the held-out slices; else ``model`` itself. ``report(fraction, message)``
    may raise to cancel. ``consistency``: the engine's projection, applied in the loss and the guard."""
    if len(normalised_slices) < MIN_SLICES or min(normalised_slices.shape[1:]) < 8:
        raise UserInputError(f"adapting to a scan needs {MIN_SLICES} slices of 8 x 8 pixels or more")
    started = time.monotonic()
    rng = np.random.default_rng(0)
    # The input came through the degradation it is made consistent with; k-space (MRI) when none is named.
    pairs = _Pairs(normalised_slices, device, "kspace" if consistency == "none" else consistency)
    generic_psnr = held_out_psnr(model, pairs, dtype, consistency)
    adapted = trainable_copy(model)
    optimizer = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=LEARNING_RATE)
    steps = 0
    report(0.0, f"adapting to this scan for {seconds:.0f} s")
    with torch.enable_grad():
        while steps == 0 or time.monotonic() - started < seconds:  # one step at least, however short
            inputs, targets = pairs.batch(rng)
            loss = rrlsrn_loss(_delivered(adapted, inputs.contiguous(memory_format=torch.channels_last), dtype,
                                          consistency), targets)
            optimizer_step(optimizer, loss, LEARNING_RATE * min(1.0, (steps + 1) / WARMUP_STEPS))
            steps += 1
            elapsed = time.monotonic() - started
            report(min(elapsed / seconds, 1.0), f"adapting to this scan: step {steps}, {elapsed:.0f}/{seconds:.0f} s")
    adapted.eval()
    adapted_psnr = held_out_psnr(adapted, pairs, dtype, consistency)
    kept = adapted_psnr > generic_psnr
    outcome = Adaptation(steps, time.monotonic() - started, generic_psnr, adapted_psnr, kept)
    return (adapted if kept else model), outcome
