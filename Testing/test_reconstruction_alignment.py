"""Stack-to-stack alignment, template choice and intensity matching (issue 23) on synthetic stacks.

The stack-level alignment is only the start of slice-to-volume registration, which then moves every
slice on its own: a couple of degrees and a millimetre is what it must reach, for turns of tens of
degrees. The stacks are simulated from a smooth asymmetric phantom at 1 mm (ellipsoids with internal
structure) as orthogonal thick-slice stacks: 1.2 mm pixels, 3.5 mm slices with a Gaussian profile;
the moving stack images the phantom through a known rigid motion ``x_anatomy = motion @ x_nominal``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.imaging.geometry import Geometry
from RRLSRNSuperResLib.reconstruction.intensity_matching import brain_median, match_intensities
from RRLSRNSuperResLib.reconstruction.stack_alignment import (
    FWHM_TO_SIGMA,
    align_stack,
    choose_template,
    start_rotations,
)
from RRLSRNSuperResLib.reconstruction.stacks import Stack
from scipy import ndimage

PIXEL_MM = 1.2
THICKNESS_MM = 3.5
OVERSAMPLING = 7  # fine sub-slices per thick slice for the slice profile
AXIAL = np.eye(3)
CORONAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns: i = x, j = -z, k = y


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float)
    transform = sitk.VersorTransform(tuple(axis / np.linalg.norm(axis)), float(np.deg2rad(degrees)))
    return np.asarray(transform.GetMatrix()).reshape(3, 3)


def rigid(rotation_matrix: np.ndarray, centre, translation) -> np.ndarray:
    """4x4 rotation about ``centre`` followed by ``translation`` (mm)."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix
    matrix[:3, 3] = np.asarray(centre) - rotation_matrix @ np.asarray(centre) + np.asarray(translation)
    return matrix


def phantom(origin=(0.0, 0.0, 0.0), seed: int = 0, layout: float = 1.0) -> tuple[sitk.Image, sitk.Image]:
    """Smooth asymmetric head at 1 mm (CSF shell, brain, two unequal ventricles, cerebellum, texture) and its mask.

    ``layout`` = -1 mirrors the inner structures left-right: another "subject" of the same build.
    """
    grid = np.mgrid[-50:50, -50:50, -50:50].astype(np.float32)[::-1]  # x, y, z (mm) on a [k, j, i] array
    regions = [((0, 0, 0), (45, 38, 35), 0.9), ((0, 0, 2), (40, 33, 30), 0.5),
               ((-8 * layout, 5, 5), (4, 14, 8), 1.0), ((9 * layout, 3, 4), (5, 12, 7), 1.0),
               ((0, 25, -18), (18, 8, 9), 0.3), ((15 * layout, -18, 10), (6, 6, 6), 0.2)]
    values = np.zeros(grid.shape[1:], np.float32)
    for centre, axes, value in regions:
        inside = sum(((grid[a] - centre[a]) / axes[a]) ** 2 for a in range(3)) <= 1.0
        values[inside] = value
    head = values > 0
    texture = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(values.shape), 4.0)
    values = ndimage.gaussian_filter(values + head * 0.06 * texture / texture.std(), 1.0).astype(np.float32)
    images = [sitk.GetImageFromArray(array) for array in (values, head.astype(np.uint8))]
    for image in images:
        image.SetOrigin(tuple(np.asarray(origin, dtype=float) - 50.0))
    return images[0], images[1]


def simulate_stack(volume: tuple[sitk.Image, sitk.Image], direction: np.ndarray, centre, motion: np.ndarray,
                   name: str, slices: int = 24) -> Stack:
    """Thick-slice stack centred on ``centre`` (LPS mm) whose voxel at nominal x shows the phantom at motion @ x."""
    image, mask = volume
    size = (92, 92, slices)
    spacing = (PIXEL_MM, PIXEL_MM, THICKNESS_MM)
    origin = np.asarray(centre) - direction @ ((np.asarray(size) - 1) * np.asarray(spacing) / 2.0)
    geometry = Geometry(size=size, spacing=spacing, origin=tuple(origin), direction=tuple(direction.ravel()))
    fine_step = THICKNESS_MM / OVERSAMPLING
    fine = _grid(size[:2] + (slices * OVERSAMPLING,), spacing[:2] + (fine_step,),
                 origin - direction[:, 2] * fine_step * (OVERSAMPLING // 2), direction)
    transform = sitk.AffineTransform(motion[:3, :3].ravel().tolist(), motion[:3, 3].tolist())
    dense = sitk.GetArrayFromImage(sitk.Resample(image, fine, transform, sitk.sitkLinear, 0.0))
    profile = ndimage.gaussian_filter1d(dense, THICKNESS_MM * FWHM_TO_SIGMA / fine_step, axis=0)
    voxels = profile[OVERSAMPLING // 2::OVERSAMPLING].astype(np.float32)
    stack_grid = _grid(size, spacing, origin, direction)
    mask_kji = sitk.GetArrayFromImage(sitk.Resample(mask, stack_grid, transform, sitk.sitkNearestNeighbor, 0)) > 0
    return Stack(voxels_kji=voxels, geometry=geometry, mask_kji=mask_kji, thickness_mm=THICKNESS_MM, name=name)


def _grid(size, spacing, origin, direction) -> sitk.Image:
    reference = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    reference.SetSpacing([float(s) for s in spacing])
    reference.SetOrigin([float(o) for o in origin])
    reference.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
    return reference


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def displacement_error_mm(a: np.ndarray, b: np.ndarray, point) -> float:
    point = np.append(np.asarray(point, dtype=float), 1.0)
    return float(np.linalg.norm((a @ point - b @ point)[:3]))


@pytest.fixture(scope="module")
def head():
    return phantom()


@pytest.mark.parametrize("axis, degrees, translation, moving_mask", [
    ((1, 0, 0), 0.0, (0.0, 0.0, 0.0), True),
    ((0, 0, 1), 10.0, (2.0, -3.0, 1.0), True),
    ((1, 2, -1), 40.0, (3.0, -4.0, 0.0), True),
    ((-1, 1, 2), 55.0, (-4.0, 0.0, 3.0), False),  # no moving mask: its Otsu foreground stands in
])
def test_align_stack_recovers_known_turn(head, axis, degrees, translation, moving_mask):
    fixed = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "axial")
    motion = rigid(rotation(axis, degrees), (0.0, 0.0, 0.0), translation)
    moving = simulate_stack(head, CORONAL, (0.0, 0.0, 0.0), motion, "coronal")
    if not moving_mask:
        moving = replace(moving, mask_kji=None)

    result = align_stack(moving, fixed)

    assert result.matrix.shape == (4, 4)
    assert rotation_error_deg(result.matrix, motion) < 2.0
    assert displacement_error_mm(result.matrix, motion, (0.0, 0.0, 0.0)) < 1.0
    assert result.metric > 0.9
    assert result.converged


def test_align_stack_with_oblique_headers_and_far_origin():
    """Both stacks oblique to the scanner axes, the head 200 mm from the origin; the turn is 25 degrees."""
    centre = np.array([-60.0, 120.0, 150.0])
    head = phantom(origin=centre)
    tilt = rotation((2, -1, 3), 20.0)
    fixed = simulate_stack(head, tilt @ AXIAL, centre + (4.0, 0.0, -3.0), np.eye(4), "axial")
    motion = rigid(rotation((0, 1, 1), -25.0), centre + (5.0, 5.0, 0.0), (-2.0, 1.0, 4.0))
    moving = simulate_stack(head, tilt @ CORONAL, centre + (0.0, -5.0, 2.0), motion, "coronal")

    result = align_stack(moving, fixed)

    assert rotation_error_deg(result.matrix, motion) < 2.0
    assert displacement_error_mm(result.matrix, motion, centre) < 1.0


def test_align_stack_rejects_stacks_that_do_not_agree(head):
    fixed = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "axial")
    moving = simulate_stack(head, CORONAL, (0.0, 0.0, 0.0), np.eye(4), "noise")
    noise = ndimage.gaussian_filter(np.random.default_rng(3).standard_normal(moving.voxels_kji.shape), (0.5, 2, 2))
    unrelated = Stack(voxels_kji=(noise * moving.mask_kji).astype(np.float32), geometry=moving.geometry,
                      mask_kji=moving.mask_kji, thickness_mm=THICKNESS_MM, name="noise")

    with pytest.raises(UserInputError, match="noise and axial do not agree after alignment"):
        align_stack(unrelated, fixed)


def test_align_stack_rejects_stacks_that_do_not_overlap(head):
    fixed = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "axial")
    moving = simulate_stack(head, CORONAL, (0.0, 0.0, 0.0), np.eye(4), "coronal")
    far = Geometry(size=moving.geometry.size, spacing=moving.geometry.spacing,
                   origin=tuple(np.asarray(moving.geometry.origin) + (0.0, 0.0, 500.0)),
                   direction=moving.geometry.direction)
    moved = Stack(voxels_kji=moving.voxels_kji, geometry=far, mask_kji=moving.mask_kji,
                  thickness_mm=THICKNESS_MM, name="coronal")

    with pytest.raises(UserInputError, match="coronal and axial do not overlap in space"):
        align_stack(moved, fixed)


def test_align_stack_rejects_an_empty_mask(head):
    fixed = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "axial")
    moving = simulate_stack(head, CORONAL, (0.0, 0.0, 0.0), np.eye(4), "coronal")
    empty = Stack(voxels_kji=moving.voxels_kji, geometry=moving.geometry,
                  mask_kji=np.zeros_like(moving.mask_kji), thickness_mm=THICKNESS_MM, name="coronal")

    with pytest.raises(UserInputError, match="brain mask of stack coronal is empty"):
        align_stack(empty, fixed)


def test_start_rotations_sample_turns_up_to_sixty_degrees_evenly():
    rotations = start_rotations((30.0, 60.0))
    angles = sorted(round(rotation_error_deg(np.eye(3), r), 6) for r in rotations)
    assert len(rotations) == 53
    assert angles[0] == 0.0 and angles[1:27] == [30.0] * 26 and angles[27:] == [60.0] * 26
    # Every turn up to 60 degrees lies within 30 degrees of a start (checked on random turns).
    rng = np.random.default_rng(0)
    for _ in range(200):
        turn = rotation(rng.standard_normal(3), rng.uniform(0.0, 60.0))
        assert min(rotation_error_deg(turn, start) for start in rotations) < 30.0


def _with_voxels(stack: Stack, voxels: np.ndarray, mask=None, name=None) -> Stack:
    return Stack(voxels_kji=voxels.astype(np.float32), geometry=stack.geometry,
                 mask_kji=stack.mask_kji if mask is None else mask, thickness_mm=stack.thickness_mm,
                 name=name or stack.name)


def test_choose_template_prefers_the_whole_brain_seen_without_motion(head):
    whole = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "whole")
    partial_mask = whole.mask_kji.copy()
    partial_mask[: whole.mask_kji.shape[0] // 2] = False
    partial = _with_voxels(whole, whole.voxels_kji, mask=partial_mask, name="partial")
    shuffled_slices = np.random.default_rng(1).permutation(whole.voxels_kji.shape[0])
    moved = _with_voxels(whole, whole.voxels_kji[shuffled_slices], mask=whole.mask_kji[shuffled_slices],
                         name="moved")
    moved_voxels = moved.voxels_kji.copy()
    for k in range(0, moved_voxels.shape[0], 2):
        moved_voxels[k] = np.roll(moved_voxels[k], 9, axis=1)
    moved = _with_voxels(moved, moved_voxels)

    assert choose_template([partial, moved, whole]) == 2
    assert choose_template([whole, partial, moved]) == 0
    assert choose_template([whole, whole]) == 0  # ties go to the first stack


def test_match_intensities_equalises_brain_medians_without_touching_inputs(head):
    stack = simulate_stack(head, AXIAL, (0.0, 0.0, 0.0), np.eye(4), "a")
    stacks = [_with_voxels(stack, stack.voxels_kji * gain, name=str(gain)) for gain in (3.7, 1.0, 0.25)]
    before = [s.voxels_kji.copy() for s in stacks]

    matched = match_intensities(stacks, template_index=1)

    for original, copy in zip(stacks, before):
        np.testing.assert_array_equal(original.voxels_kji, copy)
    target = brain_median(stacks[1])
    assert target > 0.1
    for stack in matched:
        assert stack.voxels_kji.dtype == np.float32
        assert brain_median(stack) == pytest.approx(target, rel=1e-5)
    np.testing.assert_allclose(matched[0].voxels_kji, stacks[1].voxels_kji, rtol=1e-5, atol=1e-7)
    assert matched[1].voxels_kji is not stacks[1].voxels_kji
