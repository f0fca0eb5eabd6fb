"""The RRLSRN x2 network (Song, Wang et al., Sci. Rep. 2022), a LapSRN-style single level.

Two branches share the input image:

* the **feature branch** extracts features at LR resolution (3x3x64 convolutions with
  LeakyReLU 0.2), upsamples them with a 4x4 stride-2 transposed convolution and predicts a
  one-channel residual at HR resolution;
* the **image branch** ("bottom transposed conv") upsamples the image itself with a
  trainable 4x4 stride-2 transposed convolution initialised to bilinear interpolation.

Output = upsampled image + residual. Pure torch; no I/O here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .srcnn import SRCNN

LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class NetworkConfig:
    """Hyper-parameters that define the architecture (stored in the model card)."""

    architecture: str = "rrlsrn"
    """``rrlsrn``, or ``srcnn`` (the report's baseline; uses only ``channels``)."""
    depth: int = 10
    """Number of 3x3 conv layers between the input conv and the feature upsampler."""
    channels: int = 64
    image_branch: bool = True
    """False replaces the trained image branch by fixed bilinear upsampling (paper ablation)."""

    def to_dict(self) -> dict:
        return asdict(self)


def bilinear_upsampling_kernel(size: int = 4, factor: int = 2) -> torch.Tensor:
    """Transposed-convolution weights that reproduce bilinear x``factor`` upsampling.

    With ``size=4, factor=2, padding=1`` the output pixel centres sit at the half-pixel
    positions of ``align_corners=False`` interpolation, i.e. on the x2 grid of docs/design.md.
    """
    centre = factor - 0.5 if size % 2 == 0 else factor - 1.0
    taps = 1.0 - torch.abs(torch.arange(size, dtype=torch.float32) - centre) / factor
    return torch.outer(taps, taps)


class RRLSRN(nn.Module):
    """x2 super-resolution of single-channel 2D slices: N x 1 x H x W -> N x 1 x 2H x 2W."""

    def __init__(self, config: NetworkConfig = NetworkConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        for _ in range(config.depth):
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        layers += [nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        self.features = nn.Sequential(*layers)
        self.to_residual = nn.Conv2d(c, 1, 3, padding=1)
        self.upsample_image = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        self._initialise()
        self.upsample_image.weight.requires_grad_(config.image_branch)

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # A small residual head starts the model at bilinear interpolation, which trains faster.
        nn.init.normal_(self.to_residual.weight, std=1e-3)
        with torch.no_grad():
            self.upsample_image.weight.copy_(bilinear_upsampling_kernel().view(1, 1, 4, 4))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.upsample_image(image) + self.to_residual(self.features(image))


ARCHITECTURES = ("rrlsrn", "srcnn")


def build_network(config: NetworkConfig) -> nn.Module:
    """The untrained network a config describes."""
    if config.architecture == "srcnn":
        return SRCNN(config.channels)
    if config.architecture == "rrlsrn":
        return RRLSRN(config)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {config.architecture!r}")
