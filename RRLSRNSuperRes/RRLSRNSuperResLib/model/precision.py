"""The arithmetic the network runs in: float32, or bfloat16/float16 where the hardware runs it natively.

``auto`` picks bfloat16 on CPUs with AVX512-BF16 or AMX (this project's CPU runs the bundled
model 2x faster in it) and on CUDA GPUs that support it (float16 on older ones), float32
elsewhere. The change in PSNR is measured on the MIALSRTK stacks (docs/results.md). torch is imported
when a precision is resolved, so front ends can offer ``PRECISIONS`` without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import UserInputError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_runs_bf16_natively() -> bool:
    """AVX512-BF16 or AMX tiles (torch's own probes; absent from old torch builds, then False)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(name: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``name`` on ``device``, or None for float32."""
    import torch

    if name not in PRECISIONS:
        raise UserInputError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_runs_bf16_natively() else None
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    if name == "fp16" and device.type != "cuda":
        raise UserInputError("--precision fp16 runs on CUDA GPUs only; use bf16 or fp32 on the CPU",
                             in_slicer="Float16 precision runs on CUDA GPUs only; choose BFloat16 or Float32 "
                                       "(or Auto) under Precision.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def precision_name(dtype: Optional[torch.dtype]) -> str:
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
