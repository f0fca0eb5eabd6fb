"""The engine's options in one frozen object, checked once: what every front end builds and passes on.

The CLI builds it from its shared declarations (``cli.engine_options``), the Slicer module from
its parameter node, the BIDS App and the pipeline carry it per stack, the evaluation runs every
learned model with it. Values are checked here, when the object is made, so a bad option is
refused before any file is read or any model loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..errors import UserInputError
from ..imaging.consistency import CONSISTENCY_MODELS
from ..imaging.geometry import PLANES, SCALES
from ..model.precision import PRECISIONS
from .devices import DEVICES
from .self_ensemble import DEFAULT_VIEWS, VIEW_COUNTS

ACQUISITIONS = ("auto", "as-is")
ModelSource = Union[None, str, Path, "torch.nn.Module"]  # noqa: F821 (torch is imported on use)
DETAIL_MODES = ("auto", "full")
Detail = Union[str, float]


@dataclass(frozen=True)
class EngineOptions:
    """How the engine super-resolves a stack.

    ``model``: a TorchScript file or loaded module; None: the bundled model for ``consistency``.
    ``device``: ``auto``, ``cpu``, ``cuda``, ``mps`` (``engine.devices``). ``precision``: ``auto``
    (bfloat16 where the hardware runs it natively), ``fp32``, ``bf16``, ``fp16`` (``model.precision``).
    ``plane``: the IJK slice axis, ``auto`` (``imaging.geometry.slice_axis``) or ``i``/``j``/``k``.
    ``acquisition``: ``auto``: a stack the scanner zero-fill interpolated in-plane is super-resolved
    on its acquisition grid; ``as-is``: on the grid as given. Applied by
    ``engine.acquisition.superresolve_acquired``, the entry point for stacks as a scanner wrote them;
    ``engine.volume.superresolve`` always runs on the grid it is given.
    ``batch_size``: slices per batch, None: from free memory. ``consistency``: the degradation the
    input came through, to which the output is made exactly consistent (``imaging.consistency``);
    without ``model`` it also picks the bundled model. ``views``: self-ensemble views per slice
    (``engine.self_ensemble``). ``adapt_seconds``: over 0, first fine-tune a copy of the model on
    the stack's own slices for about that long (``engine.adaptation``). ``detail``: how much of the
    network's out-of-band detail to keep (``engine.detail_gain``): ``auto`` (calibrated on the stack,
    k-space consistency only), ``full``, or a gain in [0, 1] (a number or its text). ``scale``: the
    in-plane factor, 2 (one network pass) or 4 (two cascaded x2 levels, ``engine.volume``).
    """

    model: ModelSource = None
    device: str = "auto"
    precision: str = "auto"
    plane: str = "auto"
    acquisition: str = "auto"
    batch_size: Optional[int] = None
    consistency: str = "kspace"
    views: int = DEFAULT_VIEWS
    adapt_seconds: float = 0.0
    detail: Detail = "auto"
    scale: int = 2

    def __post_init__(self) -> None:
        for name, value, choices in (("device", self.device, DEVICES), ("precision", self.precision, PRECISIONS),
                                     ("plane", self.plane, PLANES), ("acquisition", self.acquisition, ACQUISITIONS),
                                     ("consistency", self.consistency, CONSISTENCY_MODELS)):
            if value not in choices:
                raise UserInputError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        if self.scale not in SCALES:
            raise UserInputError(f"scale must be one of {', '.join(map(str, SCALES))}, not {self.scale}")
        if self.views not in VIEW_COUNTS:
            raise UserInputError(f"self-ensemble views must be one of {', '.join(map(str, VIEW_COUNTS))}, "
                                 f"not {self.views}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserInputError(f"batch size must be at least 1, not {self.batch_size}")
        if self.adapt_seconds < 0:
            raise UserInputError(f"adaptation time must be 0 or more seconds, not {self.adapt_seconds}")
        object.__setattr__(self, "detail", parse_detail(self.detail))
        if self.consistency == "none" and self.detail not in DETAIL_MODES:
            raise UserInputError("a detail gain needs a consistency projection (--consistency kspace or bicubic)",
                                 in_slicer="A detail gain needs the output kept consistent with the input: tick "
                                           "'Keep the scanner's measured k-space'.")


def parse_detail(text: Detail) -> Detail:
    """``auto``, ``full`` or a gain in [0, 1] (a number or its text)."""
    if isinstance(text, str) and text in DETAIL_MODES:
        return text
    try:
        gain = float(text)
    except (TypeError, ValueError):
        raise UserInputError(f"detail must be auto, full or a gain from 0 to 1, not {text!r}") from None
    if not 0.0 <= gain <= 1.0:
        raise UserInputError(f"detail gain must be from 0 to 1, not {gain}")
    return gain


DEFAULT_OPTIONS = EngineOptions()
"""The defaults, as one immutable value for function signatures."""
