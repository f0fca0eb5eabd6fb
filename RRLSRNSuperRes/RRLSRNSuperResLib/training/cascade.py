"""The first level of the x4 cascade, made during training as the engine makes it.

The second level of ``engine.volume``'s x4 cascade does not see LR made by a degradation: it
sees the first level's output, projected onto the x1/4 input at factor 2 and with only the
detail gain's share of its out-of-band part. A second level trained on that input learns to
sharpen what the first level really leaves, which the x2 network, trained on degraded HR,
does not (docs/results.md, x4 by cascading).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..imaging.consistency import project
from ..model.mixed_precision import forward_mixed


def consistency_of(degradation: str) -> str:
    """The engine's consistency model for LR made by ``degradation`` (acquisition LR is k-space)."""
    return "kspace" if degradation == "acquisition" else degradation


class FirstLevel:
    """A frozen x2 TorchScript model run as the cascade's first level on ``N x 1 x h x w`` LR."""

    def __init__(self, path: Path, device: torch.device, compute_dtype: Optional[torch.dtype],
                 detail_min: float = 1.0):
        from ..model.artifact import load_model

        if not 0.0 <= detail_min <= 1.0:
            raise ValueError(f"the first level's detail gain must lie in [0, 1], not {detail_min}")
        self.model = load_model(path).to(device).to(memory_format=torch.channels_last).eval()
        self.compute_dtype = compute_dtype
        self.detail_min = detail_min

    @torch.no_grad()
    def __call__(self, lr: torch.Tensor, degradations: list[str],
                 rng: Optional[np.random.Generator] = None) -> torch.Tensor:
        """The x2 first level of each equal chunk of ``lr`` (``training.loop.degrade_with_margin`` order),
        projected onto it under its degradation's consistency model; with ``rng``, each image keeps a random
        share in [``detail_min``, 1] of its out-of-band detail (without: all of it)."""
        estimate = forward_mixed(self.model, lr.contiguous(memory_format=torch.channels_last),
                                 self.compute_dtype).float()
        parts = []
        for guess, measured, name in zip(torch.tensor_split(estimate, len(degradations)),
                                         torch.tensor_split(lr, len(degradations)), degradations):
            if len(guess):
                model = consistency_of(name)
                projected = project(guess, measured, model)
                base = project(torch.zeros_like(guess), measured, model)
                parts.append(base + self._gains(len(guess), rng).to(guess) * (projected - base))
        return torch.cat(parts)

    def _gains(self, count: int, rng: Optional[np.random.Generator]) -> torch.Tensor:
        if rng is None or self.detail_min == 1.0:
            return torch.ones(count, 1, 1, 1)
        return torch.from_numpy(rng.uniform(self.detail_min, 1.0, (count, 1, 1, 1)).astype(np.float32))
