"""Stack-level preparation before the slices: template choice, intensity matching, stack alignment.

The template is ``stack_alignment.choose_template``'s (most brain seen, least motion); every other
stack is aligned rigidly to it (``stack_alignment.align_stack``, robust to turns of tens of degrees)
and brought to a common intensity scale by its brain median (``intensity_matching.brain_median``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import UserInputError
from .intensity_matching import brain_median
from .stack_alignment import align_stack
from .stacks import Stack


def match_intensities(stacks: Sequence[Stack], template: int) -> tuple[list[Stack], float]:
    """Stacks scaled so each brain median is 1, and the template's median (to restore its scale)."""
    medians = [brain_median(stack) for stack in stacks]
    for stack, median in zip(stacks, medians):
        if not median > 0:
            raise UserInputError(f"{stack.name}: the brain's median intensity is {median}; give a magnitude image "
                                 "with a mask on the brain")
    return [replace(stack, voxels_kji=stack.voxels_kji / median) for stack, median in zip(stacks, medians)], \
        medians[template]


def align_stacks(stacks: Sequence[Stack], template: int) -> list[np.ndarray]:
    """4x4 LPS transform of each stack into the template's frame (x_anatomy = T @ x_nominal)."""
    return [np.eye(4) if index == template else align_stack(stack, stacks[template]).matrix
            for index, stack in enumerate(stacks)]
