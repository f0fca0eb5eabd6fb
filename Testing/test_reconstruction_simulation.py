"""The stack simulator: geometry in patient space, slice profile and k-space truncation, motion, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.reconstruction import motion, simulation
from scipy.spatial.transform import Rotation

SPACING = 1.0  # mm, the volume's; stacks get 2 mm pixels and 4 mm slices
OBLIQUE = Rotation.from_rotvec([0.25, -0.15, 0.4]).as_matrix()  # columns: the volume's IJK axes in LPS
ORIGIN = np.array([-31.0, 17.5, 42.0])


def oblique_geometry(size: int = 40) -> Geometry:
    return Geometry(size=(size, size, size), spacing=(SPACING,) * 3, origin=tuple(ORIGIN),
                    direction=tuple(OBLIQUE.reshape(-1)))


def positions_kji(geometry: Geometry) -> np.ndarray:
    """Physical LPS position of every voxel, shape K x J x I x 3."""
    w, h, d = geometry.size
    kk, jj, ii = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    return geometry.index_to_physical(ijk).reshape(d, h, w, 3)


def blob(geometry: Geometry, centre: np.ndarray, sigma_mm: float = 2.5) -> np.ndarray:
    distance2 = np.sum((positions_kji(geometry) - centre) ** 2, axis=-1)
    return np.exp(-0.5 * distance2 / sigma_mm**2)


def settings(**changes) -> simulation.SimulationSettings:
    base = dict(noise_fraction=0.0, motion=motion.MOTION_LEVELS["none"], margin_mm=6.0)
    base.update(changes)
    return simulation.SimulationSettings(**base)


def centroid_mm(stack) -> np.ndarray:
    """Intensity-weighted centroid of a stack in LPS mm."""
    weights = np.clip(stack.voxels_kji.astype(np.float64), 0, None)
    return (positions_kji(stack.geometry) * weights[..., None]).sum(axis=(0, 1, 2)) / weights.sum()


def test_a_blob_appears_at_its_physical_position_in_every_stack():
    geometry = oblique_geometry()
    point = geometry.index_to_physical(np.array([21.3, 18.6, 19.8]))[0]
    voxels = blob(geometry, point)
    simulated = simulation.simulate_from_arrays(voxels, voxels > 0.01, geometry, settings(seed=3))
    assert [s.orientation for s in simulated] == ["axial", "coronal", "sagittal"]
    for item in simulated:
        stack = item.stack
        assert stack.geometry.spacing == pytest.approx((2.0, 2.0, 4.0))
        assert stack.thickness_mm == pytest.approx(4.0)
        np.testing.assert_allclose(centroid_mm(stack), point, atol=0.1)
        brightest = np.unravel_index(np.argmax(stack.voxels_kji), stack.voxels_kji.shape)
        nearest = np.rint(stack.geometry.physical_to_index(point))[::-1]
        np.testing.assert_array_equal(brightest, nearest)
        np.testing.assert_array_equal(item.transforms, np.repeat(np.eye(4)[None], stack.slice_count, axis=0))


def test_slice_axes_follow_the_volume_axes_and_are_right_handed():
    for index, slice_axis in enumerate((2, 1, 0)):
        axes = simulation.stack_axes(OBLIQUE, index)
        np.testing.assert_allclose(np.abs(axes[:, 2]), np.abs(OBLIQUE[:, slice_axis]), atol=1e-12)
        assert np.linalg.det(axes) == pytest.approx(1.0)


def test_a_pose_moves_the_imaged_anatomy_by_the_interface_convention():
    """x_anatomy = T @ x_nominal: with the anatomy shifted +t, the blob shows at p - t in the header."""
    geometry = oblique_geometry()
    point = geometry.index_to_physical(np.array([20.0, 20.0, 20.0]))[0]
    voxels = blob(geometry, point)
    volume = simulation.SampledVolume.of(voxels, geometry)
    stack = simulation.simulate_from_arrays(voxels, voxels > 0.01, geometry, settings())[0].stack
    shift = np.array([1.5, -2.0, 0.7])
    transforms = np.repeat(np.eye(4)[None], stack.slice_count, axis=0)
    transforms[:, :3, 3] = shift
    moved = simulation.acquire(volume, stack.geometry, transforms, stack.thickness_mm)
    shifted = type(stack)(voxels_kji=moved, geometry=stack.geometry, thickness_mm=stack.thickness_mm)
    np.testing.assert_allclose(centroid_mm(shifted), point - shift, atol=0.1)


def test_a_constant_volume_gives_constant_stacks():
    geometry = oblique_geometry(48)
    brain = np.zeros((48, 48, 48), dtype=bool)
    brain[18:30, 18:30, 18:30] = True
    simulated = simulation.simulate_from_arrays(np.full((48, 48, 48), 7.0), brain, geometry,
                                                settings(obliquity_deg=10.0))
    for item in simulated:
        np.testing.assert_allclose(item.stack.voxels_kji, 7.0, atol=7e-3)
        assert item.stack.mask_kji.any()


@pytest.mark.parametrize("cycles_per_mm, kept", [(0.35, False), (0.12, True)])
def test_in_plane_detail_above_the_stack_nyquist_is_removed(cycles_per_mm, kept):
    """Stack pixels are 2 mm (Nyquist 0.25 cycles/mm): a 0.35 cycles/mm pattern vanishes, 0.12 stays."""
    geometry = Geometry(size=(48, 48, 48), spacing=(1.0,) * 3, origin=(0.0, 0.0, 0.0),
                        direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    x = positions_kji(geometry)[..., 0]
    voxels = 1.0 + np.cos(2 * np.pi * cycles_per_mm * x)
    brain = np.zeros((48, 48, 48), dtype=bool)
    brain[16:32, 16:32, 16:32] = True
    stack = simulation.simulate_from_arrays(voxels, brain, geometry, settings(stacks=1))[0].stack
    pattern = stack.voxels_kji[:, 4:-4, 4:-4] - 1.0
    amplitude = np.sqrt(2.0) * pattern.std()
    if kept:
        assert amplitude > 0.85
    else:
        assert amplitude < 0.02


def test_slice_profile_is_a_normalised_gaussian_of_the_thickness():
    offsets, weights = simulation.profile(4.0, 11)
    assert weights.sum() == pytest.approx(1.0)
    assert offsets[0] == pytest.approx(-6.0) and offsets[-1] == pytest.approx(6.0)
    half_maximum = weights[5] / 2
    np.testing.assert_allclose(np.interp(2.0, offsets[5:], weights[5:]), half_maximum, rtol=0.03)


def test_simulation_is_deterministic_by_seed():
    geometry = oblique_geometry(32)
    voxels = blob(geometry, geometry.index_to_physical(np.array([16.0, 15.0, 17.0]))[0], 5.0)
    chosen = settings(stacks=2, noise_fraction=0.05, motion=motion.MOTION_LEVELS["moderate"])
    first = simulation.simulate_from_arrays(voxels, voxels > 0.05, geometry, chosen)
    again = simulation.simulate_from_arrays(voxels, voxels > 0.05, geometry, chosen)
    other = simulation.simulate_from_arrays(voxels, voxels > 0.05, geometry,
                                            simulation.SimulationSettings(**{**chosen.__dict__, "seed": 1}))
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a.stack.voxels_kji, b.stack.voxels_kji)
        np.testing.assert_array_equal(a.transforms, b.transforms)
        assert not np.allclose(a.transforms, c.transforms)


def test_drift_has_the_requested_rms_and_jumps_are_the_largest_steps():
    centre = np.array([10.0, -5.0, 30.0])
    drift_only = motion.MotionSettings(2.0, 1.0, 0, 0.0, 0.0)
    transforms, order = motion.draw_motion(30, drift_only, centre, 2, np.random.default_rng(4))
    angles = np.degrees(Rotation.from_matrix(transforms[:, :3, :3]).magnitude())
    shifts = np.linalg.norm(transforms[:, :3, :3] @ centre + transforms[:, :3, 3] - centre, axis=1)
    assert np.sqrt(np.mean(angles**2)) == pytest.approx(2.0, rel=1e-9)
    assert np.sqrt(np.mean(shifts**2)) == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_array_equal(order[:4], [0, 2, 4, 6])
    with_jumps = motion.MotionSettings(0.5, 0.25, 3, 6.0, 3.0)
    transforms, order = motion.draw_motion(30, with_jumps, centre, 1, np.random.default_rng(4))
    in_time = transforms[order]
    steps = Rotation.from_matrix(in_time[1:, :3, :3] @ np.transpose(in_time[:-1, :3, :3], (0, 2, 1))).magnitude()
    steps = np.sort(np.degrees(steps))
    assert np.all(np.abs(steps[-3:] - 6.0) < 1.0)
    assert steps[-4] < 1.0


def test_no_motion_is_exactly_the_identity():
    transforms, _ = motion.draw_motion(12, motion.MOTION_LEVELS["none"], np.array([5.0, 6.0, 7.0]), 2,
                                       np.random.default_rng(0))
    np.testing.assert_array_equal(transforms, np.repeat(np.eye(4)[None], 12, axis=0))
