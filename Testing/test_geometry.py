"""The x2 and x4 grids of docs/design.md, checked in physical space for oblique, flipped, anisotropic grids."""

from __future__ import annotations

import numpy as np
import pytest
from RRLSRNSuperResLib.imaging.geometry import Geometry, slice_axis, upsampled_geometry


def random_direction(rng: np.random.Generator) -> np.ndarray:
    """A random rotation with a random axis flip (determinant -1 half the time)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q @ np.diag(rng.choice([-1.0, 1.0], size=3))


def oblique_geometry(rng: np.random.Generator, thick_axis: int) -> Geometry:
    spacing = rng.uniform(0.4, 1.3, size=3)
    spacing[thick_axis] = rng.uniform(2.5, 5.0)
    return Geometry(size=tuple(int(n) for n in rng.integers(5, 40, size=3)), spacing=tuple(spacing),
                    origin=tuple(rng.uniform(-100, 100, size=3)), direction=tuple(random_direction(rng).ravel()))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("seed", range(12))
def test_output_voxel_centres_lie_between_input_centres_in_physical_space(seed, scale):
    rng = np.random.default_rng(seed)
    thick = seed % 3
    geometry = oblique_geometry(rng, thick)
    axis = slice_axis(geometry.spacing)
    assert axis == thick
    output = upsampled_geometry(geometry, axis, scale)
    inplane = [a for a in range(3) if a != axis]

    indices = rng.integers(0, np.asarray(geometry.size), size=(20, 3)).astype(float)
    # Output voxels sn .. sn + s - 1 tile input voxel n: their midpoint sn + (s - 1)/2 is its centre
    # (2n + 1/2 at x2, 4n + 3/2 at x4).
    output_indices = indices.copy()
    output_indices[:, inplane] = scale * indices[:, inplane] + (scale - 1) / 2
    np.testing.assert_allclose(output.index_to_physical(output_indices), geometry.index_to_physical(indices),
                               atol=1e-9)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("seed", range(6))
def test_field_of_view_size_spacing_and_direction(seed, scale):
    rng = np.random.default_rng(100 + seed)
    geometry = oblique_geometry(rng, seed % 3)
    axis = seed % 3
    output = upsampled_geometry(geometry, axis, scale)
    for a in range(3):
        factor = 1 if a == axis else scale
        assert output.size[a] == geometry.size[a] * factor
        assert output.spacing[a] == pytest.approx(geometry.spacing[a] / factor, rel=1e-12)
    assert output.direction == geometry.direction
    # The outer corner of the first voxel (index -1/2 on every axis) does not move.
    np.testing.assert_allclose(output.index_to_physical([-0.5, -0.5, -0.5]),
                               geometry.index_to_physical([-0.5, -0.5, -0.5]), atol=1e-9)
    # The slice axis keeps its positions exactly: the last slice's first voxel, seen from both grids.
    last_slice = np.zeros(3)
    last_slice[axis] = geometry.size[axis] - 1
    same_point = np.full(3, (scale - 1) / 2)
    same_point[axis] = last_slice[axis]
    np.testing.assert_allclose(output.index_to_physical(same_point), geometry.index_to_physical(last_slice),
                               atol=1e-9)


def test_origin_moves_by_a_quarter_of_the_old_spacing_through_the_direction():
    direction = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    geometry = Geometry((10, 12, 5), (1.0, 2.0, 4.0), (10.0, 20.0, 30.0), tuple(direction.ravel()))
    output = upsampled_geometry(geometry, 2)
    # i moves by -0.25 mm along +y; j by -0.5 mm along -x.
    np.testing.assert_allclose(output.origin, (10.5, 19.75, 30.0))
    assert output.spacing == (0.5, 1.0, 4.0)
    assert output.size == (20, 24, 5)


def test_x4_origin_moves_by_three_eighths_of_the_old_spacing_through_the_direction():
    direction = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    geometry = Geometry((10, 12, 5), (1.0, 2.0, 4.0), (10.0, 20.0, 30.0), tuple(direction.ravel()))
    output = upsampled_geometry(geometry, 2, 4)
    # i moves by -3/8 mm along +y; j by -3/4 mm along -x.
    np.testing.assert_allclose(output.origin, (10.75, 19.625, 30.0))
    assert output.spacing == (0.25, 0.5, 4.0)
    assert output.size == (40, 48, 5)


def test_x4_is_the_x2_grid_of_the_x2_grid():
    """The cascade's two x2 levels land on the x4 grid: the contract composes."""
    geometry = oblique_geometry(np.random.default_rng(7), 0)
    twice = upsampled_geometry(upsampled_geometry(geometry, 0), 0)
    once = upsampled_geometry(geometry, 0, 4)
    assert twice.size == once.size and twice.direction == once.direction
    np.testing.assert_allclose(twice.spacing, once.spacing, rtol=1e-12)
    np.testing.assert_allclose(twice.origin, once.origin, atol=1e-9)


def test_other_scales_are_refused():
    geometry = Geometry((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    with pytest.raises(ValueError, match="scale"):
        upsampled_geometry(geometry, 2, 3)


@pytest.mark.parametrize(("spacing", "size", "plane", "expected"), [
    ((1.1, 1.1, 3.3), None, "auto", 2),
    ((3.3, 1.1, 1.1), None, "auto", 0),
    ((1.1, 3.3, 1.1), None, "auto", 1),
    ((0.8, 0.8, 0.8), None, "auto", 2),
    # Square pixels: the one pair of equal spacings (within 1%) spans the plane, even when the
    # pixels are coarser than the slices (a 1.17 x 1.17 x 2.0 mm stack at half resolution).
    ((2.34, 2.34, 2.0), None, "auto", 2),
    ((2.0, 2.34, 2.34), None, "auto", 0),
    ((2.34, 2.0, 2.345), None, "auto", 1),
    ((1.1, 3.3, 3.3), None, "auto", 0),
    ((2.34, 2.4, 2.0), None, "auto", 1),  # 2.5% apart: no square pair, so the thickest axis
    ((1.0, 1.005, 1.009), None, "auto", 2),  # every pair within 1%: isotropic enough, k
    ((0.8, 0.9, 3.0), None, "auto", 2),
    ((1.0, 1.0, 1.0), (64, 64, 1), "auto", 2),
    ((1.0, 1.0, 5.0), (64, 1, 10), "auto", 1),
    ((1.1, 1.1, 3.3), None, "i", 0),
    ((1.1, 1.1, 3.3), None, "j", 1),
])
def test_slice_axis_choice(spacing, size, plane, expected):
    assert slice_axis(spacing, plane, size=size) == expected


def test_unknown_plane_is_refused():
    with pytest.raises(ValueError, match="plane"):
        slice_axis((1, 1, 1), "axial")


@pytest.mark.parametrize("seed", range(4))
def test_physical_to_index_inverts_index_to_physical(seed):
    rng = np.random.default_rng(200 + seed)
    geometry = oblique_geometry(rng, seed % 3)
    index = rng.uniform(-1, 30, size=3)
    np.testing.assert_allclose(geometry.physical_to_index(geometry.index_to_physical(index)[0]), index, atol=1e-9)
