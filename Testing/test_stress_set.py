"""The stress set's building blocks (evaluation.stress_set): sizes, spacings, slice profile, noise."""

from __future__ import annotations

import numpy as np
import pytest
from RRLSRNSuperResLib.evaluation import stress_set
from RRLSRNSuperResLib.imaging.local_gain import local_gain


def test_thick_slices_average_consecutive_thin_slices_and_resample_in_plane():
    volume = np.arange(8 * 6 * 6, dtype=np.float32).reshape(8, 6, 6)  # K x J x I, 0.8 mm
    thick, spacing = stress_set.thick_slices(volume, (0.8, 0.8, 0.8), through_ijk=2, slice_mm=3.2)
    assert thick.shape == (2, 6, 6) and spacing == pytest.approx((0.8, 0.8, 3.2))
    np.testing.assert_allclose(thick[1], volume[4:8].mean(axis=0))
    coarse, coarse_spacing = stress_set.thick_slices(np.ones((9, 30, 30), np.float32), (0.4, 0.4, 1.0), through_ijk=2,
                                          slice_mm=3.0)
    assert coarse.shape == (3, 15, 15) and coarse_spacing == pytest.approx((0.8, 0.8, 3.0))


def test_crop_around_brain_centres_the_mask_and_pads_where_the_view_ends():
    voxels = np.ones((3, 20, 30), np.float32)
    mask = np.zeros_like(voxels, dtype=bool)
    mask[:, 2:6, 25:29] = True  # near the top-right corner
    mask[0] = False  # a slice without brain is dropped
    cropped, cropped_mask = stress_set.crop_around_brain(voxels, mask, through_ijk=2, size=12)
    assert cropped.shape == (2, 12, 12) and cropped_mask.sum() == 2 * 16
    rows, cols = np.nonzero(cropped_mask[0])
    assert (rows.min() + rows.max() + 1) / 2 == 6 and (cols.min() + cols.max() + 1) / 2 == 6
    assert cropped[0, 0, 0] == 0.0 and cropped[0, 6, 6] == 1.0  # padding above the view, data inside


def test_interpolate_in_plane_keeps_the_field_of_view():
    voxels = np.random.default_rng(0).normal(size=(2, 10, 16)).astype(np.float32)  # through k
    mask = np.ones_like(voxels)
    out, out_mask, spacing = stress_set.interpolate_in_plane(voxels, mask, (1.125, 1.0, 3.3), 2, pixel_mm=0.5)
    assert out.shape == (2, 20, 36) and out_mask.all()
    assert spacing == pytest.approx((1.125 * 16 / 36, 0.5, 3.3))


def test_denoising_and_noise_change_the_noise_level_as_asked():
    rng = np.random.default_rng(1)
    flat = 100 + rng.normal(0, 5, size=(4, 64, 64)).astype(np.float32)
    assert stress_set.denoise_in_plane(flat, 2, 1.6)[:, 8:-8, 8:-8].std() < 1.5
    noisy = stress_set.add_rician_noise(np.full((4, 64, 64), 100, np.float32), np.ones((4, 64, 64)), 0.05)
    assert noisy.std() == pytest.approx(5.0, rel=0.05)


def test_local_gain_finds_the_share_that_explains_the_target_region_by_region():
    rng = np.random.default_rng(2)
    added = rng.normal(size=(1, 64, 64))
    truth = np.where(np.arange(64)[None, None, :] < 32, 1.0, 0.2) * added  # left half real, right mostly invented
    gain = local_gain(truth, added, sigma_pixels=3)
    assert gain[0, 10:54, 4:24].mean() == pytest.approx(1.0, abs=0.02)
    assert gain[0, 10:54, 40:60].mean() == pytest.approx(0.2, abs=0.02)
