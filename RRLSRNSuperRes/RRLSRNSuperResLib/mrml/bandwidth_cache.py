"""The in-plane bandwidth of each input volume, measured once and kept while its voxels stay the same.

The panel describes the slicing (and whether the stack is scanner-interpolated) on every
parameter change; measuring the bandwidth takes about 0.6 s on a 512 x 512 x 300 stack, so
measuring it each time made every settings change lag. An estimate is kept per
(node ID, image data modification time, spacing, slice axis): changing the device, the
precision or any other setting reuses it; new voxels, a new spacing or another slice axis
measure again (once).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from slicer.util import arrayFromVolume

from ..imaging import bandwidth


class BandwidthEstimates:
    """A small least-recently-used cache of ``imaging.bandwidth.estimate_bandwidth`` per volume node."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._estimates: OrderedDict[tuple, bandwidth.InPlaneBandwidth] = OrderedDict()

    def of(self, volume_node: Any, slice_axis_ijk: int) -> bandwidth.InPlaneBandwidth:
        """The node's in-plane bandwidth for slices along IJK ``slice_axis_ijk``."""
        spacing = tuple(float(s) for s in volume_node.GetSpacing())
        key = (volume_node.GetID(), volume_node.GetImageData().GetMTime(), spacing, int(slice_axis_ijk))
        if key in self._estimates:
            self._estimates.move_to_end(key)
            return self._estimates[key]
        estimate = bandwidth.estimate_bandwidth(arrayFromVolume(volume_node), spacing, slice_axis_ijk)
        self._estimates[key] = estimate
        while len(self._estimates) > self.capacity:
            self._estimates.popitem(last=False)
        return estimate
