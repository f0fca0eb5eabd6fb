"""The terminal progress bar of the ``rrlsrn`` commands (tqdm), fed by the engine's progress contract.

The engine calls ``progress(fraction, message)`` with a fraction rising from 0 to 1, and
"done/count slices" once per batch; the bar shows slices, elapsed time, ETA and slices/s,
fits the terminal's width and closes with a newline, leaving no debris. It draws on stderr,
and only on an interactive terminal: pipes and logs stay clean. Only the command line uses
tqdm; the Lib that Slicer imports does not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Callable, Optional, Sequence, TextIO

ProgressCallback = Callable[[float, str], bool]
_SLICES = re.compile(r"^(\d+)/(\d+) slices$")
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} slices [{elapsed}<{remaining}, {rate_fmt}]{postfix}"


def terminal_progress(label: str, stream: Optional[TextIO] = None,
                      width: Optional[int] = None) -> Optional[ProgressCallback]:
    """A progress callback drawing on ``stream`` (stderr), or None when it is not a terminal.

    None is what the engine takes for "no progress reporting", so callers pass the result on
    unchanged. ``width`` fixes the bar's width (default: the terminal's, followed as it changes).
    """
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(desc=label, file=stream, unit=" slices", bar_format=BAR_FORMAT, ncols=width,
               dynamic_ncols=width is None, leave=True, total=None)

    def progress(fraction: float, message: str = "") -> bool:
        if bar.disable:  # closed: a repeated final report adds nothing
            return True
        counted = _SLICES.match(message)
        if counted:
            done, total = int(counted.group(1)), int(counted.group(2))
            if bar.total != total:
                bar.total = total
            bar.set_postfix_str("", refresh=False)
            bar.update(done - bar.n)
        else:
            bar.set_postfix_str(message)
        if fraction >= 1.0:
            bar.close()
        return True

    return progress


def progress_lines(stream: Optional[TextIO] = None) -> ProgressCallback:
    """A progress callback for a parent process: one ``PROGRESS <fraction> <message>`` line per call.

    Slicer's background run (``mrml.background``) starts ``rrlsrn superres --progress-lines`` (or
    ``reconstruct``) and moves its progress bar from these lines; each is flushed at once.
    """
    def progress(fraction: float, message: str = "") -> bool:
        print(f"PROGRESS {fraction:.6f} {message}", file=stream if stream is not None else sys.stdout, flush=True)
        return True

    return progress


def run_for_parent(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``; with ``--progress-lines`` a user error is also printed for the parent as an ``ERROR
    <json>`` line (its message and its Slicer wording), then raised as usual."""
    from ..errors import UserInputError

    try:
        return run(args)
    except UserInputError as error:
        if args.progress_lines:
            print("ERROR " + json.dumps({"message": str(error), "in_slicer": error.in_slicer}), flush=True)
        raise


def print_result_line(summary: dict) -> None:
    """The ``RESULT <json>`` line a parent reads once the job succeeded."""
    print("RESULT " + json.dumps(summary), flush=True)


def print_written_and_notes(written: Sequence[object], notes: Sequence[str]) -> None:
    """The files a command wrote and its notes, one per line, as every writing command ends."""
    for path in written:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
