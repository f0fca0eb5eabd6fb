"""Geometry acceptance: without motion the reconstruction overlays the truth in patient space.

Three orthogonal stacks are simulated (SimpleITK resampling, not the reconstruction's
operator) from a phantom whose direction is oblique and whose origin is not zero; the
reconstruction (no motion correction, no registration of any kind) is resampled onto the
truth's grid in physical space and compared there.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from reconstruction_phantoms import blob_centre_mm, make_stack, orthogonal_axes, phantom, stack_geometry
from RRLSRNSuperResLib.errors import SuperResolutionCancelled, UserInputError
from RRLSRNSuperResLib.reconstruction.output_grid import RAS_ALIGNED_LPS_DIRECTION
from RRLSRNSuperResLib.reconstruction.reconstruct import ReconstructionOptions, reconstruct


@pytest.fixture(scope="module")
def truth() -> sitk.Image:
    return phantom(size=40, spacing=1.0)


@pytest.fixture(scope="module")
def stacks(truth):
    axes = orthogonal_axes(np.asarray(truth.GetDirection()).reshape(3, 3))
    return [make_stack(truth, stack_geometry(truth, a, 1.0, 3.0, 44.0), 3.0, f"stack{n}") for n, a in enumerate(axes)]


@pytest.fixture(scope="module")
def result(stacks):
    return reconstruct(stacks, ReconstructionOptions(resolution_mm=1.0, motion_correction=False, iterations=2))


def _physical_points(image: sitk.Image) -> np.ndarray:
    ijk = np.indices(image.GetSize()[::-1]).reshape(3, -1).T[:, ::-1].astype(float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (ijk * np.asarray(image.GetSpacing())) @ direction.T


def _centroid_near(values: np.ndarray, points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    near = np.linalg.norm(points - centre, axis=1) < radius
    weights = values.reshape(-1)[near] - values.reshape(-1)[near].min()
    return (points[near] * weights[:, None]).sum(axis=0) / weights.sum()


def test_reconstruction_overlays_the_truth_in_patient_space(truth, result):
    image = sitk.GetImageFromArray(result.volume_kji)
    image.SetSpacing(result.geometry.spacing)
    image.SetOrigin(result.geometry.origin)
    image.SetDirection(result.geometry.direction)
    on_truth = sitk.GetArrayFromImage(sitk.Resample(image, truth, sitk.Transform(), sitk.sitkLinear, 0.0))
    expected = sitk.GetArrayFromImage(truth)
    points = _physical_points(truth)
    centre = blob_centre_mm(truth)
    offset = _centroid_near(on_truth, points, centre, 6.0) - _centroid_near(expected, points, centre, 6.0)
    assert np.linalg.norm(offset) < 0.3 * truth.GetSpacing()[0]
    inside = expected > 5.0
    a, b = expected[inside] - expected[inside].mean(), on_truth[inside] - on_truth[inside].mean()
    assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.99
    assert abs(np.median(on_truth[inside] / expected[inside]) - 1.0) < 0.05  # on the stacks' intensity scale


def test_output_grid_mask_and_bookkeeping(truth, stacks, result):
    assert result.geometry.direction == RAS_ALIGNED_LPS_DIRECTION and result.geometry.spacing == (1.0, 1.0, 1.0)
    assert result.volume_kji.dtype == np.float32 and result.mask_kji.shape == result.volume_kji.shape
    mask = sitk.GetImageFromArray(result.mask_kji.astype(np.uint8))
    mask.SetSpacing(result.geometry.spacing)
    mask.SetOrigin(result.geometry.origin)
    mask.SetDirection(result.geometry.direction)
    on_truth = sitk.GetArrayFromImage(sitk.Resample(mask, truth, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    content = sitk.GetArrayFromImage(truth) > 5.0  # the stacks' masks are this content, simulated
    assert 2 * (on_truth & content).sum() / (on_truth.sum() + content.sum()) > 0.9
    for stack, transforms, weights in zip(stacks, result.transforms, result.slice_weights):
        assert transforms.shape == (stack.slice_count, 4, 4) and weights.shape == (stack.slice_count,)
        np.testing.assert_allclose(transforms, np.eye(4)[None].repeat(stack.slice_count, axis=0))
    assert result.parameters["options"]["motion_correction"] is False
    json.dumps(result.parameters)


def test_cancel_through_progress_raises(stacks):
    messages = []

    def progress(fraction, message):
        messages.append((fraction, message))
        return len(messages) < 3

    with pytest.raises(SuperResolutionCancelled):
        reconstruct(stacks, ReconstructionOptions(resolution_mm=1.5, motion_correction=False), progress)
    assert len(messages) == 3 and [f for f, _ in messages] == sorted(f for f, _ in messages)


def test_a_single_stack_is_refused_in_one_line(stacks):
    with pytest.raises(UserInputError, match="at least 2 stacks") as error:
        reconstruct(stacks[:1])
    assert "\n" not in str(error.value)


def test_stacks_that_do_not_overlap_are_refused_in_one_line(stacks):
    far = stacks[2].geometry
    moved = replace(stacks[2], geometry=replace(far, origin=tuple(np.asarray(far.origin) + [0.0, 0.0, 200.0])))
    with pytest.raises(UserInputError, match="do not overlap") as error:
        reconstruct([stacks[0], stacks[1], moved], ReconstructionOptions(resolution_mm=1.5))
    assert "\n" not in str(error.value) and "stack2" in str(error.value)
