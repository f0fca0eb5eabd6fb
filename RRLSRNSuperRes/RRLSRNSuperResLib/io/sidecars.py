"""The JSON sidecar that BIDS and dcm2niix write beside an image: what the scanner recorded of the acquisition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..errors import UserInputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def sidecar_path(image: Path) -> Optional[Path]:
    """``sub-01_T2w.json`` for ``sub-01_T2w.nii.gz`` (any image suffix); None for a folder or an unknown suffix."""
    name = image.name
    suffix = next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), None)
    return image.with_name(name[: -len(suffix)] + ".json") if suffix else None


def read_sidecar(image: Path) -> Optional[dict]:
    """The image's sidecar as a dict, or None when it has none; a sidecar that is not a JSON object is an error."""
    path = sidecar_path(image)
    if path is None or not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"sidecar {path} cannot be read as JSON ({error}); fix or remove it") from error
    if not isinstance(content, dict):
        raise UserInputError(f"sidecar {path} is not a JSON object; fix or remove it")
    return content
