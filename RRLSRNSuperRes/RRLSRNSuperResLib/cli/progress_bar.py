"""A one-line text progress bar for the ``rrlsrn`` commands, fed by the engine's progress contract.

The engine calls ``progress(fraction, message)`` with a fraction rising from 0 to 1 and stops
when it returns False; the bar never cancels. It is drawn only on an interactive terminal:
redirected output (logs, pipes, pytest) stays free of carriage returns.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, TextIO

ProgressCallback = Callable[[float, str], bool]
BAR_WIDTH = 30


def render(label: str, fraction: float, message: str, width: int = BAR_WIDTH) -> str:
    """``label [#######.......]  45% message`` for a fraction in [0, 1] (clamped)."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    filled = int(round(fraction * width))
    bar = "#" * filled + "." * (width - filled)
    return f"{label} [{bar}] {fraction * 100:3.0f}% {message}".rstrip()


def terminal_progress(label: str, stream: Optional[TextIO] = None) -> Optional[ProgressCallback]:
    """A progress callback drawing on ``stream`` (stderr), or None when it is not a terminal.

    None is what the engine takes for "no progress reporting", so callers pass the result on
    unchanged. The line is redrawn in place and ended with a newline when the fraction reaches 1.
    """
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        return None
    last_length = 0
    finished = False

    def progress(fraction: float, message: str = "") -> bool:
        nonlocal last_length, finished
        if finished and fraction >= 1.0:
            return True  # a repeated final report would print the finished line twice
        finished = fraction >= 1.0
        line = render(label, fraction, message)
        stream.write("\r" + line.ljust(last_length))
        last_length = len(line)
        if finished:
            stream.write("\n")
            last_length = 0
        stream.flush()
        return True

    return progress
