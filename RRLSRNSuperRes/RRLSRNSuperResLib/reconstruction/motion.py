"""Simulated fetal motion: per-slice rigid poses made of a smooth drift plus a few sudden jumps.

A pose is a 4x4 LPS matrix ``T`` with x_anatomy = T @ x_nominal (the interface's convention), a
rotation about the brain's centre followed by a translation. Motion is drawn along the acquisition
time (slice order), so with an interleaved order neighbouring slices move apart, as in real scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionSettings:
    """Amplitudes: drift as the RMS over a stack's slices, jumps as the size of each step."""

    drift_rotation_deg: float = 2.0  # RMS of the drift's rotation angle
    drift_translation_mm: float = 1.0  # RMS of the drift's translation length
    jumps: int = 2  # sudden pose steps per stack (the fetus moves, then stays)
    jump_rotation_deg: float = 3.0
    jump_translation_mm: float = 1.5
    smoothness_slices: float = 3.0  # Gaussian low-pass of the random walk, in acquisition steps


MOTION_LEVELS = {
    "none": MotionSettings(0.0, 0.0, 0, 0.0, 0.0),
    "moderate": MotionSettings(),
    "severe": MotionSettings(5.0, 2.5, 3, 8.0, 4.0),
}


def acquisition_order(count: int, interleave: int) -> np.ndarray:
    """Slice indices in the order they were acquired: 0, n, 2n, ..., 1, n+1, ... for ``interleave`` n."""
    step = max(1, int(interleave))
    return np.concatenate([np.arange(start, count, step) for start in range(step)])


def _scaled_rms(vectors: np.ndarray, rms: float) -> np.ndarray:
    """``vectors`` (N x 3) scaled so that the RMS of their lengths is ``rms`` (zeros stay zeros)."""
    current = float(np.sqrt(np.mean(np.sum(vectors**2, axis=1))))
    return vectors * (rms / current) if current > 0 else vectors


def _random_unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.normal(size=(count, 3))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _drift(count: int, settings: MotionSettings, rng: np.random.Generator) -> np.ndarray:
    """(count x 6) rotation vectors (degrees) and translations (mm): a low-passed random walk, zero mean."""
    from scipy import ndimage

    walk = np.cumsum(rng.normal(size=(count, 6)), axis=0)
    if settings.smoothness_slices > 0 and count > 1:
        walk = ndimage.gaussian_filter1d(walk, settings.smoothness_slices, axis=0, mode="nearest")
    walk -= walk.mean(axis=0)
    walk[:, :3] = _scaled_rms(walk[:, :3], settings.drift_rotation_deg)
    walk[:, 3:] = _scaled_rms(walk[:, 3:], settings.drift_translation_mm)
    return walk


def _jumps(count: int, settings: MotionSettings, rng: np.random.Generator) -> np.ndarray:
    """(count x 6) pose steps: at ``jumps`` random times the pose changes by the jump amplitudes and stays."""
    steps = np.zeros((count, 6))
    jumps = min(settings.jumps, count - 1)
    if jumps <= 0:
        return steps
    times = rng.choice(np.arange(1, count), size=jumps, replace=False)
    steps[times, :3] = _random_unit_vectors(rng, jumps) * settings.jump_rotation_deg
    steps[times, 3:] = _random_unit_vectors(rng, jumps) * settings.jump_translation_mm
    return np.cumsum(steps, axis=0)


def rigid_about(rotation_vector_deg: np.ndarray, translation_mm: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """4x4 matrix: rotate by ``rotation_vector_deg`` about ``centre`` (LPS mm), then translate."""
    from scipy.spatial.transform import Rotation

    matrix = np.eye(4)
    rotation = Rotation.from_rotvec(np.radians(rotation_vector_deg)).as_matrix()
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.asarray(centre) + np.asarray(translation_mm) - rotation @ np.asarray(centre)
    return matrix


def draw_motion(count: int, settings: MotionSettings, centre: np.ndarray, interleave: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice poses (count x 4 x 4, slice order) and the acquisition order they were drawn along.

    Drift plus jumps along the acquisition time, centred (zero mean pose parameters over the stack);
    without any amplitude every pose is exactly the identity.
    """
    order = acquisition_order(count, interleave)
    parameters = _drift(count, settings, rng) + _jumps(count, settings, rng)
    parameters -= parameters.mean(axis=0)
    poses_in_time = [rigid_about(p[:3], p[3:], centre) for p in parameters]
    transforms = np.empty((count, 4, 4))
    transforms[order] = np.asarray(poses_in_time).reshape(count, 4, 4)
    return transforms, order
