"""The network's forward pass in reduced precision, shared by inference and training.

The image branch carries the image itself, so rounding it to bfloat16's 8 bits of mantissa
would cost PSNR; the residual is small, so its rounding does not. RRLSRN (live or TorchScript)
therefore runs its feature branch under autocast and its image branch and sum in float32;
any other model runs wholly under autocast, returning float32.
"""

from __future__ import annotations

from typing import Optional

import torch

RRLSRN_BRANCHES = ("features", "to_residual", "upsample_image")  # model.network.RRLSRN's submodules


def forward_mixed(model: torch.nn.Module, batch: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """``model(batch)`` with the feature branch in ``dtype`` (None: all float32)."""
    if dtype is None:
        return model(batch)
    with torch.autocast(batch.device.type, dtype=dtype):
        if not all(hasattr(model, name) for name in RRLSRN_BRANCHES):
            return model(batch).float()
        residual = model.to_residual(model.features(batch))
    return model.upsample_image(batch) + residual.float()
