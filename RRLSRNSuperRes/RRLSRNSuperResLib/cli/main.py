"""The ``rrlsrn`` command: one sub-command module each, user errors as one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SuperResolutionCancelled, UserInputError

# sub-command -> (module, one-line help); each module has add_arguments(parser) and run(args).
COMMANDS = {
    "superres": ("superres", "super-resolve a volume x2 in-plane"),
    "evaluate": ("evaluate", "simulate LR from an HR volume and compare with cubic spline and bicubic"),
    "mask": ("mask", "automatic fetal brain mask"),
    "demo": ("demo", "the bundled sample, end to end"),
    "train": ("train", "train a model and export it as TorchScript"),
    "bench": ("bench", "time super-resolution and report GFLOP/s"),
    "bids": ("bids", "BIDS App: x2 derivatives of every stack of a BIDS dataset, with provenance"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrlsrn", description="RRLSRN x2 in-plane super-resolution of MRI stacks")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = ["rrlsrn", *(sys.argv[1:] if argv is None else argv)]  # provenance
    try:
        return int(args.run(args) or 0)
    except (UserInputError, SuperResolutionCancelled) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no partially written file was left (finished outputs are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
