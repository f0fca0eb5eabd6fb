"""Errors worded for Slicer: the panel's controls instead of the command line's flags.

The engine and the mask are shared with the ``rrlsrn`` command, whose messages name flags
(``--device cpu``). A ``UserInputError`` that names one carries the Slicer wording too
(``UserInputError.in_slicer``); the MRML entry points are decorated with
:func:`worded_for_slicer`, so what Slicer shows never asks for a flag.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import UserInputError


@contextmanager
def worded_for_slicer() -> Iterator[None]:
    """Re-raise a ``UserInputError`` with its Slicer wording (usable as a decorator)."""
    try:
        yield
    except UserInputError as error:
        if error.in_slicer == str(error):
            raise
        raise UserInputError(error.in_slicer) from error
