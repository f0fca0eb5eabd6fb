"""Scores of a multi-stack reconstruction against the volume its stacks were simulated from, with baselines.

Every method is resampled onto the truth's grid (cropped to the brain's bounding box plus a margin) in
physical space and scored with ``metrics``' PSNR and SSIM, along the truth's k axis. Region: the truth's
brain mask itself (:data:`REGION`; not dilated as ``metrics.evaluation_region`` does for 2D stacks: the
reconstruction is made from the stacks' brain pixels only, so outside the brain it has no data and no
claim), border shaved and small slices skipped as ``metrics`` does; data range = truth max - min.

A reconstruction lives in its template stack's frame, and the template itself moved; so, for comparing
only, one global rigid transform maps the truth frame onto each method's frame. It is estimated from the
poses, never from the images: the rigid least-squares fit between points carried by the true slice poses
and by the recovered ones (:data:`ALIGNMENT`). The baselines, which keep the headers' positions, get the
same fit with identity poses, so no method is scored in a frame that favours it. Pose errors are then
measured after removing that transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..imaging.geometry import Geometry
from . import metrics

ALIGNMENT = ("rigid least-squares fit of true to recovered slice poses (each slice's brain centre and 4 points "
             "20 mm from it in-plane), over the slices the reconstruction kept; baselines: identity poses")
REGION = ("the truth's brain mask (not dilated), border_pixels shaved in-plane, slices under min_slice_fraction "
          "skipped; slices along the truth's k axis")
POINT_OFFSET_MM = 20.0
TRUTH_MARGIN_VOXELS = 6


@dataclass(frozen=True)
class Truth:
    """The truth cropped around the brain, with the scored region (KJI) and the PSNR peak."""

    voxels_kji: np.ndarray
    mask_kji: np.ndarray
    geometry: Geometry  # LPS
    region: np.ndarray
    peak: float


def truth_of(voxels_kji: np.ndarray, brain_kji: np.ndarray, geometry: Geometry,
             margin: int = TRUTH_MARGIN_VOXELS) -> Truth:
    """Crop the truth to the brain's bounding box plus ``margin`` voxels and fix region and peak."""
    indices = np.argwhere(brain_kji)
    low = np.maximum(indices.min(axis=0) - margin, 0)
    high = np.minimum(indices.max(axis=0) + margin + 1, brain_kji.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    cropped = Geometry(size=tuple(int(s) for s in (high - low)[::-1]), spacing=geometry.spacing,
                       origin=tuple(float(v) for v in geometry.index_to_physical(low[::-1])[0]),
                       direction=geometry.direction)
    voxels = np.asarray(voxels_kji, dtype=np.float32)[box]
    mask = np.asarray(brain_kji, dtype=bool)[box]
    region = metrics.skip_small_slices(metrics.shave_border(mask))
    return Truth(voxels, mask, cropped, region, metrics.data_range(voxels_kji))


def score(truth: Truth, estimate_kji: np.ndarray) -> dict:
    """PSNR (dB) and SSIM of an estimate on the truth's cropped grid."""
    return {"psnr": metrics.psnr(truth.voxels_kji, estimate_kji, truth.region, truth.peak),
            "ssim": metrics.ssim(truth.voxels_kji, estimate_kji, truth.region, truth.peak)}


def source_indices(source: Geometry, target: Geometry, matrix: np.ndarray) -> np.ndarray:
    """Continuous numpy KJI indices (3 x N) in ``source`` of every ``target`` voxel, x_source = matrix @ x_target."""
    width, height, depth = target.size
    kk, jj, ii = np.meshgrid(np.arange(depth), np.arange(height), np.arange(width), indexing="ij")
    points = target.index_to_physical(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1))
    points = points @ matrix[:3, :3].T + matrix[:3, 3]
    scaled = source.direction_matrix * np.asarray(source.spacing)
    return np.linalg.solve(scaled, (points - np.asarray(source.origin)).T)[::-1]


def resample_onto(voxels_kji: np.ndarray, source: Geometry, target: Geometry, matrix: np.ndarray,
                  order: int = 1) -> np.ndarray:
    """``voxels_kji`` (on ``source``) at the voxels of ``target`` (KJI, float32), 0 outside; ``order`` 1 or 3."""
    from scipy import ndimage

    values = ndimage.map_coordinates(np.asarray(voxels_kji, dtype=np.float64), source_indices(source, target, matrix),
                                     order=order, mode="grid-constant", cval=0.0)
    width, height, depth = target.size
    return values.reshape(depth, height, width).astype(np.float32)


def covered(source: Geometry, target: Geometry, matrix: np.ndarray) -> np.ndarray:
    """Which ``target`` voxels (bool KJI) fall inside ``source``'s field of view."""
    kji = source_indices(source, target, matrix)
    shape = np.array(source.size[::-1])[:, None]
    inside = np.all((kji >= -0.5) & (kji <= shape - 0.5), axis=0)
    width, height, depth = target.size
    return inside.reshape(depth, height, width)


def rigid_fit(source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """4x4 rigid ``M`` minimising sum |M @ source - target|^2 (Kabsch; points N x 3, mm)."""
    source_mean, target_mean = source_points.mean(axis=0), target_points.mean(axis=0)
    covariance = (source_points - source_mean).T @ (target_points - target_mean)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = target_mean - rotation @ source_mean
    return matrix


def slice_centres(stack) -> np.ndarray:
    """Nominal centre (K x 3, LPS mm) of each slice's brain pixels; the slice's centre where it has none."""
    mask = stack.brain_mask()
    width, height, count = stack.geometry.size
    centres = np.empty((count, 3))
    for k in range(count):
        pixels = np.argwhere(mask[k])
        ji = pixels.mean(axis=0) if pixels.size else np.array([(height - 1) / 2.0, (width - 1) / 2.0])
        centres[k] = stack.geometry.index_to_physical(np.array([ji[1], ji[0], k]))[0]
    return centres


def _pose_points(stack) -> np.ndarray:
    """K x 5 x 3: each slice's brain centre and 4 points ``POINT_OFFSET_MM`` from it along the in-plane axes."""
    axes = stack.geometry.direction_matrix[:, :2].T * POINT_OFFSET_MM
    offsets = np.vstack([np.zeros(3), axes, -axes])
    return slice_centres(stack)[:, None, :] + offsets[None]


def _moved(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (K x P x 3) moved each by its slice's 4x4 transform."""
    return np.einsum("kab,kpb->kpa", transforms[:, :3, :3], points) + transforms[:, None, :3, 3]


def global_alignment(recovered: Sequence[np.ndarray], true: Sequence[np.ndarray], stacks: Sequence,
                     weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """4x4 ``G`` with x_method_frame = G @ x_truth_frame, fitted over the slices of positive weight."""
    sources, targets = [], []
    for index, stack in enumerate(stacks):
        points = _pose_points(stack)
        kept = np.ones(len(points), dtype=bool) if weights is None else np.asarray(weights[index]) > 0
        sources.append(_moved(np.asarray(true[index]), points)[kept].reshape(-1, 3))
        targets.append(_moved(np.asarray(recovered[index]), points)[kept].reshape(-1, 3))
    return rigid_fit(np.vstack(sources), np.vstack(targets))


def pose_errors(recovered: Sequence[np.ndarray], true: Sequence[np.ndarray], stacks: Sequence,
                alignment: np.ndarray) -> dict:
    """Residual rotation (degrees) and translation at the brain centre (mm) after ``alignment`` of each slice
    with brain pixels (the others carry no data to register)."""
    from ..reconstruction.rigid import rotation_angle_deg

    rotations, translations = [], []
    for index, stack in enumerate(stacks):
        with_brain = stack.brain_mask().any(axis=(1, 2))
        expected = (alignment[None] @ np.asarray(true[index]))[with_brain]
        found = np.asarray(recovered[index])[with_brain]
        centres = slice_centres(stack)[with_brain][:, None, :]
        translations.extend(np.linalg.norm(_moved(found, centres) - _moved(expected, centres), axis=-1)[:, 0])
        rotations.extend(rotation_angle_deg(f[:3, :3] @ e[:3, :3].T) for f, e in zip(found, expected))
    rotations, translations = np.asarray(rotations), np.asarray(translations)
    return {"rotation_deg_median": float(np.median(rotations)), "rotation_deg_p90": float(np.percentile(rotations, 90)),
            "translation_mm_median": float(np.median(translations)),
            "translation_mm_p90": float(np.percentile(translations, 90)), "slices": int(rotations.size),
            "rotation_deg": rotations.round(4).tolist(), "translation_mm": translations.round(4).tolist()}


@dataclass(frozen=True)
class StackOnGrid:
    """One stack resampled onto a grid (the truth's, or a fused volume's): values, field of view, brain mask."""

    values: np.ndarray
    inside: np.ndarray
    brain: np.ndarray


def stack_on_grid(stack, geometry: Geometry, matrix: np.ndarray, order: int) -> StackOnGrid:
    """``stack`` on the voxels of ``geometry`` through x_stack_header = matrix @ x_grid."""
    values = resample_onto(stack.voxels_kji, stack.geometry, geometry, matrix, order)
    brain = resample_onto(stack.brain_mask().astype(np.float32), stack.geometry, geometry, matrix, 1) > 0.5
    return StackOnGrid(values, covered(stack.geometry, geometry, matrix), brain)


def naive_fusion(resampled: Sequence[StackOnGrid]) -> np.ndarray:
    """Average of the stacks where each covers, each first scaled to the first stack's mean in their common brain."""
    reference = resampled[0]
    total = np.zeros_like(reference.values, dtype=np.float64)
    count = np.zeros(reference.values.shape)
    for item in resampled:
        common = reference.brain & item.brain
        scale = float(reference.values[common].mean() / item.values[common].mean()) if common.any() else 1.0
        total += scale * item.values * item.inside
        count += item.inside
    return (total / np.maximum(count, 1)).astype(np.float32)


def identity_poses(stacks: Sequence) -> list[np.ndarray]:
    """The poses of the headers as they are (no motion correction): identity for every slice."""
    return [np.repeat(np.eye(4)[None], stack.geometry.size[2], axis=0) for stack in stacks]


def score_baselines(truth: Truth, stacks: Sequence, true_poses: Sequence[np.ndarray]) -> dict:
    """Each stack alone (linear and cubic) and the naive average of the linearly resampled stacks."""
    alignment = global_alignment(identity_poses(stacks), true_poses, stacks)
    scores = {}
    linear = []
    for order, label in ((1, "linear"), (3, "cubic")):
        for stack in stacks:
            resampled = stack_on_grid(stack, truth.geometry, alignment, order)
            scores[f"stack_{label}:{stack.name}"] = score(truth, resampled.values)
            if order == 1:
                linear.append(resampled)
    for label in ("linear", "cubic"):
        best = max((key for key in scores if key.startswith(f"stack_{label}:")), key=lambda key: scores[key]["psnr"])
        scores[f"best_stack_{label}"] = {**scores[best], "stack": best.split(":", 1)[1]}
    scores["naive_fusion"] = score(truth, naive_fusion(linear))
    return scores


def rejected_slices(slice_weights: Sequence[np.ndarray], stacks: Sequence) -> int:
    """Slices with brain pixels that the reconstruction gave weight 0 (slices without brain have 0 anyway)."""
    return int(sum(np.sum((np.asarray(w) <= 0) & stack.brain_mask().any(axis=(1, 2)))
                   for w, stack in zip(slice_weights, stacks)))


def score_result(truth: Truth, result, stacks: Sequence, true_poses: Sequence[np.ndarray]) -> dict:
    """A ``ReconstructionResult`` resampled (linear) onto the truth through the poses' global fit; pose errors."""
    alignment = global_alignment(result.transforms, true_poses, stacks, result.slice_weights)
    estimate = resample_onto(result.volume_kji, result.geometry, truth.geometry, alignment, 1)
    return {**score(truth, estimate), "pose_errors": pose_errors(result.transforms, true_poses, stacks, alignment),
            "rejected_slices": rejected_slices(result.slice_weights, stacks), "seconds": float(result.seconds),
            "alignment_matrix": alignment.tolist(), "parameters": result.parameters}
