"""Stack-level preparation before the slices: template choice, intensity matching, stack alignment.

Call sites for ``stack_alignment`` and ``intensity_matching`` (written alongside, same
signatures): until they land, the template is the stack with the largest brain mask,
intensities are matched by brain medians and stack alignment is the identity (the scanner's
header geometry). Once they are merged, import ``choose_template`` from ``stack_alignment``,
``match_intensities`` from ``intensity_matching``, and make :func:`align_stacks` call
``align_stack`` (its docstring has the line); then this module's first two functions go.
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


def brain_median(stack: Stack) -> float:
    """Median intensity inside the stack's brain mask; a one-line error when it is not positive."""
    median = float(np.median(stack.voxels_kji[stack.brain_mask()]))
    if not median > 0:
        raise UserInputError(f"{stack.name}: the brain's median intensity is {median}; give a magnitude image "
                             "with a mask on the brain")
    return median


def match_intensities(stacks: Sequence[Stack], template_index: int) -> list[Stack]:
    """Stacks scaled so each brain median equals the template's."""
    target = brain_median(stacks[template_index])
    return [replace(stack, voxels_kji=stack.voxels_kji * np.float32(target / brain_median(stack)))
            for stack in stacks]


def align_stacks(stacks: Sequence[Stack], template: int) -> list[np.ndarray]:
    """4x4 LPS transform of each stack into the template's frame (x_anatomy = T @ x_nominal).

    HOOK: identity until ``stack_alignment.align_stack(moving, fixed)`` is available; then
    ``[np.eye(4) if i == template else align_stack(stack, stacks[template]).matrix ...]``.
    """
    return [np.eye(4) for _ in stacks]
