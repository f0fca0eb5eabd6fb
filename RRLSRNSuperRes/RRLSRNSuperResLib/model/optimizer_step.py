"""One optimizer step, shared by training (``training.loop``) and the adaptation to a scan (``engine.adaptation``).

Both compute their loss their own way (precision, projection, weights); the update itself is
the same: set the learning rate of the step, clear the gradients, back-propagate, step.
"""

from __future__ import annotations

import torch


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, learning_rate: float) -> None:
    """Update the parameters once on ``loss`` at ``learning_rate`` (every parameter group)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
