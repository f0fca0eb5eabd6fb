"""BIDS derivatives: file names, ``dataset_description.json`` and the provenance sidecar of each output.

Names keep the source's entities in the source's order and add ``desc-<label>`` last, where
BIDS derivatives put it: ``sub-01_ses-02_run-1_T2w.nii.gz`` -> ``sub-01_ses-02_run-1_desc-rrlsrnx2_T2w.nii.gz``.
A source that already has a ``desc`` entity keeps its label in front (``desc-<old><new>``).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from .. import PACKAGE, package_version
from .dataset import Stack

DESC_SUPERRESOLVED = "rrlsrnx2"
DESC_BRAIN = "brain"
BIDS_VERSION = "1.10.0"
RAW_DATASET_KEY = "raw"  # the input dataset's name in BIDS URIs (DatasetLinks)
MASKS_DATASET_KEY = "masks"  # the masks' derivatives dataset, when one is given


def derivative_name(stack: Stack, desc: str, suffix: str, extension: str = ".nii.gz") -> str:
    """The source's file name with ``desc-<desc>`` added last and the given suffix and extension."""
    stem = Path(stack.relative).name.split(".")[0]
    *entities, _ = stem.split("_")
    kept = [entity for entity in entities if not entity.startswith("desc-")]
    old = "".join(entity[len("desc-"):] for entity in entities if entity.startswith("desc-"))
    return "_".join([*kept, f"desc-{old}{desc}", suffix]) + extension


def derivative_paths(output_dir: Path, stack: Stack) -> dict[str, Path]:
    """Where a stack's outputs go: same folders as the source, under ``output_dir``."""
    folder = output_dir / Path(stack.relative).parent
    image = folder / derivative_name(stack, DESC_SUPERRESOLVED, stack.suffix)
    return {"image": image, "sidecar": image.with_name(image.name.replace(".nii.gz", ".json")),
            "mask": folder / derivative_name(stack, DESC_BRAIN, "mask")}


def bids_uri(relative: str, dataset: str = RAW_DATASET_KEY) -> str:
    return f"bids:{dataset}:{relative}"


def code_url() -> str:
    """Where the code that ran lies (no public repository exists yet): the Lib's folder as a file URI."""
    return Path(__file__).resolve().parent.parent.as_uri()


def dataset_description(bids_dir: Path, mask_dir: Path | None = None) -> dict[str, Any]:
    """The derivative dataset's description; BIDS URIs in the sidecars resolve through its DatasetLinks."""
    links = {RAW_DATASET_KEY: bids_dir.resolve().as_uri()}
    if mask_dir is not None:
        links[MASKS_DATASET_KEY] = mask_dir.resolve().as_uri()
    return {
        "Name": "RRLSRN x2 in-plane super-resolution",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": PACKAGE, "Version": package_version(), "CodeURL": code_url(),
                         "Description": "RRLSRN x2 in-plane super-resolution, slice by slice (Song, Wang et al. "
                                        "2022), on the exact x2 grid of each input stack"}],
        "SourceDatasets": [{"URL": url} for url in links.values()],
        "DatasetLinks": links,
    }


def sidecar(stack: Stack, *, model: dict[str, str], options: dict[str, Any], mask_source: str | None,
            result: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """Provenance of one output: what it came from, with which model and options, where and how fast.

    ``RRLSRN.Model.SHA256`` and ``RRLSRN.Options`` (with the mask source) decide whether a
    rerun may skip the stack.
    """
    import torch

    sources = [bids_uri(stack.relative)] + ([mask_source] if mask_source else [])
    return {
        "Sources": sources,
        "Description": "x2 in-plane super-resolution by RRLSRN; in-plane spacing halved, field of view unchanged",
        "RRLSRN": {
            "Model": model,
            "Options": options,
            "MaskSource": mask_source,
            "AcquisitionHandling": "as-is: the stack is super-resolved on its own grid",
            "Versions": {PACKAGE: package_version(), "torch": torch.__version__, "python": platform.python_version()},
            "Device": result["device"],
            "Precision": result["precision"],
            "SliceAxis": "ijk"[result["slice_axis"]],
            "Spacing": list(result["spacing"]),
            "Seconds": round(result["seconds"], 3),
            "Command": command,
        },
    }
