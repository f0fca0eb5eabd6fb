"""The engine's options, shared by every command that runs a stack (``superres``, ``bids``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.acquisition import ACQUISITIONS
from ..engine.devices import DEVICES
from ..engine.self_ensemble import DEFAULT_VIEWS, VIEW_COUNTS
from ..imaging.consistency import CONSISTENCY_MODELS
from ..imaging.geometry import PLANES
from ..model.precision import PRECISIONS


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--model --device --precision --plane --acquisition --batch --consistency --views --adapt``, with the
    same defaults everywhere."""
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
    add_output_options(parser, CONSISTENCY_MODELS, "kspace",
                       "kspace (default): the output's central k-space is exactly the input's, as for a stack "
                       "the scanner acquired; bicubic: for LR made by bicubic downsampling; none: the network's "
                       "output as it is (e.g. for an input masked or edited after reconstruction)")
    add_adapt_option(parser)


def add_output_options(parser: argparse.ArgumentParser, consistency_choices, consistency_default: str,
                       consistency_help: str) -> None:
    """``--consistency`` (``imaging.consistency``) and ``--views`` (``engine.self_ensemble``)."""
    parser.add_argument("--consistency", choices=consistency_choices, default=consistency_default,
                        help=consistency_help)
    parser.add_argument("--views", type=int, choices=VIEW_COUNTS, default=DEFAULT_VIEWS,
                        help=f"self-ensemble: average the network over this many flipped/transposed views of each "
                             f"slice (default {DEFAULT_VIEWS}; each view costs one more pass)")


def add_adapt_option(parser: argparse.ArgumentParser) -> None:
    """``--adapt SECONDS``: fine-tune a copy of the model on the stack itself first (``engine.adaptation``)."""
    parser.add_argument("--adapt", type=float, default=0.0, metavar="SECONDS",
                        help="first adapt a copy of the model to this stack for about SECONDS (self-supervised, "
                             "on its own slices; kept only if it does better on held-out slices); default 0: off")
