"""The engine's options, shared by every command that runs a stack (``superres``, ``bids``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.acquisition import ACQUISITIONS
from ..engine.devices import DEVICES
from ..engine.precision import PRECISIONS
from ..imaging.geometry import PLANES


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--model --device --precision --plane --acquisition --batch --adapt``, with the same defaults everywhere."""
    parser.add_argument("--model", type=Path, help="TorchScript model (default: the bundled RRLSRN x2)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (default): bfloat16 where the hardware runs it natively (AVX512-BF16/AMX "
                             "CPUs, CUDA GPUs), else float32")
    parser.add_argument("--plane", choices=PLANES, default="auto",
                        help="IJK axis to slice along (auto: the file's declared slice axis, else the axis "
                             "off the one square-pixel pair, else the thickest; k for isotropic volumes)")
    parser.add_argument("--acquisition", choices=ACQUISITIONS, default="auto",
                        help="auto (default): a stack the scanner zero-fill interpolated in-plane is "
                             "super-resolved on its acquisition grid, then zero-filled to the x2 grid; "
                             "as-is: run on the grid as given")
    parser.add_argument("--batch", type=int, help="slices per batch (default: from free memory)")
    add_adapt_option(parser)


def add_adapt_option(parser: argparse.ArgumentParser) -> None:
    """``--adapt SECONDS``: fine-tune a copy of the model on the stack itself first (``engine.adaptation``)."""
    parser.add_argument("--adapt", type=float, default=0.0, metavar="SECONDS",
                        help="first adapt a copy of the model to this stack for about SECONDS (self-supervised, "
                             "on its own slices; kept only if it does better on held-out slices); default 0: off")
