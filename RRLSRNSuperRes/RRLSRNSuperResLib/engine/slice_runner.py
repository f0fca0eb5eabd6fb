"""Running the network on batches of 2D slices: edge padding, tiles, out-of-memory fallback.

Every call goes through one mechanism: the slice is edge-padded by ``EDGE_PAD`` pixels (reflect),
a *window* of it with a halo of the network's receptive field (clipped to the padded slice) is
run and the halo is cut from the output. A whole slice is one window; a brain box or a tile is
a smaller one. Each output pixel therefore sees the same input whatever the window, so windows
are seamless: tiled or box-restricted output equals the whole-slice output inside the window
(to float tolerance), while a whole slice pays for only ``EDGE_PAD`` extra pixels a side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..model.mixed_precision import forward_mixed
from .self_ensemble import forward_views

_PROBE_SIDE = 64
EDGE_PAD = 8  # reflected LR pixels around each slice: context for the border pixels
_MAX_TILE_SPLITS = 3  # tiles of 1/2, 1/4, 1/8 of the slice side before giving up on the GPU


@dataclass(frozen=True)
class Window:
    """Rows ``top:bottom`` and columns ``left:right`` of an LR slice (before padding)."""

    top: int
    bottom: int
    left: int
    right: int


def receptive_radius(model: torch.jit.ScriptModule) -> int:
    """LR pixels an output depends on around its position, measured with an impulse.

    Measured rather than read from a config so any user-supplied TorchScript model is tiled
    correctly. The answer is rounded up and padded by two pixels for safety.
    """
    with torch.inference_mode():
        base = torch.zeros(1, 1, _PROBE_SIDE, _PROBE_SIDE)
        impulse = base.clone()
        impulse[..., _PROBE_SIDE // 2, _PROBE_SIDE // 2] = 1.0
        changed = (model(impulse) - model(base)).abs()[0, 0] > 0
    rows, cols = np.nonzero(changed.numpy())
    if rows.size == 0:
        return 2
    centre = _PROBE_SIDE  # output pixels 2c and 2c+1 sit on input pixel c
    reach = max(centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre)
    return int(np.ceil(reach / 2)) + 2


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def split_windows(window: Window, parts: int) -> list[Window]:
    """Split a window into ``parts x parts`` tiles (for memory, never for the result)."""
    rows = np.linspace(window.top, window.bottom, parts + 1).astype(int)
    cols = np.linspace(window.left, window.right, parts + 1).astype(int)
    return [Window(rows[r], rows[r + 1], cols[c], cols[c + 1])
            for r in range(parts) for c in range(parts) if rows[r] < rows[r + 1] and cols[c] < cols[c + 1]]


@dataclass
class SliceRunner:
    """The model on one device, with the fallback chain of docs/design.md recorded in ``notes``."""

    model: torch.jit.ScriptModule
    device: torch.device
    halo: int
    notes: list[str] = field(default_factory=list)
    report: Callable[[str], None] = lambda message: None
    tile_splits: int = 0
    compute_dtype: Optional[torch.dtype] = None
    """bfloat16/float16 for autocast, None for float32 (see ``model.precision``)."""
    views: int = 1
    """Self-ensemble views averaged per slice (``engine.self_ensemble``)."""

    def run(self, slices: np.ndarray, window: Window) -> np.ndarray:
        """x2 of ``slices[:, window]`` (B x h x w normalised float32) -> B x 2h x 2w."""
        while True:
            try:
                return self._run_tiled(slices, window)
            except RuntimeError as error:
                if not is_out_of_memory(error) or self.device.type == "cpu":
                    raise
                self._fall_back(len(slices))

    def _fall_back(self, batch: int) -> None:
        torch.cuda.empty_cache()
        if batch > 1:
            raise BatchTooLarge(batch)
        if self.tile_splits < _MAX_TILE_SPLITS:
            self.tile_splits += 1
            self._note(f"out of GPU memory with one slice: tiling {2 ** self.tile_splits}x{2 ** self.tile_splits}")
            return
        self._note("out of GPU memory even with tiles: continuing on the CPU")
        self.device = torch.device("cpu")
        if self.compute_dtype == torch.float16:  # a GPU format; the CPU runs bfloat16 natively or float32
            from ..model.precision import resolve_precision

            self.compute_dtype = resolve_precision("auto", self.device)
        self.model = self.model.to(self.device)

    def _note(self, message: str) -> None:
        self.notes.append(message)
        self.report(message)

    def _run_tiled(self, slices: np.ndarray, window: Window) -> np.ndarray:
        parts = 2 ** self.tile_splits
        if parts == 1:
            return self._run_window(slices, window)
        height, width = window.bottom - window.top, window.right - window.left
        output = np.empty((len(slices), 2 * height, 2 * width), dtype=np.float32)
        for tile in split_windows(window, parts):
            rows = slice(2 * (tile.top - window.top), 2 * (tile.bottom - window.top))
            cols = slice(2 * (tile.left - window.left), 2 * (tile.right - window.left))
            output[:, rows, cols] = self._run_window(slices, tile)
        return output

    def _run_window(self, slices: np.ndarray, window: Window) -> np.ndarray:
        """Pad the slice edges, cut the window with its (clipped) halo, run, cut the halo off."""
        pad = EDGE_PAD
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))[:, None]
            mode = "reflect" if min(batch.shape[-2:]) > pad else "replicate"
            padded = F.pad(batch, (pad, pad, pad, pad), mode=mode)
            rows = _with_halo(window.top + pad, window.bottom + pad, self.halo, padded.shape[-2])
            cols = _with_halo(window.left + pad, window.right + pad, self.halo, padded.shape[-1])
            crop = padded[..., rows[0]: rows[1], cols[0]: cols[1]]
            output = self._forward(crop.to(self.device).contiguous(memory_format=torch.channels_last))
            top, left = 2 * (window.top + pad - rows[0]), 2 * (window.left + pad - cols[0])
            height, width = 2 * (window.bottom - window.top), 2 * (window.right - window.left)
            return output[:, 0, top: top + height, left: left + width].float().cpu().numpy()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The model in ``compute_dtype`` (``model.mixed_precision``: the image branch stays float32),
        averaged over ``views`` flipped/transposed views."""
        return forward_views(lambda view: forward_mixed(self.model, view, self.compute_dtype), batch, self.views)


def _with_halo(start: int, stop: int, halo: int, size: int) -> tuple[int, int]:
    """``start:stop`` grown by ``halo`` on both sides, clipped to ``0:size``."""
    return max(start - halo, 0), min(stop + halo, size)


class BatchTooLarge(RuntimeError):
    """Raised by the runner so the engine retries the same slices in smaller batches."""

    def __init__(self, batch: int):
        super().__init__(f"out of GPU memory with a batch of {batch} slices")
        self.batch = batch
