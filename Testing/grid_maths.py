"""IJK -> physical maths of a ``Geometry``, for tests that check positions in patient space.

The Lib itself never needs it (its grids are handed to SimpleITK and MRML, which apply it), so it
lives with the tests: ``origin + direction @ (spacing * ijk)``, in the frame of the geometry.
"""

from __future__ import annotations

import numpy as np
from RRLSRNSuperResLib.imaging.geometry import Geometry


def index_to_physical(geometry: Geometry, ijk) -> np.ndarray:
    """Physical positions (N x 3) of continuous IJK indices (N x 3)."""
    ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
    return np.asarray(geometry.origin) + (ijk * np.asarray(geometry.spacing)) @ geometry.direction_matrix.T


def index_to_physical_matrix(geometry: Geometry) -> np.ndarray:
    """4x4 homogeneous matrix mapping IJK to physical space (Slicer's IJKToRAS in RAS)."""
    matrix = np.eye(4)
    matrix[:3, :3] = geometry.direction_matrix * np.asarray(geometry.spacing)
    matrix[:3, 3] = geometry.origin
    return matrix
