"""Exceptions the Lib raises on purpose (the CLI and the Slicer module turn them into messages), and the
progress callback whose ``False`` answer cancels."""

from __future__ import annotations

from typing import Callable, Optional


class UserInputError(ValueError):
    """Something the user can fix (bad file, bad option); the message says what and how.

    A message that names a command-line flag (``--device cpu``) also comes worded for the
    Slicer panel, naming its controls instead (``in_slicer``); the MRML adapter shows that one
    (``mrml.messages``). Messages without a flag serve both.
    """

    def __init__(self, message: str, in_slicer: str | None = None):
        super().__init__(message)
        self.in_slicer = in_slicer or message


class SuperResolutionCancelled(RuntimeError):
    """The progress callback returned False; nothing was written or added."""


Progress = Callable[[float, str], Optional[bool]]
"""``progress(fraction, message)``, fraction 0..1: every long run reports through one; an answer of
``False`` cancels it (``SuperResolutionCancelled``), nothing written."""
