"""A PNG comparison of methods on one brain slice: crops of each estimate, then their error maps.

Used by ``rrlsrn demo`` and ``rrlsrn report``. The slice is the included one nearest the
brain's centroid, cropped to the brain's box. The first row is the LR (nearest-upsampled to
the HR grid: the input as the scanner gave it), each method and HR on one grey window; the
second row the absolute error of each method on one shared scale (bright = large error).
Drawn with Pillow (a CLI dependency), so no plotting library is added for a few pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from ..evaluation.simulated_lr import Comparison

BOX_MARGIN_PIXELS = 8
"""HR pixels of context kept around the brain's bounding box in the figure."""
PANEL_HEIGHT = 256
"""Approximate panel height in screen pixels (the brain box is magnified by an integer factor)."""
LABEL_HEIGHT = 18
GREY_PERCENTILES = (0.5, 99.5)
ERROR_PERCENTILE = 99.0

Panel = Tuple[str, Optional[np.ndarray]]
"""A cell of the figure: its label and an 8-bit image, or None for a text-only cell."""


def central_slice(region: np.ndarray) -> int:
    """The included slice nearest the region's centroid along the slice axis (``S x H x W`` region)."""
    areas = region.sum(axis=(1, 2))
    included = np.flatnonzero(areas)
    centroid = float((np.arange(len(areas)) * areas).sum() / areas.sum())
    return int(included[np.argmin(np.abs(included - centroid))])


def to_grey(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Window ``[low, high]`` (image units) to 0..255."""
    scaled = (np.asarray(image, dtype=np.float64) - low) / max(high - low, 1e-12)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def nearest_upsample(lr_slice: np.ndarray) -> np.ndarray:
    """Each LR pixel as its 2 x 2 block on the HR grid: the input as the scanner gave it."""
    return np.repeat(np.repeat(lr_slice, 2, axis=0), 2, axis=1)


def comparison_panels(comparison: Comparison, labels: Dict[str, str], caption: str) -> List[List[Panel]]:
    """Two rows of panels for the methods ``labels`` names (estimate key -> label), caption first below."""
    from ..engine.volume import brain_window

    index = central_slice(comparison.region)
    window = brain_window(comparison.region[index][None], BOX_MARGIN_PIXELS)
    rows, cols = slice(window.top, window.bottom), slice(window.left, window.right)
    hr = comparison.hr[index][rows, cols]
    estimates = {label: comparison.estimates[key][index][rows, cols] for key, label in labels.items()}
    low, high = np.percentile(hr, GREY_PERCENTILES)
    errors = {label: np.abs(image - hr) for label, image in estimates.items()}
    top = float(np.percentile(np.concatenate([e.ravel() for e in errors.values()]), ERROR_PERCENTILE))
    first_row = [("LR (nearest)", to_grey(nearest_upsample(comparison.lr[index])[rows, cols], low, high))]
    first_row += [(label, to_grey(image, low, high)) for label, image in estimates.items()]
    first_row.append(("HR", to_grey(hr, low, high)))
    second_row: List[Panel] = [(f"slice {index}\n{caption}", None)]
    second_row += [(f"|{label} - HR|\n0-{top:.3g}", to_grey(error, 0.0, top)) for label, error in errors.items()]
    return [first_row, second_row + [("", None)]]


def compose(rows: List[List[Panel]]) -> Image.Image:
    """Grid of magnified panels (nearest neighbour: pixels stay visible) with a label above each."""
    from PIL import Image, ImageDraw

    height, width = next(image.shape for row in rows for _, image in row if image is not None)
    zoom = max(1, PANEL_HEIGHT // height)
    cell_w, cell_h = width * zoom, height * zoom + 2 * LABEL_HEIGHT
    canvas = Image.new("L", (cell_w * max(len(row) for row in rows), cell_h * len(rows)), color=0)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, (label, image) in enumerate(row):
            if image is not None:
                panel = Image.fromarray(image).resize((cell_w, cell_h - 2 * LABEL_HEIGHT), Image.NEAREST)
                canvas.paste(panel, (c * cell_w, r * cell_h + 2 * LABEL_HEIGHT))
            draw.multiline_text((c * cell_w + 3, r * cell_h + 3), label, fill=255)
    return canvas


def save_png(figure: Image.Image, path: Path) -> None:
    """Write atomically: a reader never sees half a picture."""
    from ..io.atomic_files import replace_atomically

    replace_atomically(path, lambda temporary: figure.save(temporary, format="PNG"))
