"""SRCNN (Dong et al., TPAMI 2016), the report's learned baseline: small, and not in the Slicer UI.

The 9-1-5 network of the paper (64 and 32 channels) on the bicubic x2 of the input. One
deviation, for training on a CPU: it predicts the residual over bicubic (as VDSR does), so it
starts at bicubic and needs no warm-up. Same contract as RRLSRN: N x 1 x H x W -> N x 1 x 2H x 2W
on the x2 grid of docs/design.md (bicubic with ``align_corners=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRCNN(nn.Module):
    """Three convolutions (9x9x64, 1x1x32, 5x5x1) on the bicubic upsampled image, plus that image."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 9, padding=4), nn.ReLU(),
            nn.Conv2d(channels, channels // 2, 1), nn.ReLU(),
            nn.Conv2d(channels // 2, 1, 5, padding=2),
        )
        nn.init.normal_(self.body[-1].weight, std=1e-3)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(image, scale_factor=2.0, mode="bicubic", align_corners=False)
        return upsampled + self.body(upsampled)
