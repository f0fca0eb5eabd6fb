"""Stack-level preparation before the slices: template choice, intensity matching, stack alignment.

Call sites for ``stack_alignment`` (written alongside): until it lands, the template is the
stack with the largest brain mask, intensities are matched by in-mask medians and stack
alignment is the identity (the scanner's header geometry). Replace the bodies with calls to
``stack_alignment.choose_template`` / ``match_intensities`` / ``align_stack`` when it exists.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import UserInputError
from .stacks import Stack


def choose_template(stacks: Sequence[Stack]) -> int:
    """Index of the stack whose brain mask holds the most volume (mm^3)."""
    volumes = [stack.brain_mask().sum() * float(np.prod(stack.geometry.spacing)) for stack in stacks]
    return int(np.argmax(volumes))


def match_intensities(stacks: Sequence[Stack], template: int) -> tuple[list[Stack], float]:
    """Stacks scaled so each brain median is 1, and the template's median (to restore its scale)."""
    medians = [float(np.median(stack.voxels_kji[stack.brain_mask()])) for stack in stacks]
    for stack, median in zip(stacks, medians):
        if not median > 0:
            raise UserInputError(f"{stack.name}: the brain's median intensity is {median}; give a magnitude image "
                                 "with a mask on the brain")
    return [replace(stack, voxels_kji=stack.voxels_kji / median) for stack, median in zip(stacks, medians)], \
        medians[template]


def align_stacks(stacks: Sequence[Stack], template: int) -> list[np.ndarray]:
    """4x4 LPS transform of each stack into the template's frame (x_anatomy = T @ x_nominal).

    HOOK: identity until ``stack_alignment.align_stack(moving, fixed)`` is available; then
    ``[np.eye(4) if i == template else align_stack(stack, stacks[template]).matrix ...]``.
    """
    return [np.eye(4) for _ in stacks]
