"""Slice-to-volume registration recovers known per-slice poses; the pipeline's motion correction pays off."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from reconstruction_phantoms import make_stack, orthogonal_axes, phantom, stack_geometry, textured_blobs
from RRLSRNSuperResLib.reconstruction.observations import observations_from_stacks
from RRLSRNSuperResLib.reconstruction.output_grid import brain_points_mm, output_geometry
from RRLSRNSuperResLib.reconstruction.psf import PsfSampling
from RRLSRNSuperResLib.reconstruction.rigid import rigid_matrices
from RRLSRNSuperResLib.reconstruction.stacks import crop_to_mask
from RRLSRNSuperResLib.reconstruction.svr import SvrProblem, default_levels, pose_changes, register_slices


@pytest.fixture(scope="module")
def truth() -> sitk.Image:
    return phantom(size=40, spacing=1.0, blobs=textured_blobs())


@pytest.fixture(scope="module")
def problem(truth):
    axes = orthogonal_axes(np.asarray(truth.GetDirection()).reshape(3, 3))
    stacks = [crop_to_mask(make_stack(truth, stack_geometry(truth, a, 1.0, 3.0, 44.0), 3.0, f"stack{n}"), 4.0)
              for n, a in enumerate(axes)]
    geometry = output_geometry(brain_points_mm(stacks[0], np.eye(4)), 1.0, 8.0)
    observations = observations_from_stacks(stacks, PsfSampling(1.0, 0.5), torch.device("cpu"))
    return SvrProblem(stacks, observations, geometry)


def _truth_on_grid(truth: sitk.Image, geometry) -> torch.Tensor:
    reference = sitk.Image(list(geometry.size), sitk.sitkFloat32)
    reference.SetSpacing(geometry.spacing)
    reference.SetOrigin(geometry.origin)
    reference.SetDirection(geometry.direction)
    return torch.as_tensor(sitk.GetArrayFromImage(sitk.Resample(truth, reference, sitk.Transform(),
                                                                sitk.sitkLinear, 0.0)))


def test_registration_recovers_random_slice_motion_against_the_true_volume(truth, problem):
    observations = problem.observations
    count = observations.slice_count
    generator = torch.Generator().manual_seed(0)
    params = torch.cat([torch.randn(count, 3, generator=generator, dtype=torch.float64) * np.radians(2.0),
                        torch.randn(count, 3, generator=generator, dtype=torch.float64) * 1.0], dim=1)
    displaced = rigid_matrices(params, observations.slice_centres)  # the stacks were acquired without motion
    identity = torch.eye(4, dtype=torch.float64).repeat(count, 1, 1)
    degrees, millimetres = pose_changes(displaced, identity, observations.slice_centres)
    assert np.median(degrees) > 2.5 and np.median(millimetres) > 1.2
    ticks = []
    recovered = register_slices(problem, _truth_on_grid(truth, problem.geometry), displaced, default_levels(1.0),
                                lambda: ticks.append(1))
    degrees, millimetres = pose_changes(recovered, identity, observations.slice_centres)
    assert np.median(degrees) < 0.5 and np.median(millimetres) < 0.2
    assert len(ticks) == sum(level.iterations for level in default_levels(1.0))
