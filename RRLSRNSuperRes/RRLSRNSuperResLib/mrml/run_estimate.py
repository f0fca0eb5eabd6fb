"""Memory and time a super-resolution will take, estimated before it starts, and when to ask first.

The output has four times the input's voxels (sixteen at x4), in float32 while it is computed: a
512 x 512 x 400 stack gives a 1.7 GB x2 result, 6.7 GB at x4. Without a warning a user starts it, Slicer
runs out of memory, and the unsaved scene is lost. The estimate needs neither torch nor Qt
(the widget shows ``message`` in ``slicer.util.confirmOkCancelDisplay`` when
``needs_confirmation``).

Memory (host, bytes): the float32 output, the float32 normalised copy of the input the
engine works from, at x4 the float32 x2 result the second level works from, and the output
cast to the input's type when asked for. The result is
handed to the node without another copy (``voxel_transfer.adopt_voxels``).

Time: ``CPU_SECONDS_PER_OUTPUT_MEGAVOXEL`` measured with
``rrlsrn bench --device cpu --repeats 1`` (the bundled 320 x 320 x 22 sample, 9.01 output
megavoxels in 46.4 s; bfloat16, 2 self-ensemble views, k-space consistency, torch 2.13 CPU,
2 cores of an AMD EPYC shared with other jobs, so rather pessimistic), scaled by the number
of cores as if the work spread evenly. At x4 the second level runs the network on the x2 result,
so the work is that of the x2 output plus that of the x4 output (5 times the x2 run's). GPUs are
far faster and not estimated.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

CPU_SECONDS_PER_OUTPUT_MEGAVOXEL = 5.2
MEASURED_CORES = 2
MEMORY_FRACTION_TO_CONFIRM = 0.5  # of the memory available now
MEMORY_TO_CONFIRM_WHEN_UNKNOWN = 8 * 2 ** 30  # bytes, where the free memory cannot be read
CPU_SECONDS_TO_CONFIRM = 600.0
GIB = 2 ** 30


@dataclass(frozen=True)
class RunEstimate:
    output_size_ijk: tuple[int, int, int]
    peak_bytes: int  # new host memory the run allocates (the input is already loaded)
    available_bytes: Optional[int]  # None: unknown on this system
    cpu_seconds: Optional[float]  # None: a GPU may run it (not estimated)

    @property
    def needs_confirmation(self) -> bool:
        if self.available_bytes is None:
            too_big = self.peak_bytes > MEMORY_TO_CONFIRM_WHEN_UNKNOWN
        else:
            too_big = self.peak_bytes > MEMORY_FRACTION_TO_CONFIRM * self.available_bytes
        return too_big or (self.cpu_seconds or 0.0) > CPU_SECONDS_TO_CONFIRM

    @property
    def message(self) -> str:
        """What the user is asked to confirm (plain text, Slicer-worded)."""
        i, j, k = self.output_size_ijk
        lines = [f"The result will be {i} x {j} x {k} voxels and needs about {_readable(self.peak_bytes)} "
                 "of memory" + ("." if self.available_bytes is None
                                else f" ({_readable(self.available_bytes)} are free now).")]
        if self.available_bytes is not None and self.peak_bytes > self.available_bytes:
            lines.append("That is more than the free memory: Slicer may run out of memory and close, losing "
                         "unsaved changes. Save the scene first, or crop the volume (Crop Volume module).")
        if self.cpu_seconds is not None:
            lines.append(f"On this computer's CPU it takes about {self.cpu_seconds / 60:.0f} minutes "
                         "(a CUDA GPU is much faster).")
        return "\n".join(lines + ["Start super-resolution?"])


def _readable(size_bytes: int) -> str:
    return f"{size_bytes / GIB:.1f} GB" if size_bytes >= GIB / 10 else f"{size_bytes / 2 ** 20:.1f} MB"


def available_memory_bytes() -> Optional[int]:
    """Memory available to a new allocation now (Linux, macOS, Windows), or None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if sys.platform == "win32":
        return _windows_available_memory()
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _windows_available_memory() -> Optional[int]:
    class MemoryStatus(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                    ("available", ctypes.c_ulonglong), ("total_page", ctypes.c_ulonglong),
                    ("available_page", ctypes.c_ulonglong), ("total_virtual", ctypes.c_ulonglong),
                    ("available_virtual", ctypes.c_ulonglong), ("available_extended", ctypes.c_ulonglong)]

    status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
    return int(status.available) if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)) else None


def runs_on_cpu(device: str) -> bool:
    """Whether a run with ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``) will use the CPU.

    ``auto`` counts as the CPU until torch is loaded (by a first run): importing it here, to
    look for a GPU, would be the slow start-up the panel must not do before Apply turns into Cancel.
    """
    if device != "auto":
        return device == "cpu"
    if "torch" not in sys.modules:
        return True
    from ..engine.devices import cuda_usable, mps_usable

    return not (cuda_usable() or mps_usable())


@dataclass(frozen=True)
class PlannedRun:
    """What is about to run: an input of ``input_size_ijk`` voxels of ``input_dtype`` sliced along IJK
    ``slice_axis_ijk``, upsampled ``scale`` times in-plane (2 or 4), the result kept in the input's type
    or not, after ``adapt_seconds`` of adaptation ("Adapt to this scan")."""

    input_size_ijk: tuple[int, int, int]
    slice_axis_ijk: int
    input_dtype: np.dtype
    keep_input_type: bool = False
    scale: int = 2
    adapt_seconds: float = 0.0

    def output_size(self, scale: int) -> tuple[int, int, int]:
        return tuple(int(n) * (1 if axis == self.slice_axis_ijk else scale)
                     for axis, n in enumerate(self.input_size_ijk))


def estimate_run(run: PlannedRun, on_cpu: bool, available_bytes: Optional[int],
                 cpu_count: Optional[int] = None) -> RunEstimate:
    """Estimate ``run``. ``on_cpu`` False (a GPU will be used) leaves the time unestimated;
    ``cpu_count`` defaults to ``os.cpu_count()``."""
    output_size = run.output_size(run.scale)
    input_voxels, output_voxels = int(np.prod(run.input_size_ijk)), int(np.prod(output_size))
    x2_voxels = int(np.prod(run.output_size(2)))
    network_voxels = x2_voxels + (output_voxels if run.scale == 4 else 0)  # what each level's network writes
    peak = 4 * output_voxels + 4 * input_voxels + (4 * x2_voxels if run.scale == 4 else 0)
    if run.keep_input_type and np.dtype(run.input_dtype) != np.float32:
        peak += np.dtype(run.input_dtype).itemsize * output_voxels
    seconds = None
    if on_cpu:
        cores = max(1, cpu_count or os.cpu_count() or 1)
        seconds = (CPU_SECONDS_PER_OUTPUT_MEGAVOXEL * network_voxels / 1e6 * MEASURED_CORES / cores
                   + run.adapt_seconds)
    return RunEstimate(output_size, peak, available_bytes, seconds)
