"""BIDS derivatives: file names, ``dataset_description.json`` and the provenance sidecar of each output.

Names keep the source's entities in the source's order and add ``desc-<label>`` last, where
BIDS derivatives put it: ``sub-01_ses-02_run-1_T2w.nii.gz`` -> ``sub-01_ses-02_run-1_desc-rrlsrnx2_T2w.nii.gz``.
A source that already has a ``desc`` entity keeps its label in front (``desc-<old><new>``).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from .. import PACKAGE, package_version
from ..errors import UserInputError
from .dataset import Stack

DESC_SUPERRESOLVED = "rrlsrnx2"  # "rrlsrnx4" at --scale 4 (derivative_paths)
DESC_BRAIN = "brain"
DESC_RECONSTRUCTED = "rrlsrnsvr"  # --reconstruct: one volume per session from all its stacks
DESC_RECONSTRUCTED_BRAIN = DESC_RECONSTRUCTED + DESC_BRAIN  # its brain mask (another space than the stacks')
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


def derivative_paths(output_dir: Path, stack: Stack, scale: int = 2) -> dict[str, Path]:
    """Where a stack's outputs go: same folders as the source, under ``output_dir``. The x4 outputs
    (``--scale 4``) have their own labels, so they sit beside the x2 ones: ``desc-rrlsrnx4`` and the
    mask on their grid ``desc-brainx4``."""
    folder = output_dir / Path(stack.relative).parent
    image = folder / derivative_name(stack, f"rrlsrnx{scale}", stack.suffix)
    mask_desc = DESC_BRAIN if scale == 2 else f"{DESC_BRAIN}x{scale}"
    return {"image": image, "sidecar": image.with_name(image.name.replace(".nii.gz", ".json")),
            "mask": folder / derivative_name(stack, mask_desc, "mask")}


def bids_uri(relative: str, dataset: str = RAW_DATASET_KEY) -> str:
    return f"bids:{dataset}:{relative}"


def dataset_link(target: Path, output_dir: Path) -> str:
    """Where a linked dataset lies, relative to the derivatives (``../..`` for BIDS_DIR/derivatives/rrlsrn):
    the pair can be moved or shared together, and no machine's paths are recorded."""
    return Path(os.path.relpath(target.resolve(), output_dir.resolve())).as_posix()


def dataset_description(bids_dir: Path, output_dir: Path, mask_dir: Path | None = None) -> dict[str, Any]:
    """The derivative dataset's description; BIDS URIs in the sidecars resolve through its DatasetLinks.

    The authors are the source dataset's (these are derivatives of their data). No CodeURL: the
    code has no public address yet, and a local path would name the machine it ran on.
    """
    links = {RAW_DATASET_KEY: dataset_link(bids_dir, output_dir)}
    if mask_dir is not None:
        links[MASKS_DATASET_KEY] = dataset_link(mask_dir, output_dir)
    description = {
        "Name": "RRLSRN in-plane super-resolution",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": PACKAGE, "Version": package_version(),
                         "Description": "RRLSRN x2 (or x4) in-plane super-resolution, slice by slice (Song, Wang et "
                                        "al. 2022), on the exact x2 (x4) grid of each input stack"}],
        "SourceDatasets": [{"URL": f"bids:{key}:"} for key in links],
        "DatasetLinks": links,
    }
    authors = _source_description(bids_dir).get("Authors")
    if authors:
        description["Authors"] = authors
    return description


def _source_description(bids_dir: Path) -> dict[str, Any]:
    try:
        content = json.loads((bids_dir / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def dataset_readme() -> str:
    """The derivative dataset's README: what the files are and how they were made."""
    return (
        "# RRLSRN in-plane super-resolution\n\n"
        f"Derivatives written by {PACKAGE} {package_version()}. Each `*_desc-{DESC_SUPERRESOLVED}_<suffix>.nii.gz` "
        "is its source stack super-resolved x2 in-plane, slice by slice, by the RRLSRN network (Song, Wang et al., "
        "Deep robust residual network for super-resolution of 2D fetal brain MRI, Sci. Rep. 2022): in-plane "
        "spacing halved, field of view, slice positions and orientation unchanged. Its JSON sidecar carries the "
        "source's acquisition metadata, the model (SHA256), the options and the command that made it. "
        f"`*_desc-{DESC_BRAIN}_mask.nii.gz` is the brain mask used, on the x2 grid. With `--scale 4` the stacks are "
        "super-resolved x4 in-plane (two cascaded x2 levels, the second a network trained for it; in-plane "
        "spacing / 4) into `*_desc-rrlsrnx4_<suffix>.nii.gz`, their masks `*_desc-brainx4_mask.nii.gz`. "
        "With `--reconstruct`, "
        f"`sub-<label>[_ses-<label>]_desc-{DESC_RECONSTRUCTED}_<suffix>.nii.gz` is instead one motion-corrected "
        "isotropic volume reconstructed from all the session's stacks (each x2 in-plane by RRLSRN first), "
        f"`*_desc-{DESC_RECONSTRUCTED_BRAIN}_mask.nii.gz` its brain mask; its sidecar records every slice's pose "
        "and weight. `logs/` holds each run's log.\n"
    )


def versions() -> dict[str, str]:
    """The versions that made an output: this package, torch and Python."""
    import torch

    return {PACKAGE: package_version(), "torch": torch.__version__, "python": platform.python_version()}


def sidecar(stack: Stack, *, input_identity: dict[str, Any], model: dict[str, str], options: dict[str, Any],
            mask_source: str | None, result: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """The output's sidecar: the source's acquisition metadata, and the provenance: what it came from
    (with the input's SHA256), with which model and options, where and how fast.

    ``RRLSRN.Input``, ``RRLSRN.Model.SHA256`` and ``RRLSRN.Options`` (with the mask source) decide
    whether a rerun may skip the stack.
    """
    sources = [bids_uri(stack.relative)] + ([mask_source] if mask_source else [])
    return {
        **stack.metadata,  # the source's acquisition (RepetitionTime, EchoTime, ...): still true in-plane x2
        "SkullStripped": bool(stack.metadata.get("SkullStripped")) or bool(options.get("extract_brain")),
        "Sources": sources,
        "Description": _description(options.get("scale", 2)),
        "RRLSRN": {
            "Input": input_identity,
            "Model": model,
            "Options": options,
            "MaskSource": mask_source,
            "AcquisitionHandling": "as-is: the stack is super-resolved on its own grid",
            "Versions": versions(),
            "Device": result["device"],
            "Precision": result["precision"],
            "SliceAxis": "ijk"[result["slice_axis"]],
            "Spacing": list(result["spacing"]),
            "Seconds": round(result["seconds"], 3),
            "Command": command,
        },
    }


def _description(scale: int) -> str:
    spacing = "halved" if scale == 2 else f"divided by {scale}"
    cascade = "" if scale == 2 else " (two cascaded x2 levels)"
    return f"x{scale} in-plane super-resolution by RRLSRN{cascade}; in-plane spacing {spacing}, field of view unchanged"


def find_mask(derivatives_dir: Path, stack: Stack) -> Path:
    """The brain mask of a stack in a derivatives folder: same name with ``desc-brain`` and suffix ``mask``."""
    candidate = derivatives_dir / Path(stack.relative).parent / derivative_name(stack, DESC_BRAIN, "mask")
    if not candidate.is_file():
        raise UserInputError(f"no brain mask for {stack.relative} in {derivatives_dir} (looked for {candidate})")
    return candidate
