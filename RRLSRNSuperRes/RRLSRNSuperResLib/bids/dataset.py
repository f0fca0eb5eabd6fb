"""The stacks of a BIDS dataset, found with pybids (never by a hand-made parser of names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UserInputError

NIFTI_EXTENSIONS = [".nii", ".nii.gz"]


@dataclass(frozen=True)
class Stack:
    """One input image: its path, its path inside the dataset (which holds the entities of its name), its
    suffix, and its sidecar metadata (BIDS inheritance applied: what the scanner recorded of the acquisition)."""

    path: Path
    relative: str
    suffix: str
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


def _layout(bids_dir: Path):
    try:
        from bids import BIDSLayout
    except ImportError as missing:
        raise UserInputError("rrlsrn bids needs pybids: pip install 'rrlsrn-superres[bids]'") from missing
    if not (bids_dir / "dataset_description.json").is_file():
        raise UserInputError(f"{bids_dir} is not a BIDS dataset (it has no dataset_description.json)")
    return BIDSLayout(str(bids_dir), validate=False)


def find_stacks(bids_dir: Path, participants: Sequence[str] = (), sessions: Sequence[str] = (),
                suffixes: Sequence[str] = ("T2w",)) -> list[Stack]:
    """The anatomical NIfTI stacks with the given suffixes, of the given participants and sessions.

    Raises ``UserInputError`` naming the labels that the dataset does not have.
    """
    layout = _layout(bids_dir)
    subjects = [label.removeprefix("sub-") for label in participants]  # BIDS Apps take 01 or sub-01
    unknown = sorted(set(subjects) - set(layout.get_subjects()))
    if unknown:
        raise UserInputError(f"no participant {', '.join(unknown)} in {bids_dir} "
                             f"(it has: {', '.join(sorted(layout.get_subjects())) or 'none'})")
    query = {"datatype": "anat", "suffix": list(suffixes), "extension": NIFTI_EXTENSIONS, "return_type": "object"}
    if subjects:
        query["subject"] = subjects
    if sessions:
        query["session"] = [label.removeprefix("ses-") for label in sessions]
    stacks = []
    for image in layout.get(**query):
        entities = image.get_entities()
        stacks.append(Stack(path=Path(image.path), relative=Path(image.path).relative_to(bids_dir).as_posix(),
                            suffix=entities["suffix"], metadata=image.get_metadata()))
    return sorted(stacks, key=lambda stack: stack.relative)

