"""The slice acquisition operator: exact adjoint, constants preserved, geometry in patient space."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from reconstruction_phantoms import oblique_direction, stack_geometry
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.reconstruction.observations import observations_from_stacks, subsampled
from RRLSRNSuperResLib.reconstruction.output_grid import brain_points_mm, output_geometry
from RRLSRNSuperResLib.reconstruction.psf import FWHM_TO_SIGMA, PsfSampling, stack_psf
from RRLSRNSuperResLib.reconstruction.rigid import rigid_matrices
from RRLSRNSuperResLib.reconstruction.slice_operator import SliceOperator
from RRLSRNSuperResLib.reconstruction.stacks import Stack

SAMPLING = PsfSampling(z_step_mm=1.0, inplane_sigma_mm=0.4)


def _oblique_stack(pixel_mm=1.5, slice_mm=3.0, thickness_mm=3.5, angles=(25.0, -20.0, 10.0), seed=0) -> Stack:
    reference = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    reference.SetOrigin((4.0, -7.0, 11.0))
    size, spacing, origin, direction = stack_geometry(reference, oblique_direction(angles), pixel_mm, slice_mm, 30.0)
    rng = np.random.default_rng(seed)
    voxels = rng.random(size[::-1]).astype(np.float32)
    return Stack(voxels, Geometry(size, spacing, origin, direction), voxels > 0.2, thickness_mm, "oblique")


def _volume_geometry(stacks, resolution=1.2) -> Geometry:
    whole = [Stack(s.voxels_kji, s.geometry, None, s.thickness_mm) for s in stacks]
    return output_geometry(np.concatenate([brain_points_mm(s, np.eye(4)) for s in whole]), resolution, 2.0)


def _random_poses(count: int, centres: torch.Tensor, degrees: float, mm: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    params = torch.cat([torch.randn(count, 3, generator=generator, dtype=torch.float64) * np.radians(degrees),
                        torch.randn(count, 3, generator=generator, dtype=torch.float64) * mm], dim=1)
    return rigid_matrices(params, centres)


def test_adjoint_is_the_exact_transpose_with_motion_and_small_chunks():
    stacks = [_oblique_stack(), _oblique_stack(angles=(80.0, 10.0, -30.0), pixel_mm=1.2, thickness_mm=2.5, seed=1)]
    observations = observations_from_stacks(stacks, SAMPLING, torch.device("cpu"))
    operator = SliceOperator(observations, _volume_geometry(stacks), chunk_samples=5000)
    assert len(operator.chunks) > 10
    poses = _random_poses(observations.slice_count, observations.slice_centres, 3.0, 1.5, seed=3)
    generator = torch.Generator().manual_seed(4)
    volume = torch.rand(operator.shape_kji, generator=generator)
    values = torch.randn(observations.values.shape, generator=generator)
    forward = operator.forward(volume, poses)
    adjoint = operator.adjoint(values, poses)
    left = float((forward.double() * values.double()).sum())
    right = float((volume.double() * adjoint.double()).sum())
    assert abs(left - right) <= 1e-5 * abs(left)
    weights = torch.rand(values.shape, generator=generator)
    np.testing.assert_allclose(operator.normal(volume, poses, weights).numpy(),
                               operator.adjoint(weights * forward, poses).numpy(), rtol=1e-4, atol=1e-5)


def test_a_constant_volume_projects_to_the_constant_inside_the_grid():
    stack = _oblique_stack()
    observations = observations_from_stacks([stack], SAMPLING, torch.device("cpu"))
    geometry = _volume_geometry([stack])
    operator = SliceOperator(observations, geometry)
    poses = torch.eye(4, dtype=torch.float64).repeat(observations.slice_count, 1, 1)
    predicted = operator.forward(torch.full(operator.shape_kji, 7.0), poses)
    centre = np.mean(geometry.index_to_physical(np.array([[0, 0, 0], np.asarray(geometry.size) - 1])), axis=0)
    well_inside = (observations.positions.numpy() - centre).__abs__().max(axis=1) < 8.0
    assert well_inside.sum() > 100
    np.testing.assert_allclose(predicted.numpy()[well_inside], 7.0, rtol=1e-5)


def test_psf_weights_are_a_gaussian_of_the_slice_thickness_along_the_normal():
    direction = oblique_direction((25.0, -20.0, 10.0))
    offsets, weights = stack_psf((0.5, 0.5), 3.3, direction, SAMPLING)
    along_normal = offsets @ direction[:, 2]
    assert weights.sum() == pytest.approx(1.0)
    variance = float((weights * along_normal**2).sum())
    sigma = 3.3 / 2.3548
    assert 0.7 * sigma**2 < variance < sigma**2  # truncated at 2 sigma: 77% of the variance
    np.testing.assert_allclose(offsets - np.outer(along_normal, direction[:, 2]), 0.0, atol=1e-12)


def test_the_in_plane_psf_is_the_stacks_in_plane_resolution_not_its_pixel():
    stack = _oblique_stack(pixel_mm=0.6)
    wider = Stack(stack.voxels_kji, stack.geometry, stack.mask_kji, stack.thickness_mm, "x2", (1.6, 1.2))
    observations = observations_from_stacks([stack, wider], SAMPLING, torch.device("cpu"))
    direction = stack.geometry.direction_matrix
    offsets, weights = observations.psf_offsets.double(), observations.psf_weights.double()
    for index, expected_sigma in ((0, (0.0, 0.0)), (-1, (1.6 * FWHM_TO_SIGMA, 1.2 * FWHM_TO_SIGMA))):
        along = offsets[index].numpy() @ direction[:, :2]  # (Q, 2) along the stack's i and j, mm
        variance = (weights[index].numpy()[:, None] * along**2).sum(axis=0)
        np.testing.assert_allclose(np.sqrt(variance), expected_sigma, atol=1e-6)


def test_a_wider_in_plane_psf_widens_a_point_by_its_variance():
    stack = _oblique_stack(pixel_mm=1.0, slice_mm=3.0, thickness_mm=3.0)
    stacks = [Stack(stack.voxels_kji, stack.geometry, np.ones_like(stack.mask_kji), 3.0, "all", psf)
              for psf in ((1.0, 1.0), (2.5, 1.0))]
    geometry = _volume_geometry(stacks, resolution=0.5)
    target = stack.geometry.index_to_physical(np.array([12.0, 17.0, 5.0]))[0]
    grid_points = geometry.index_to_physical(np.argwhere(np.ones(geometry.size[::-1], bool))[:, ::-1])
    blob = np.exp(-((grid_points - target) ** 2).sum(axis=1) / (2 * 0.8**2)).reshape(geometry.size[::-1])
    widths = []
    for single in stacks:
        observations = observations_from_stacks([single], SAMPLING, torch.device("cpu"))
        operator = SliceOperator(observations, geometry)
        poses = torch.eye(4, dtype=torch.float64).repeat(observations.slice_count, 1, 1)
        image = operator.forward(torch.as_tensor(blob, dtype=torch.float32), poses).numpy()
        row = image.reshape(stack.voxels_kji.shape)[5, 17].astype(np.float64)  # through the blob along i
        i = np.arange(row.size)
        centre = (row * i).sum() / row.sum()
        widths.append((row * (i - centre) ** 2).sum() / row.sum())  # pixels^2 = mm^2 at 1 mm pixels
    assert widths[1] - widths[0] == pytest.approx((2.5**2 - 1.0**2) * FWHM_TO_SIGMA**2, rel=0.05)


def test_a_point_lands_on_its_slice_and_pixel_for_an_oblique_stack_and_moves_with_the_pose():
    stack = _oblique_stack(pixel_mm=1.0, slice_mm=3.0, thickness_mm=3.0)
    stack = Stack(stack.voxels_kji, stack.geometry, np.ones_like(stack.mask_kji), 3.0, "all")
    observations = observations_from_stacks([stack], SAMPLING, torch.device("cpu"))
    geometry = _volume_geometry([stack], resolution=0.5)
    target_ijk = np.array([12.3, 17.6, 5.0])  # on slice 5, between pixels
    target = stack.geometry.index_to_physical(target_ijk)[0]
    grid_points = geometry.index_to_physical(np.argwhere(np.ones(geometry.size[::-1], bool))[:, ::-1])
    blob = np.exp(-((grid_points - target) ** 2).sum(axis=1) / (2 * 0.8**2)).reshape(geometry.size[::-1])
    operator = SliceOperator(observations, geometry)
    poses = torch.eye(4, dtype=torch.float64).repeat(observations.slice_count, 1, 1)

    def centroid(poses):
        image = operator.forward(torch.as_tensor(blob, dtype=torch.float32), poses).numpy()
        image = image.reshape(stack.voxels_kji.shape)
        k_profile = image.sum(axis=(1, 2))
        weights = image[int(np.argmax(k_profile))]
        j, i = np.meshgrid(np.arange(weights.shape[0]), np.arange(weights.shape[1]), indexing="ij")
        return int(np.argmax(k_profile)), (weights * i).sum() / weights.sum(), (weights * j).sum() / weights.sum()

    k, i, j = centroid(poses)
    assert k == 5 and abs(i - 12.3) < 0.05 and abs(j - 17.6) < 0.05
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = torch.as_tensor(-2.0 * stack.geometry.direction_matrix[:, 0])  # anatomy seen 2 mm towards -i
    k, i, j = centroid(shift.repeat(observations.slice_count, 1, 1))
    assert k == 5 and abs(i - 14.3) < 0.05 and abs(j - 17.6) < 0.05


def test_subsampling_keeps_every_slice_and_their_pixel_groups():
    observations = observations_from_stacks([_oblique_stack()], SAMPLING, torch.device("cpu"))
    half = subsampled(observations, 2)
    assert half.slice_starts[-1] == half.values.numel() < observations.values.numel() / 3
    counts = np.diff(half.slice_starts)
    np.testing.assert_array_equal(counts, torch.bincount(half.slice_index, minlength=half.slice_count).numpy())
    assert (half.pixel_ij % 2 == 0).all()


def test_predictions_are_differentiable_in_the_slice_poses():
    stack = _oblique_stack()
    observations = observations_from_stacks([stack], SAMPLING, torch.device("cpu"))
    operator = SliceOperator(observations, _volume_geometry([stack]))
    k, j, i = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in operator.shape_kji], indexing="ij")
    volume = (i / 3.0).sin() + (j / 4.0).cos() + (k / 5.0).sin()  # smooth: a defined gradient everywhere
    weights = torch.rand(observations.values.shape, generator=torch.Generator().manual_seed(0))
    params = torch.zeros(observations.slice_count, 6, dtype=torch.float64, requires_grad=True)

    def total(p):
        matrices = operator.sampling_matrices(rigid_matrices(p, observations.slice_centres))
        predicted = torch.cat([operator.forward_chunk(volume, matrices, chunk) for chunk in operator.chunks])
        return (weights * predicted).sum()

    total(params).backward()
    assert params.grad.abs().sum() > 0
    for column in (1, 4):  # a rotation and a translation
        step = torch.zeros_like(params)
        step[:, column] = 1e-3
        numeric = (total(params.detach() + step) - total(params.detach() - step)) / 2e-3
        assert float(params.grad[:, column].sum()) == pytest.approx(float(numeric), rel=0.05)
