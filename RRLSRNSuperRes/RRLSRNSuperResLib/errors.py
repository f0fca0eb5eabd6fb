"""Exceptions the Lib raises on purpose; the CLI and the Slicer module turn them into messages."""


class UserInputError(ValueError):
    """Something the user can fix (bad file, bad option); the message says what and how."""


class SuperResolutionCancelled(RuntimeError):
    """The progress callback returned False; nothing was written or added."""
