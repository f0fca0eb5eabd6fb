"""Writing output files atomically: a temporary file beside the target, renamed when complete.

A failed, cancelled or interrupted run never leaves a partial file, and the file gets the
usual permissions (0666 less the umask).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable


def _suffix(path: Path) -> str:
    """The whole extension (``.nii.gz`` included): writers pick the format from it."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it over ``path``.

    A failed or interrupted run leaves no partial file. The temporary's name is random (128 bits)
    and bound *before* the file exists: with ``mkstemp`` a Ctrl-C between the file's creation and
    the return of its name left the file behind. ``write`` creates the file itself, so it gets the
    usual permissions (0666 less the umask).
    """
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}{_suffix(path)}"
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (whatever the locale: CI runs in an ASCII one)."""
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically (non-finite numbers become null)."""
    write_text(path, json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")


def json_ready(data: Any) -> Any:
    """Paths to strings and non-finite floats (an infinite PSNR) to null, recursively."""
    if isinstance(data, dict):
        return {str(key): json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    if isinstance(data, Path):
        return str(data)
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data
