"""The numpy/scipy/SimpleITK code that replaced scikit-image (absent from Slicer's Python) gives its results.

scikit-image is installed for the tests only, as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from RRLSRNSuperResLib.evaluation.metrics import ssim_map
from RRLSRNSuperResLib.imaging.intensity import otsu_threshold
from RRLSRNSuperResLib.masks.fetal_brain import convex_hull_2d, marker_watershed

skimage = pytest.importorskip("skimage")


@pytest.mark.parametrize("seed", range(5))
def test_otsu_threshold_equals_scikit_image(seed):
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.gamma(2.0, 10.0, 5000), rng.normal(300.0, 40.0, 3000)]).astype(np.float32)
    assert otsu_threshold(values) == float(threshold_otsu(values))
    assert otsu_threshold(np.full(10, 7.0)) == 7.0


def test_ssim_map_equals_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    hr = rng.random((48, 64)) * 300.0
    estimate = hr + rng.normal(0.0, 20.0, hr.shape)
    _, reference = structural_similarity(hr, estimate, data_range=300.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, full=True)
    np.testing.assert_allclose(ssim_map(hr, estimate, 300.0), reference, atol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_convex_hull_equals_scikit_image(seed):
    from skimage.morphology import convex_hull_image

    rng = np.random.default_rng(seed)
    plane = np.zeros((30, 40), bool)
    plane[rng.integers(0, 30, 6), rng.integers(0, 40, 6)] = True
    if seed % 4 == 0:
        plane[:] = False
        plane[5:20, 7] = True  # a line: pixel edges still give it an area
    np.testing.assert_array_equal(convex_hull_2d(plane), convex_hull_image(plane))


def test_marker_watershed_floods_like_scikit_image():
    from skimage.segmentation import watershed

    rng = np.random.default_rng(2)
    relief = np.zeros((20, 30, 30), np.float32)
    relief[:, :, 14:16] = 10.0  # a wall between two basins
    relief += rng.random(relief.shape).astype(np.float32) * 0.1
    markers = np.zeros(relief.shape, np.int32)
    markers[10, 15, 5], markers[10, 15, 25] = 1, 2
    ours, reference = marker_watershed(relief, markers), watershed(relief, markers)
    assert (ours == reference).mean() > 0.99
    assert set(np.unique(ours)) == {1, 2} and (ours[:, :, :14] == 1).all() and (ours[:, :, 16:] == 2).all()
