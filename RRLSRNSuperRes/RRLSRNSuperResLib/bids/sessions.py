"""``rrlsrn bids --reconstruct``: the stacks of each session, and where and how its one reconstruction is written.

A session is a subject's (and session's) ``anat`` folder and one suffix: all its selected stacks go
into one ``sub-<L>[_ses-<S>]_desc-rrlsrnsvr_<suffix>.nii.gz`` in the same folder of the derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .dataset import Stack
from .derivatives import DESC_RECONSTRUCTED, DESC_RECONSTRUCTED_BRAIN, bids_uri

# Acquisition metadata that describes one stack's own grid or timing: not true of a volume fused from stacks.
PER_STACK_KEYS = ("SliceThickness", "SliceTiming", "SliceEncodingDirection", "PhaseEncodingDirection",
                  "AcquisitionTime", "AcquisitionDuration", "SeriesNumber", "SeriesDescription", "ProtocolName")


@dataclass(frozen=True)
class Session:
    """The selected stacks of one ``anat`` folder with one suffix, sorted by their path in the dataset."""

    folder: str  # e.g. ``sub-02/ses-01/anat``
    suffix: str
    stacks: tuple[Stack, ...]


def group_sessions(stacks: Sequence[Stack]) -> list[Session]:
    """The stacks grouped by folder and suffix (pybids found them; the folder holds sub- and ses-)."""
    groups: dict[tuple[str, str], list[Stack]] = {}
    for stack in stacks:
        groups.setdefault((Path(stack.relative).parent.as_posix(), stack.suffix), []).append(stack)
    return [Session(folder, suffix, tuple(sorted(members, key=lambda stack: stack.relative)))
            for (folder, suffix), members in sorted(groups.items())]


def session_paths(output_dir: Path, session: Session) -> dict[str, Path]:
    """The reconstruction, its brain mask and its sidecar, in the session's folder under ``output_dir``."""
    entities = "_".join(part for part in Path(session.folder).parts if part != "anat")  # sub-02_ses-01
    folder = output_dir / session.folder
    stem = f"{entities}_desc-{DESC_RECONSTRUCTED}_{session.suffix}"
    return {"image": folder / f"{stem}.nii.gz", "sidecar": folder / f"{stem}.json",
            "mask": folder / f"{entities}_desc-{DESC_RECONSTRUCTED_BRAIN}_mask.nii.gz"}


def common_metadata(stacks: Sequence[Stack]) -> dict[str, Any]:
    """The raw sidecars' fields on which every stack agrees (RepetitionTime, EchoTime, ...), less the
    fields that describe one stack's own slices."""
    first, *others = [stack.metadata for stack in stacks]
    return {key: value for key, value in first.items()
            if key not in PER_STACK_KEYS and all(key in other and other[key] == value for other in others)}


def sidecar_fields(session: Session, mask_sources: Optional[Sequence[str]]) -> dict[str, Any]:
    """The reconstruction sidecar's top-level BIDS fields: the common acquisition metadata, ``Sources``
    as BIDS URIs (the stacks, then their masks), ``Masks`` and ``SkullStripped``."""
    return {
        **common_metadata(session.stacks),
        "SkullStripped": False,  # the volume keeps the head around the brain; the mask is beside it
        "Sources": [bids_uri(stack.relative) for stack in session.stacks] + list(mask_sources or []),
        "Masks": list(mask_sources) if mask_sources else "automatic",
    }
