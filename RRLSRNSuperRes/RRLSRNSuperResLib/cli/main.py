"""The ``rrlsrn`` command: one sub-command module each, user errors as one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from .. import package_version
from ..errors import SuperResolutionCancelled, UserInputError

INTERRUPTED = 130  # 128 + SIGINT, what shells report for a program stopped by Ctrl-C
INTERRUPTED_LINE = "error: interrupted; no partially written file was left (finished outputs are kept)"
# sub-command -> (module, one-line help); each module has add_arguments(parser) and run(args).
COMMANDS = {
    "superres": ("superres", "super-resolve a volume x2 in-plane"),
    "evaluate": ("evaluate", "simulate LR from an HR volume and compare with cubic spline, bicubic and sinc"),
    "evaluate-interpolated": ("evaluate_interpolated", "super-resolve scanner-interpolated versions of HR stacks "
                              "and score the gain over the interpolated input"),
    "report": ("report", "the paper's comparison measured here: cubic, bicubic, sinc, SRCNN, RRLSRN, ablations, "
               "runtime (JSON, Markdown, PNG)"),
    "reconstruct": ("reconstruct", "one motion-corrected isotropic 3D volume from several stacks (RRLSRN x2 "
                    "in-plane on each, then slice-to-volume reconstruction)"),
    "evaluate-reconstruction": ("evaluate_reconstruction", "simulate motion-corrupted stacks from 3D volumes, "
                                "reconstruct and score against the truth and baselines (or --leave-one-out on "
                                "real stacks)"),
    "stress-set": ("stress_set", "build a stress set of smooth, high-SNR fetal stacks from a data folder, for "
                   "rrlsrn evaluate --degradation kspace"),
    "mask": ("mask", "automatic fetal brain mask"),
    "demo": ("demo", "the bundled sample, end to end"),
    "train": ("train", "train a model and export it as TorchScript"),
    "bench": ("bench", "time super-resolution and report GFLOP/s"),
    "bids": ("bids", "BIDS App: x2 derivatives of every stack of a BIDS dataset, with provenance"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` sub-command's module is imported (``--help`` stays instant).

    Sub-command modules import numpy, torch and the rest when they define their options, so
    ``rrlsrn --help`` and ``rrlsrn --version`` import none of them.
    """
    parser = argparse.ArgumentParser(prog="rrlsrn", description="RRLSRN x2 in-plane super-resolution of MRI stacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(f"{__package__}.{module_name}")
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def _selected_command(argv: list[str]) -> str | None:
    return next((word for word in argv if word in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; user errors and Ctrl-C (at any moment) print one line."""
    words = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in words
    try:
        return _run(words)
    except (UserInputError, SuperResolutionCancelled) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(INTERRUPTED_LINE, file=sys.stderr)
        return INTERRUPTED


def _run(words: list[str]) -> int:
    args = build_parser(_selected_command(words)).parse_args(words)
    args.command_line = ["rrlsrn", *words]  # provenance
    if signal.getsignal(signal.SIGINT) is _end_at_once_on_ctrl_c:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # imports done: from here Ctrl-C cleans up
    return int(args.run(args) or 0)


def _end_at_once_on_ctrl_c(signum, frame) -> None:
    """The program's Ctrl-C handler while it imports: nothing is written yet, so end now, by SIGINT.

    Raising KeyboardInterrupt there can land in torch's import, inside C++ code that calls Python
    and cannot pass an exception on: the process then aborts ("terminate called after throwing
    an instance of 'pybind11::error_already_set'") instead of printing its one line.
    """
    print(INTERRUPTED_LINE, file=sys.stderr)
    _end_by_sigint()


def _end_by_sigint() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def entry_point() -> None:
    """The ``rrlsrn`` program: after Ctrl-C it ends *by* SIGINT, as Unix programs should.

    Its shell then reports status 130 and stops a loop or script that runs it (a plain
    ``exit(130)`` would let a ``for`` loop go on to the next file). ``main`` itself returns 130,
    for callers in Python.
    """
    if os.name == "posix" and signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored
        signal.signal(signal.SIGINT, _end_at_once_on_ctrl_c)
    status = main()
    if status == INTERRUPTED and os.name == "posix":
        _end_by_sigint()
    sys.exit(status)


if __name__ == "__main__":
    entry_point()
