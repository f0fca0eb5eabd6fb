"""Scoring a reconstruction against its truth: cropping, resampling, global alignment, pose errors, fusion."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from RRLSRNSuperResLib.evaluation import reconstruction as scoring
from RRLSRNSuperResLib.evaluation.simulated_reconstruction import block_mean
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.reconstruction.motion import rigid_about
from RRLSRNSuperResLib.reconstruction.stacks import Stack
from scipy.spatial.transform import Rotation

OBLIQUE = Rotation.from_rotvec([0.3, 0.1, -0.2]).as_matrix()


def grid(size=(36, 32, 28), spacing=(1.0, 1.0, 1.0), origin=(12.0, -40.0, 7.5), direction=OBLIQUE) -> Geometry:
    return Geometry(size=size, spacing=spacing, origin=origin, direction=tuple(np.asarray(direction).reshape(-1)))


def smooth_head(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """A smooth ellipsoid with soft inner structure (KJI) and its mask."""
    w, h, d = geometry.size
    kk, jj, ii = np.meshgrid(*(np.linspace(-1, 1, n) for n in (d, h, w)), indexing="ij")
    radius = (ii / 0.7) ** 2 + (jj / 0.65) ** 2 + (kk / 0.6) ** 2
    voxels = 100.0 / (1.0 + np.exp((radius - 1.0) * 8)) * (1.0 + 0.3 * np.cos(3 * ii) * np.sin(2.5 * jj + kk))
    return voxels.astype(np.float32), radius < 1.0


def test_truth_crop_keeps_physical_positions():
    geometry = grid()
    voxels, brain = smooth_head(geometry)
    truth = scoring.truth_of(voxels, brain, geometry, margin=2)
    assert truth.voxels_kji.shape < voxels.shape
    back = scoring.resample_onto(voxels, geometry, truth.geometry, np.eye(4), order=1)
    np.testing.assert_allclose(back, truth.voxels_kji, atol=1e-4)
    assert truth.peak == pytest.approx(float(voxels.max() - voxels.min()))


def test_rigid_fit_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    points = rng.normal(scale=30.0, size=(50, 3))
    known = rigid_about(np.array([5.0, -3.0, 8.0]), np.array([2.0, -1.0, 4.0]), np.array([10.0, 0.0, -5.0]))
    moved = points @ known[:3, :3].T + known[:3, 3]
    np.testing.assert_allclose(scoring.rigid_fit(points, moved), known, atol=1e-9)


def toy_stack(count: int = 6) -> Stack:
    geometry = Geometry(size=(20, 16, count), spacing=(2.0, 2.0, 4.0), origin=(-20.0, -16.0, -12.0),
                        direction=tuple(OBLIQUE.reshape(-1)))
    return Stack(voxels_kji=np.ones((count, 16, 20), dtype=np.float32), geometry=geometry, name="toy")


def test_pose_errors_of_a_known_perturbation():
    stack = toy_stack()
    true = np.repeat(np.eye(4)[None], 6, axis=0)
    recovered = true.copy()
    centre = scoring.slice_centres(stack)[2]
    recovered[2] = rigid_about(np.array([0.0, 3.0, 0.0]), np.array([0.6, 0.0, 0.8]), centre)
    errors = scoring.pose_errors([recovered], [true], [stack], np.eye(4))
    assert errors["rotation_deg"][2] == pytest.approx(3.0, abs=1e-6)
    assert errors["translation_mm"][2] == pytest.approx(1.0, abs=1e-6)
    assert errors["rotation_deg_median"] == pytest.approx(0.0, abs=1e-6)
    assert max(errors["rotation_deg"][:2] + errors["rotation_deg"][3:]) == pytest.approx(0.0, abs=1e-6)


def test_a_global_rigid_offset_is_removed_before_pose_errors():
    stack = toy_stack()
    rng = np.random.default_rng(2)
    true = np.stack([rigid_about(rng.normal(size=3) * 2, rng.normal(size=3), np.zeros(3)) for _ in range(6)])
    offset = rigid_about(np.array([10.0, -20.0, 5.0]), np.array([5.0, 3.0, -7.0]), np.array([1.0, 2.0, 3.0]))
    recovered = offset[None] @ true
    alignment = scoring.global_alignment([recovered], [true], [stack])
    np.testing.assert_allclose(alignment, offset, atol=1e-9)
    errors = scoring.pose_errors([recovered], [true], [stack], alignment)
    assert errors["rotation_deg_p90"] < 1e-5 and errors["translation_mm_p90"] < 1e-6


def test_naive_fusion_matches_intensities_and_averages_where_stacks_cover():
    shape = (4, 5, 6)
    inside_a, inside_b = np.ones(shape, bool), np.zeros(shape, bool)
    inside_b[:, :, :3] = True
    a = scoring.StackOnGrid(np.full(shape, 2.0) * inside_a, inside_a, inside_a)
    b = scoring.StackOnGrid(np.full(shape, 6.0) * inside_b, inside_b, inside_b)
    fused = scoring.naive_fusion([a, b])
    np.testing.assert_allclose(fused, 2.0)
    c = scoring.StackOnGrid(np.where(inside_b, 3.0, 1.0) * 2.0 / 1.0, inside_a, inside_b)
    fused = scoring.naive_fusion([a, c])
    np.testing.assert_allclose(fused[:, :, :3], 2.0)
    np.testing.assert_allclose(fused[:, :, 3:], (2.0 + 2.0 / 6.0 * 2.0) / 2)


def test_score_of_a_known_error_and_of_the_truth_itself():
    geometry = grid()
    voxels, brain = smooth_head(geometry)
    truth = scoring.truth_of(voxels, brain, geometry)
    assert math.isinf(scoring.score(truth, truth.voxels_kji)["psnr"])
    shifted = scoring.score(truth, truth.voxels_kji + 2.0)
    assert shifted["psnr"] == pytest.approx(20 * math.log10(truth.peak / 2.0), abs=1e-4)


def test_a_result_in_a_moved_frame_scores_high_only_through_the_pose_fit():
    """The reconstruction's frame is the truth's moved by G: the fit of its poses must undo G."""
    geometry = grid()
    voxels, brain = smooth_head(geometry)
    truth = scoring.truth_of(voxels, brain, geometry)
    moved = rigid_about(np.array([8.0, 0.0, -6.0]), np.array([3.0, -2.0, 1.0]), geometry.index_to_physical(
        np.array([18.0, 16.0, 14.0]))[0])
    centre = geometry.index_to_physical(np.array([17.5, 15.5, 13.5]))[0]
    ras = np.diag([-1.0, -1.0, 1.0])
    result_grid = grid(size=(48, 48, 48), origin=tuple(centre - ras @ np.full(3, 23.5)), direction=ras)
    result_voxels = scoring.resample_onto(voxels, geometry, result_grid, np.linalg.inv(moved), order=3)
    stack = toy_stack()
    true = np.repeat(np.eye(4)[None], 6, axis=0)
    result = SimpleNamespace(volume_kji=result_voxels, geometry=result_grid, transforms=[moved[None] @ true],
                             slice_weights=[np.ones(6)], seconds=1.0, parameters={})
    scores = scoring.score_result(truth, result, [stack], [true])
    unaligned = scoring.score(truth, scoring.resample_onto(result_voxels, result_grid, truth.geometry, np.eye(4)))
    assert scores["psnr"] > 35.0
    assert unaligned["psnr"] < scores["psnr"] - 10.0
    assert scores["pose_errors"]["rotation_deg_median"] < 1e-6


def test_block_mean_keeps_the_field_of_view():
    geometry = grid(size=(8, 8, 8), spacing=(0.8, 0.8, 0.8))
    voxels = np.zeros((8, 8, 8), np.float32)
    voxels[2:4, 4:6, 0:2] = 1.0
    coarse, brain, coarse_geometry = block_mean(voxels, voxels > 0, geometry, 2)
    assert coarse_geometry.spacing == pytest.approx((1.6, 1.6, 1.6))
    k, j, i = np.argwhere(coarse == 1.0)[0]
    np.testing.assert_allclose(coarse_geometry.index_to_physical(np.array([i, j, k])),
                               geometry.index_to_physical(np.array([0.5, 4.5, 2.5])), atol=1e-9)
    assert brain.sum() == 1


def test_zero_filled_stack_keeps_positions_mask_and_profile():
    from RRLSRNSuperResLib.evaluation.simulated_reconstruction import zero_filled

    stack = toy_stack()
    w, h, d = stack.geometry.size
    kk, jj, ii = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    voxels = np.exp(-0.5 * (((ii - 9.3) / 2.0) ** 2 + ((jj - 7.6) / 2.0) ** 2)) * (kk == 3)
    mask = voxels > 0.3
    stack = Stack(voxels_kji=voxels.astype(np.float32), geometry=stack.geometry, mask_kji=mask, thickness_mm=3.5)
    finer = zero_filled(stack)
    assert finer.voxels_kji.shape == (d, 2 * h, 2 * w) and finer.thickness_mm == 3.5
    assert finer.mask_kji.sum() == 4 * mask.sum()

    def centroid(s):
        w2, h2, d2 = s.geometry.size
        k, j, i = np.meshgrid(np.arange(d2), np.arange(h2), np.arange(w2), indexing="ij")
        ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
        weights = np.clip(s.voxels_kji.ravel(), 0, None)
        return (s.geometry.index_to_physical(ijk) * weights[:, None]).sum(axis=0) / weights.sum()

    np.testing.assert_allclose(centroid(finer), centroid(stack), atol=0.02)


def test_rejected_slices_count_only_slices_with_brain():
    stack = toy_stack()
    mask = np.zeros((6, 16, 20), dtype=bool)
    mask[1:4, 5:9, 5:9] = True
    stack = Stack(voxels_kji=stack.voxels_kji, geometry=stack.geometry, mask_kji=mask)
    weights = np.array([0.0, 0.0, 1.0, 0.5, 0.0, 0.0])
    assert scoring.rejected_slices([weights], [stack]) == 1
