"""The reconstruction's voxel grid: isotropic, RAS-aligned axes, around the brain.

In LPS (SimpleITK's frame) RAS-aligned axes are the direction diag(-1, -1, 1): voxel index i
grows towards the patient's right, j towards anterior, k towards superior.
"""

from __future__ import annotations

import numpy as np
import torch

from ..imaging.geometry import Geometry
from .stacks import Stack

RAS_ALIGNED_LPS_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def brain_points_mm(stack: Stack, transform: np.ndarray) -> np.ndarray:
    """LPS corners (mm) of the box around the brain voxels of ``stack`` after the rigid ``transform`` (4x4)."""
    ijk = np.argwhere(stack.brain_mask())[:, ::-1]
    bounds = np.stack([ijk.min(axis=0) - 0.5, ijk.max(axis=0) + 0.5])  # voxel edges, IJK
    box = np.array([[bounds[a, 0], bounds[b, 1], bounds[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    points = stack.geometry.index_to_physical(box)
    return points @ transform[:3, :3].T + transform[:3, 3]


def output_geometry(points_mm: np.ndarray, resolution_mm: float, margin_mm: float) -> Geometry:
    """Isotropic RAS-aligned grid covering ``points_mm`` (N x 3, LPS) plus ``margin_mm`` on every side."""
    direction = np.asarray(RAS_ALIGNED_LPS_DIRECTION).reshape(3, 3)
    along_axes = points_mm @ direction  # coordinates along the grid's unit axes
    low = along_axes.min(axis=0) - margin_mm
    high = along_axes.max(axis=0) + margin_mm
    size = np.ceil((high - low) / resolution_mm).astype(int) + 1
    centre = (low + high) / 2.0
    first = centre - resolution_mm * (size - 1) / 2.0
    origin = direction @ first
    return Geometry(size=tuple(int(s) for s in size), spacing=(resolution_mm,) * 3,
                    origin=tuple(float(o) for o in origin), direction=RAS_ALIGNED_LPS_DIRECTION)


def physical_to_sampling_matrix(geometry: Geometry) -> torch.Tensor:
    """4x4 float64 map from LPS mm to ``grid_sample`` coordinates (x=i, y=j, z=k in [-1, 1], align_corners=True)."""
    to_index = np.linalg.inv(geometry.index_to_physical_matrix())
    scale = np.eye(4)
    size = np.asarray(geometry.size, dtype=float)
    scale[:3, :3] = np.diag(2.0 / (size - 1.0))
    scale[:3, 3] = -1.0
    return torch.as_tensor(scale @ to_index, dtype=torch.float64)


def fraction_inside(stack: Stack, transform: np.ndarray, geometry: Geometry) -> float:
    """Share of the stack's brain voxels (after its rigid ``transform``) that fall inside ``geometry``'s grid."""
    ijk = np.argwhere(stack.brain_mask())[::7, ::-1].astype(float)
    points = stack.geometry.index_to_physical(ijk) @ transform[:3, :3].T + transform[:3, 3]
    to_index = np.linalg.inv(geometry.index_to_physical_matrix())
    index = points @ to_index[:3, :3].T + to_index[:3, 3]
    inside = np.all((index >= -0.5) & (index <= np.asarray(geometry.size) - 0.5), axis=1)
    return float(inside.mean())
