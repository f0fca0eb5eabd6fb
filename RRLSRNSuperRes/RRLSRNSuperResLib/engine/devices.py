"""Choosing the torch device: CUDA when it really works, else Apple MPS, else the CPU.

torch is imported when a device is chosen, so front ends can offer ``DEVICES`` without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserInputError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def _works(device: str) -> bool:
    """A small allocation and kernel succeed (catches broken drivers and mismatched builds)."""
    import torch

    try:
        probe = torch.ones(16, device=device)
        return bool((probe + probe).sum().item() == 32)
    except (RuntimeError, AssertionError):
        return False


def cuda_usable() -> bool:
    import torch

    return torch.cuda.is_available() and _works("cuda")


def mps_usable() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available()) and _works("mps")


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU; a forced device that does not work is a user error."""
    import torch

    if name not in DEVICES:
        raise UserInputError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        return torch.device("cuda" if cuda_usable() else "mps" if mps_usable() else "cpu")
    if name == "cuda" and not cuda_usable():
        raise UserInputError(
            "--device cuda: no working CUDA GPU (check the driver and the torch build), or use --device cpu",
            in_slicer="No working CUDA GPU was found: check the NVIDIA driver, and that the PyTorch extension "
                      "installed a CUDA build of PyTorch; or choose Device: CPU (or Auto).")
    if name == "mps" and not mps_usable():
        raise UserInputError("--device mps: Apple MPS is not available here; use --device cpu",
                             in_slicer="Apple MPS is not available on this computer; choose Device: CPU (or Auto).")
    return torch.device(name)
