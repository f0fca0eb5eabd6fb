"""Noise level of a stack from its own voxels: how the noise range of the training degradation was set.

Kept with the tests (the Lib itself does not estimate noise): it measured the real acquired
scans that ``imaging.mri_acquisition``'s default noise range covers (docs/model-card.md).

The finest diagonal Haar detail ``(a - b - c + d) / 2`` of each 2x2 in-plane block keeps white
noise at its SD and cancels smooth anatomy; its median absolute value over tissue, / 0.6745
(Donoho's MAD estimator), gives the noise SD. Edges make it an upper bound; a stack the
scanner interpolated (no finest-scale band) makes it too low, so it is meant for acquired stacks.
"""

from __future__ import annotations

import numpy as np
from RRLSRNSuperResLib.imaging.intensity import foreground_threshold

_MAD_TO_SD = 0.6745


def haar_noise_sd(voxels: np.ndarray, slice_axis: int) -> float:
    """Noise SD (in the voxels' units) from the in-plane diagonal Haar detail over tissue."""
    planes = np.moveaxis(np.asarray(voxels, dtype=np.float64), slice_axis, 0)
    planes = planes[:, : planes.shape[1] // 2 * 2, : planes.shape[2] // 2 * 2]
    a, b = planes[:, 0::2, 0::2], planes[:, 1::2, 0::2]
    c, d = planes[:, 0::2, 1::2], planes[:, 1::2, 1::2]
    detail = (a - b - c + d) / 2
    tissue = (a + b + c + d) / 4 > foreground_threshold(planes)
    if not tissue.any():
        raise ValueError("no tissue above the foreground threshold to measure noise on")
    return float(np.median(np.abs(detail[tissue])) / _MAD_TO_SD)
