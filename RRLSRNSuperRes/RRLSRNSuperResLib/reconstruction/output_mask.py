"""The reconstruction's brain mask: where most stacks' brain masks, seen through the slice poses, agree."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..imaging.geometry import Geometry
from .observations import Observations
from .slice_operator import SliceOperator

COVERED_FRACTION = 0.5  # of a stack's typical brain coverage


def projected_brain_mask(observations: Observations, geometry: Geometry, poses: torch.Tensor) -> np.ndarray:
    """Voxels (numpy KJI, bool) inside the brain masks of at least half the stacks, holes filled.

    Each stack's brain pixels are spread into the volume with the adjoint (a coarse PSF is
    enough) and smoothed over a voxel; a voxel is inside a stack's mask where that coverage
    reaches half its typical (median) value.
    """
    coarse = observations
    operator = SliceOperator(coarse, geometry)
    stack_of_pixel = torch.as_tensor(coarse.slice_stack, device=coarse.values.device)[coarse.slice_index]
    stacks = np.unique(coarse.slice_stack)
    votes = np.zeros(operator.shape_kji, dtype=np.int32)
    for stack in stacks:
        reach = operator.adjoint((stack_of_pixel == int(stack)).to(torch.float32), poses).cpu().numpy()
        reach = ndimage.gaussian_filter(reach, 1.0)
        typical = np.median(reach[reach > 0.05 * reach.max()])
        votes += reach >= COVERED_FRACTION * typical
    agreed = votes >= int(np.ceil(len(stacks) / 2))
    labels, count = ndimage.label(agreed)
    if count > 1:
        sizes = ndimage.sum(agreed, labels, index=np.arange(1, count + 1))
        agreed = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(agreed)
