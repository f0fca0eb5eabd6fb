"""Rigid transforms as 4x4 LPS matrices and as 6 parameters about a centre.

Six parameters = rotation vector (radians, axis * angle) then translation (mm). About a centre
``c``: x' = R (x - c) + c + t, so the translation is the centre's displacement and small
rotations do not drag far-away points (a slice's own centre keeps the numbers well scaled).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation


def rotation_matrices(rotation_vectors: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) of rotation vectors (N, 3): the exponential of their skew matrices.

    Differentiable everywhere, including at zero rotation (``torch.linalg.matrix_exp``).
    """
    x, y, z = rotation_vectors.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*x.shape, 3, 3)
    return torch.linalg.matrix_exp(skew)


def rigid_matrices(params: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Batched 4x4 matrices (N, 4, 4) of parameters (N, 6) about centres (N, 3) (mm), differentiable."""
    rotation = rotation_matrices(params[:, :3])
    translation = centres + params[:, 3:] - (rotation @ centres.unsqueeze(-1)).squeeze(-1)
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(params.shape[0], 1, 4, dtype=params.dtype, device=params.device)
    bottom[:, 0, 3] = 1.0
    return torch.cat([top, bottom], dim=1)


def rigid_matrix(params6: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """4x4 float64 matrix of 6 parameters (rotation vector in radians, translation in mm) about ``centre``."""
    params = torch.as_tensor(np.asarray(params6, dtype=np.float64).reshape(1, 6))
    centres = torch.as_tensor(np.asarray(centre, dtype=np.float64).reshape(1, 3))
    return rigid_matrices(params, centres)[0].numpy()


def rigid_params(matrix: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The 6 parameters of a rigid 4x4 matrix about ``centre``; the inverse of :func:`rigid_matrix`."""
    matrix = np.asarray(matrix, dtype=np.float64)
    centre = np.asarray(centre, dtype=np.float64)
    rotation_vector = Rotation.from_matrix(matrix[:3, :3]).as_rotvec()
    translation = matrix[:3, :3] @ centre + matrix[:3, 3] - centre
    return np.concatenate([rotation_vector, translation])


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle (degrees) of a 3x3 rotation, or of a 4x4 rigid matrix's rotation part."""
    rotation = np.asarray(rotation, dtype=np.float64)[:3, :3]
    cosine = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))
