"""The engine's options, declared once for every command that runs the engine, and read back as one object.

``add_engine_options`` gives each command the same flags, defaults and help texts;
``engine_options_from_args`` turns them into an ``engine.options.EngineOptions`` (checked there).
The evaluation commands add ``matched`` to ``--consistency``: the degradation they simulate,
resolved per degradation (``evaluation.simulated_lr.matched_consistency``) before the engine runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from ..engine.devices import DEVICES
from ..engine.options import ACQUISITIONS, EngineOptions, parse_detail
from ..engine.self_ensemble import DEFAULT_VIEWS, VIEW_COUNTS
from ..errors import UserInputError
from ..evaluation.simulated_lr import MATCHED
from ..imaging.consistency import CONSISTENCY_MODELS
from ..imaging.geometry import PLANES, SCALES
from ..model.precision import PRECISIONS

CONSISTENCY_HELP = {
    MATCHED: "the output is made consistent with the LR under the degradation the evaluation simulated",
    "kspace": "the output's central k-space is exactly the input's, as for a stack the scanner acquired",
    "bicubic": "for LR made by bicubic downsampling",
    "none": "the network's output as it is (e.g. for an input masked or edited after reconstruction)",
}
ENGINE_OPTIONS = ("model", "device", "precision", "plane", "acquisition", "batch_size", "consistency", "views",
                  "adapt_seconds", "detail", "scale")
SIMULATED_LR_AS_GIVEN = "the simulated LR is super-resolved on its grid as given"  # why evaluations omit --acquisition
_DESTINATIONS = {"adapt_seconds": "adapt"}  # EngineOptions field -> argparse destination, where they differ


def add_engine_options(parser: argparse.ArgumentParser, *, consistency_choices: Sequence[str] = CONSISTENCY_MODELS,
                       omit: Mapping[str, str] = MappingProxyType({})) -> None:
    """``--model --device --precision --plane --acquisition --batch-size --consistency --views --adapt --detail
    --scale``,
    with the same defaults and help everywhere; ``omit`` maps the ``EngineOptions`` fields a command
    does not apply to why: their flags stay hidden, and using one is an error that says so (not
    argparse's bare "unrecognized arguments"). ``consistency_choices`` starting with ``matched``: an
    evaluation command (its default)."""
    declarations = {
        "model": lambda target: target.add_argument(
            "--model", type=Path,
            help="TorchScript x2 model (default: the bundled RRLSRN x2 for --consistency; at --scale 4 a given model "
                 "runs both levels)"),
        "device": lambda target: target.add_argument("--device", choices=DEVICES, default="auto"),
        "precision": lambda target: target.add_argument(
            "--precision", choices=PRECISIONS, default="auto",
            help="auto (default): bfloat16 where the hardware runs it natively (AVX512-BF16/AMX CPUs, CUDA GPUs), "
                 "else float32"),
        "plane": lambda target: target.add_argument(
            "--plane", choices=PLANES, default="auto",
            help="IJK axis to slice along (auto: the file's declared slice axis where superres and bids read one, "
                 "else the axis off the one square-pixel pair, else the thickest; k for isotropic volumes)"),
        "acquisition": lambda target: target.add_argument(
            "--acquisition", choices=ACQUISITIONS, default="auto",
            help="auto (default): a stack the scanner zero-fill interpolated in-plane is super-resolved on its "
                 "acquisition grid, then zero-filled to the x2 grid; as-is: run on the grid as given"),
        "batch_size": lambda target: target.add_argument(
            "--batch-size", "--batch", dest="batch_size", type=int, metavar="SLICES",
            help="slices per batch (default: from free memory); --batch is the same option's older name"),
        "consistency": lambda target: _add_consistency(target, consistency_choices),
        "views": lambda target: target.add_argument(
            "--views", type=int, choices=VIEW_COUNTS, default=DEFAULT_VIEWS,
            help=f"self-ensemble: average the network over this many flipped/transposed views of each slice "
                 f"(default {DEFAULT_VIEWS}; each view costs one more pass)"),
        "adapt_seconds": lambda target: target.add_argument(
            "--adapt", type=float, default=0.0, metavar="SECONDS",
            help="first adapt a copy of the model to this stack for about SECONDS (self-supervised, on its own "
                 "slices; kept only if it does better on held-out slices); default 0: off"),
        "detail": lambda target: target.add_argument(
            "--detail", type=_detail_argument, default="auto", metavar="auto|full|GAIN",
            help="auto (default): keep the share of the network's detail beyond the measured k-space that a "
                 "calibration on the stack itself (one octave down) supports, so smooth stacks do not get "
                 "invented detail (k-space consistency only; else full); full: keep it all (the behaviour "
                 "before); GAIN: a fixed share from 0 to 1 (0 = zero-fill)"),
        "scale": lambda target: target.add_argument(
            "--scale", type=int, choices=SCALES, default=2,
            help="in-plane factor: 2 (default), or 4 by two cascaded x2 levels, the second a network trained "
                 "on the first's output (with --model: that model at both levels), the output kept consistent "
                 "with the input at factor 4 (in-plane spacing / 4, field of view unchanged)"),
    }
    for name in ENGINE_OPTIONS:
        if name not in omit:
            declarations[name](parser)
            continue
        flags = declarations[name](argparse.ArgumentParser(add_help=False)).option_strings
        parser.add_argument(*flags, nargs="?", action=_RefusedOption, why=omit[name], default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


class _RefusedOption(argparse.Action):
    """An engine option the command does not apply: using it stops the command with the reason."""

    def __init__(self, option_strings, dest, why: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.why = why

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} does not apply here: {self.why}")


def _add_consistency(parser: argparse.ArgumentParser, choices: Sequence[str]) -> argparse.Action:
    default = MATCHED if MATCHED in choices else "kspace"
    parts = [f"{choice}{' (default)' if choice == default else ''}: {CONSISTENCY_HELP[choice]}" for choice in choices]
    return parser.add_argument("--consistency", choices=tuple(choices), default=default, help="; ".join(parts))


def _detail_argument(text: str):
    try:
        return parse_detail(text)
    except UserInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def engine_options_from_args(args: argparse.Namespace, **overrides) -> EngineOptions:
    """The ``EngineOptions`` of a command's parsed arguments (options it does not declare keep their
    defaults); ``overrides`` replace fields, e.g. a ``matched`` consistency resolved by the caller."""
    given = {name: getattr(args, _DESTINATIONS.get(name, name)) for name in ENGINE_OPTIONS
             if hasattr(args, _DESTINATIONS.get(name, name))}
    return EngineOptions(**{**given, **overrides})
