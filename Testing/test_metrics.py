"""Masked PSNR/SSIM and the summary statistics of ``metrics`` against formulas and references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from RRLSRNSuperResLib.errors import UserInputError
from RRLSRNSuperResLib.evaluation import metrics
from scipy import stats
from skimage.metrics import structural_similarity


def ramp_volume(shape=(2, 40, 40), low=0.0, high=10.0) -> np.ndarray:
    return np.linspace(low, high, int(np.prod(shape))).reshape(shape)


def test_psnr_of_known_mse_equals_formula():
    hr = ramp_volume()
    region = np.ones(hr.shape, dtype=bool)
    estimate = hr + np.where(np.arange(hr.size).reshape(hr.shape) % 2, 0.5, -0.5)  # MSE 0.25
    assert metrics.psnr(hr, estimate, region, peak=10.0) == pytest.approx(10 * math.log10(10.0**2 / 0.25))


def test_psnr_pools_only_region_pixels():
    hr = ramp_volume()
    region = np.zeros(hr.shape, dtype=bool)
    region[0, 10:20, 10:20] = True
    estimate = hr.copy()
    estimate[region] += 2.0
    estimate[~region] += 100.0  # outside: must not count
    assert metrics.psnr(hr, estimate, region, peak=10.0) == pytest.approx(10 * math.log10(100.0 / 4.0))


def test_psnr_identical_is_infinite():
    hr = ramp_volume()
    assert metrics.psnr(hr, hr, np.ones(hr.shape, dtype=bool), peak=10.0) == math.inf


def test_data_range_is_hr_max_minus_min():
    assert metrics.data_range(ramp_volume(low=-3.0, high=7.0)) == pytest.approx(10.0)
    assert metrics.data_range(np.full((1, 4, 4), 5.0)) == 1.0


def test_region_shaves_border_and_dilation_stays_inside():
    hr = np.ones((1, 20, 20))
    mask = np.ones((1, 20, 20), dtype=bool)
    region = metrics.evaluation_region(hr, mask)
    b = metrics.BORDER_PIXELS
    assert region[0, b:-b, b:-b].all()
    assert region.sum() == (20 - 2 * b) ** 2


def test_dilation_is_in_plane_disk():
    mask = np.zeros((3, 21, 21), dtype=bool)
    mask[1, 10, 10] = True
    dilated = metrics.dilate_in_plane(mask, 3)
    assert not dilated[0].any() and not dilated[2].any()  # never across slices
    assert dilated[1].sum() == metrics.disk(3).sum() == 29
    assert dilated[1, 10, 13] and not dilated[1, 13, 13]


def test_slices_under_two_percent_are_skipped():
    mask = np.zeros((2, 50, 50), dtype=bool)  # 2% of a slice is 50 pixels
    mask[0].flat[:49] = True
    mask[1].flat[:50] = True
    kept = metrics.skip_small_slices(mask)
    assert not kept[0].any()
    assert kept[1].sum() == 50


def test_foreground_region_without_mask():
    hr = np.zeros((1, 40, 40))
    hr[0, 10:30, 12:28] = 100.0
    region = metrics.evaluation_region(hr)
    np.testing.assert_array_equal(region, hr > 50)


def test_empty_region_is_a_user_error():
    hr = ramp_volume()
    with pytest.raises(UserInputError, match="mask"):
        metrics.psnr(hr, hr, np.zeros(hr.shape, dtype=bool), peak=10.0)


def test_ssim_identical_is_one():
    rng = np.random.default_rng(0)
    hr = rng.random((2, 32, 32))
    region = metrics.evaluation_region(hr, np.ones(hr.shape, dtype=bool))
    assert metrics.ssim(hr, hr, region, peak=1.0) == pytest.approx(1.0)


def test_ssim_pooling_matches_skimage_mean_on_its_valid_area():
    """skimage's mean SSIM averages the map without the window's half-width (5 px for sigma 1.5)."""
    rng = np.random.default_rng(1)
    hr = rng.random((1, 40, 36))
    estimate = hr + 0.1 * rng.standard_normal(hr.shape)
    region = metrics.shave_border(np.ones(hr.shape, dtype=bool), 5)
    expected = structural_similarity(hr[0], estimate[0], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert metrics.ssim(hr, estimate, region, peak=1.0) == pytest.approx(expected)
    assert expected < 0.99


def test_summary_ci_matches_scipy():
    values = [1.0, 2.0, 3.0, 4.5]
    summary = metrics.summarise(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert summary["n"] == 4
    assert summary["mean"] == pytest.approx(2.625)
    assert summary["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (summary["ci95_low"], summary["ci95_high"]) == (pytest.approx(low), pytest.approx(high))


def test_summary_of_one_value_has_no_spread():
    assert metrics.summarise([1.5]) == {"mean": 1.5, "sd": None, "ci95_low": None, "ci95_high": None, "n": 1}
