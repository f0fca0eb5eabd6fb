"""Stacks (slice axis moved to k with exact physical positions, validation) and rigid parameters."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.reconstruction.rigid import rigid_matrix, rigid_params, rotation_angle_deg
from RRLSRNSuperResLib.reconstruction.stacks import (
    RRLSRN_PSF_FRACTION,
    ZERO_FILL_PSF_FRACTION,
    Stack,
    crop_to_mask,
    on_x2_grid,
    stack_from_image,
    validate_stacks,
)
from scipy.spatial.transform import Rotation


def _oblique_image(size=(7, 12, 9), spacing=(0.9, 3.5, 1.1)) -> sitk.Image:
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.random(size[::-1]).astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((12.5, -40.0, 7.25))
    image.SetDirection(tuple(Rotation.from_euler("xyz", [25, -20, 10], degrees=True).as_matrix().ravel()))
    return image


def test_slice_axis_moves_to_k_and_every_voxel_keeps_its_position():
    image = _oblique_image()
    mask = sitk.GetArrayFromImage(image) > 0.5
    stack = stack_from_image(image, mask, name="coronal")
    assert stack.geometry.spacing == (0.9, 1.1, 3.5)
    assert stack.voxels_kji.shape == (12, 9, 7)
    assert stack.thickness_mm == 3.5
    rng = np.random.default_rng(2)
    for kji in rng.integers(0, stack.voxels_kji.shape, size=(20, 3)):
        point = stack.geometry.index_to_physical(kji[::-1].astype(float))[0]
        original = image.TransformPhysicalPointToIndex(tuple(point))
        assert stack.voxels_kji[tuple(kji)] == image[original]
        assert stack.mask_kji[tuple(kji)] == (image[original] > 0.5)
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(original), point, atol=1e-9)


def test_thickness_may_differ_from_spacing():
    assert stack_from_image(_oblique_image(), thickness=4.0).thickness_mm == 4.0


def test_an_x2_stack_keeps_the_in_plane_psf_of_the_detail_it_carries_not_of_its_pixel():
    stack = stack_from_image(_oblique_image(), sitk.GetArrayFromImage(_oblique_image()) > 0.3)
    assert stack.in_plane_psf_mm == (0.9, 1.1)  # acquired: the pixel spacing
    doubled = np.zeros((12, 18, 14), np.float32)
    zero_filled = on_x2_grid(stack, doubled, "zerofill", ZERO_FILL_PSF_FRACTION)
    superresolved = on_x2_grid(stack, doubled, "rrlsrn", RRLSRN_PSF_FRACTION)
    assert zero_filled.geometry.spacing[:2] == superresolved.geometry.spacing[:2] == (0.45, 0.55)
    np.testing.assert_allclose(zero_filled.in_plane_psf_mm, (0.9, 1.1))
    np.testing.assert_allclose(superresolved.in_plane_psf_mm, (0.81, 0.99))
    assert crop_to_mask(superresolved, 1.0).in_plane_psf_mm == superresolved.in_plane_psf_mm


@pytest.mark.parametrize("array_shape, text", [((5, 6), "2D"), ((2, 4, 5, 6), "4D"), ((1, 8, 8), "single 2D slice")])
def test_two_and_four_dimensional_inputs_are_refused_in_one_line(array_shape, text):
    image = sitk.GetImageFromArray(np.zeros(array_shape, np.float32), isVector=False)
    with pytest.raises(UserInputError, match=text) as error:
        stack_from_image(image, name="bad")
    assert "\n" not in str(error.value)


def test_validation_wants_two_stacks_and_non_empty_masks():
    stack = stack_from_image(_oblique_image())
    with pytest.raises(UserInputError, match="at least 2 stacks"):
        validate_stacks([stack])
    empty = Stack(stack.voxels_kji, stack.geometry, np.zeros(stack.voxels_kji.shape, bool), name="empty")
    with pytest.raises(UserInputError, match="empty: the brain mask is empty"):
        validate_stacks([stack, empty])
    validate_stacks([stack, stack])


def test_crop_keeps_physical_positions():
    stack = stack_from_image(_oblique_image(size=(30, 40, 8), spacing=(1.0, 1.0, 3.0)))
    mask = np.zeros(stack.voxels_kji.shape, bool)
    mask[3:5, 10:20, 12:15] = True
    cropped = crop_to_mask(Stack(stack.voxels_kji, stack.geometry, mask), margin_mm=2.0)
    assert cropped.voxels_kji.shape == (8, 14, 7)  # all slices, 2 pixels of margin on each side
    inside = np.array([3, 3, 4])  # kji in the cropped stack
    original = inside + np.array([0, 8, 10])
    assert cropped.voxels_kji[tuple(inside)] == stack.voxels_kji[tuple(original)]
    np.testing.assert_allclose(cropped.geometry.index_to_physical(inside[::-1]),
                               stack.geometry.index_to_physical(original[::-1]), atol=1e-9)


def test_rigid_parameters_round_trip_about_a_centre():
    params = np.array([0.1, -0.05, 0.2, 1.5, -2.0, 0.5])
    centre = np.array([10.0, -20.0, 30.0])
    matrix = rigid_matrix(params, centre)
    np.testing.assert_allclose(matrix[:3, :3] @ centre + matrix[:3, 3], centre + params[3:], atol=1e-12)
    np.testing.assert_allclose(rigid_params(matrix, centre), params, atol=1e-12)
    assert rotation_angle_deg(matrix) == pytest.approx(np.degrees(np.linalg.norm(params[:3])), abs=1e-9)
    np.testing.assert_allclose(rigid_matrix(np.zeros(6), centre), np.eye(4), atol=1e-15)
