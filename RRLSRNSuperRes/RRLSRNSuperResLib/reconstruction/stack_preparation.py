"""Stack-level alignment before the slices: every stack brought rigidly into the template's frame.

The template is ``stack_alignment.choose_template``'s (most brain seen, least motion); every other
stack is aligned to it by ``stack_alignment.align_stack`` (robust to turns of tens of degrees).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .stack_alignment import align_stack
from .stacks import Stack


def align_stacks(stacks: Sequence[Stack], template: int) -> list[np.ndarray]:
    """4x4 LPS transform of each stack into the template's frame (x_anatomy = T @ x_nominal)."""
    return [np.eye(4) if index == template else align_stack(stack, stacks[template]).matrix
            for index, stack in enumerate(stacks)]
