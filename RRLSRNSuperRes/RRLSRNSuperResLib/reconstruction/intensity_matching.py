"""Intensity matching across stacks: one scale per stack so brain intensities agree with the template's.

MR magnitude images have an arbitrary per-acquisition gain (coil loading, receiver scaling) but no
offset: zero signal is zero. So each stack is multiplied by one factor, the ratio of the template's
brain median to its own; a median ignores the few slices corrupted by motion or signal drop-out.
A fitted offset is left out on purpose: it would let noise-floor and partial-volume differences
shift the dark background, which the slice-to-volume fusion then sees as inconsistency.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import UserInputError
from .stack_alignment import brain_mask
from .stacks import Stack


def brain_median(stack: Stack) -> float:
    """Median intensity inside the stack's brain mask (or its Otsu foreground when no mask is given)."""
    values = np.asarray(stack.voxels_kji)[brain_mask(stack)]
    if values.size == 0:
        raise UserInputError(f"the brain mask of stack {stack.name} is empty: give a mask that covers the brain")
    return float(np.median(values))


def match_intensities(stacks: Sequence[Stack], template_index: int, target: float | None = None) -> list[Stack]:
    """New stacks, each scaled once so its brain median equals ``target`` (None: the template's); the
    inputs are left untouched."""
    target = brain_median(stacks[template_index]) if target is None else target
    matched = []
    for stack in stacks:
        median = brain_median(stack)
        if not median > 0:
            raise UserInputError(f"stack {stack.name} has no positive signal in its brain mask: check the mask")
        voxels = (np.asarray(stack.voxels_kji, dtype=np.float32) * np.float32(target / median)).astype(np.float32)
        matched.append(replace(stack, voxels_kji=voxels))
    return matched
