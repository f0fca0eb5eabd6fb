"""Voxel-grid geometry and the x2 (or x4) in-plane output grid (pure numpy; docs/design.md contract).

Conventions: axes are IJK (ITK/SimpleITK order: i fastest); a numpy array of the voxels is
indexed [k, j, i]. ``direction`` columns are the unit IJK axes in physical space, so a voxel
index ``ijk`` lies at ``origin + direction @ (spacing * ijk)``. The maths holds in any frame
(LPS for SimpleITK, RAS for Slicer) as long as origin and direction use the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLANES = ("auto", "i", "j", "k")
SCALES = (2, 4)  # in-plane factors: x2 is one network pass, x4 two cascaded x2 levels (engine.volume)
ISOTROPY_TOLERANCE = 1e-3
SQUARE_PIXEL_TOLERANCE = 0.01  # two axes whose spacings differ by at most 1% are an MRI pixel's sides


@dataclass(frozen=True)
class Geometry:
    """Grid of a 3D volume: size (voxels), spacing (mm), origin (centre of voxel 0), direction."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 3x3 row-major, columns are the IJK axes

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def index_to_physical(self, ijk: np.ndarray) -> np.ndarray:
        """Physical positions (N x 3) of continuous IJK indices (N x 3)."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing)) @ self.direction_matrix.T

    def physical_to_index(self, point: np.ndarray) -> np.ndarray:
        """Continuous IJK index of one physical point (3,): solves ``point = origin + direction @ (spacing * ijk)``."""
        matrix = self.direction_matrix * np.asarray(self.spacing)
        return np.linalg.solve(matrix, np.asarray(point, dtype=float) - np.asarray(self.origin))

    def index_to_physical_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping IJK to physical space (Slicer's IJKToRAS in RAS)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction_matrix * np.asarray(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix


def slice_axis(spacing: tuple[float, float, float], plane: str = "auto",
               size: tuple[int, int, int] | None = None) -> int:
    """IJK axis (0=i, 1=j, 2=k) the volume is sliced along; the other two are upsampled.

    ``i``/``j``/``k`` force the choice. ``auto`` follows what a 2D MRI stack is:

    1. an axis of ``size`` 1 (a single 2D slice) is the slice axis;
    2. MRI pixels are square in-plane, so when exactly two axes have equal spacing (within
       1%) and the third differs, those two span the acquisition plane, even when the pixels
       are coarser than the slices (2.34 x 2.34 x 2.0 mm slices along k, not along i);
    3. otherwise the thickest axis (ties go to k, then j: the usual stacking axis);
       isotropic voxels are sliced along k.

    A slice axis written in the file's header (NIfTI ``dim_info``, the DICOM slice normal)
    is better still: callers that have one pass it as ``plane``.
    """
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")
    if plane != "auto":
        return "ijk".index(plane)
    if size is not None and 1 in size:
        return max(axis for axis in range(3) if size[axis] == 1)
    spacing_array = np.asarray(spacing, dtype=float)
    equal = [[_same_spacing(spacing_array[a], spacing_array[b]) for b in range(3)] for a in range(3)]
    pairs = [(a, b) for a, b in ((0, 1), (0, 2), (1, 2)) if equal[a][b]]
    if len(pairs) == 1:
        return ({0, 1, 2} - set(pairs[0])).pop()
    thickest = int(np.argmax(spacing_array))
    if spacing_array[thickest] <= spacing_array.min() * (1 + ISOTROPY_TOLERANCE):
        return 2
    candidates = np.flatnonzero(spacing_array >= spacing_array[thickest] * (1 - ISOTROPY_TOLERANCE))
    return int(candidates.max())


def _same_spacing(a: float, b: float) -> bool:
    return abs(a - b) <= SQUARE_PIXEL_TOLERANCE * max(a, b)


def upsampled_geometry(geometry: Geometry, axis: int, scale: int = 2) -> Geometry:
    """The x``scale`` grid: in-plane size x scale, spacing / scale, origin moved by -(scale - 1) / (2 scale)
    of the old spacing per in-plane axis (-1/4 at x2, -3/8 at x4).

    The field of view is unchanged and output voxel ``scale n + (scale - 1) / 2`` sits on input voxel
    n's centre; the slice ``axis`` keeps size, spacing and position; the direction is untouched.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    size = np.asarray(geometry.size)
    spacing = np.asarray(geometry.spacing, dtype=float)
    shift = np.zeros(3)
    for upsampled in (a for a in range(3) if a != axis):
        size[upsampled] *= scale
        shift[upsampled] = -spacing[upsampled] * (scale - 1) / (2.0 * scale)
        spacing[upsampled] /= scale
    origin = np.asarray(geometry.origin, dtype=float) + geometry.direction_matrix @ shift
    return Geometry(
        size=tuple(int(s) for s in size),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=geometry.direction,
    )


def numpy_axis(ijk_axis: int) -> int:
    """Numpy axis of an IJK axis for arrays indexed [k, j, i]."""
    return 2 - ijk_axis
