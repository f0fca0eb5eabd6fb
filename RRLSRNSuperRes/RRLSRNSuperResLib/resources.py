"""Where the bundled files are: ``Resources/`` beside the module folder.

The same relative path holds in the source tree (``<root>/RRLSRNSuperRes/RRLSRNSuperResLib``
-> ``<root>/Resources``), for an editable install, and in a built Slicer extension, whose
resources are installed one level above the scripted modules' folder.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent.parent / "Resources"


def resource_path(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)


def bundled_model_path() -> Path:
    return resource_path("Models", "rrlsrn_x2.pt")


def bundled_model_card_path() -> Path:
    return resource_path("Models", "rrlsrn_x2.json")


def bundled_srcnn_path() -> Path:
    """SRCNN, the learned baseline of ``rrlsrn report`` (not offered in the Slicer module)."""
    return resource_path("Models", "srcnn_x2.pt")


def sample_volume_path() -> Path:
    return resource_path("SampleData", "sub-01_run-1_T2w.nii.gz")


def sample_mask_path() -> Path:
    return resource_path("SampleData", "sub-01_run-1_T2w_desc-brain_mask.nii.gz")
