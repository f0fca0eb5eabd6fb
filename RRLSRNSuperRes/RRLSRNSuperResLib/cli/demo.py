"""``rrlsrn demo``: the bundled fetal sample, end to end, in one folder.

Three results, so a new user sees both what the tool does and how well:

1. the real stack super-resolved x2 in-plane, as ``rrlsrn superres`` would (NIfTI);
2. the simulated-LR evaluation of the same stack (bicubic degradation, manual brain mask
   dilated) against cubic spline and bicubic (JSON, as ``rrlsrn evaluate`` writes it);
3. a PNG figure on a central brain slice, cropped to the brain: LR (nearest-upsampled to the
   HR grid) | cubic spline | RRLSRN | HR, and below the absolute errors of cubic spline and
   RRLSRN on one shared scale (bright = large error).

The figure is drawn with Pillow: it is already installed as a direct dependency of
scikit-image (and of its imageio), so no plotting library is added for one picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np

from ..errors import UserInputError
from ..evaluation import simulated_lr

if TYPE_CHECKING:
    from PIL import Image

    from ..io.volumes import Volume

SAMPLE_NAME = "sub-01_run-1_T2w"
BOX_MARGIN_PIXELS = 8
"""HR pixels of context kept around the brain's bounding box in the figure."""
PANEL_HEIGHT = 256
"""Approximate panel height in screen pixels (the brain box is magnified by an integer factor)."""
LABEL_HEIGHT = 18
GREY_PERCENTILES = (0.5, 99.5)
ERROR_PERCENTILE = 99.0

Panel = Tuple[str, Optional[np.ndarray]]
"""A cell of the figure: its label and an 8-bit image, or None for a text-only cell."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("rrlsrn-demo"),
                        help="folder for the results (created; default: rrlsrn-demo in the current folder)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


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


def figure_panels(comparison: simulated_lr.Comparison, scores: dict) -> Tuple[List[Panel], List[Panel]]:
    """The two rows of labelled 8-bit panels on the central brain slice; the volume's PSNRs as a caption."""
    from ..engine.volume import brain_window

    index = central_slice(comparison.region)
    window = brain_window(comparison.region[index][None], BOX_MARGIN_PIXELS)
    rows, cols = slice(window.top, window.bottom), slice(window.left, window.right)
    hr = comparison.hr[index][rows, cols]
    images = {"LR (nearest)": nearest_upsample(comparison.lr[index])[rows, cols],
              "cubic spline": comparison.estimates["cubic_spline"][index][rows, cols],
              "RRLSRN": comparison.estimates["rrlsrn"][index][rows, cols], "HR": hr}
    low, high = np.percentile(hr, GREY_PERCENTILES)
    errors = {name: np.abs(images[name] - hr) for name in ("cubic spline", "RRLSRN")}
    top = float(np.percentile(np.concatenate([e.ravel() for e in errors.values()]), ERROR_PERCENTILE))
    first_row = [(name, to_grey(image, low, high)) for name, image in images.items()]
    psnr = scores["psnr"]
    caption = (f"slice {index} along {scores['slice_axis']}\n\nvolume PSNR\n({scores['degradation']} LR):\n"
               f"cubic spline {psnr['cubic_spline']:.2f} dB\nRRLSRN {psnr['rrlsrn']:.2f} dB")
    second_row = [(caption, None)]
    second_row += [(f"|{name} - HR| 0-{top:.0f}", to_grey(error, 0.0, top)) for name, error in errors.items()]
    return first_row, second_row + [("", None)]


def compose(rows: List[List[Panel]]) -> Image.Image:
    """Grid of magnified panels (nearest neighbour: pixels stay visible) with a label above each."""
    from PIL import Image, ImageDraw

    height, width = next(image.shape for row in rows for _, image in row if image is not None)
    zoom = max(1, PANEL_HEIGHT // height)
    cell_w, cell_h = width * zoom, height * zoom + LABEL_HEIGHT
    canvas = Image.new("L", (cell_w * max(len(row) for row in rows), cell_h * len(rows)), color=0)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, (label, image) in enumerate(row):
            if image is not None:
                panel = Image.fromarray(image).resize((cell_w, cell_h - LABEL_HEIGHT), Image.NEAREST)
                canvas.paste(panel, (c * cell_w, r * cell_h + LABEL_HEIGHT))
            draw.multiline_text((c * cell_w + 3, r * cell_h + 3), label, fill=255)
    return canvas


def superresolve_sample(volume: Volume, device: str, path: Path) -> dict:
    """Step 1: the real stack x2 (whole slices, as ``rrlsrn superres`` does), written on the x2 grid."""
    from ..engine.volume import superresolve
    from ..imaging.geometry import upsampled_geometry
    from ..io.volumes import write_volume
    from .progress_bar import terminal_progress

    result = superresolve(volume.voxels, volume.geometry.spacing, device=device,
                          progress=terminal_progress("super-resolving the sample"))
    output_geometry = upsampled_geometry(volume.geometry, result.slice_axis)
    write_volume(path, result.voxels, output_geometry)
    return {"path": path, "input_size": volume.geometry.size, "output_size": output_geometry.size,
            "slice_axis": "ijk"[result.slice_axis], "device": result.device, "seconds": round(result.seconds, 2),
            "notes": list(result.notes)}


def print_scores(scores: dict) -> None:
    psnr, ssim = scores["psnr"], scores["ssim"]
    print(f"simulated LR ({scores['degradation']} x1/2), {scores['included_slices']} slices inside the "
          "dilated brain mask:")
    for name, label in (("cubic_spline", "cubic spline"), ("bicubic", "bicubic"), ("rrlsrn", "RRLSRN")):
        print(f"  {label:<12} PSNR {psnr[name]:6.2f} dB  SSIM {ssim[name]:.4f}")
    print(f"  RRLSRN gain over cubic spline: {scores['psnr_gain_db']['over_cubic_spline']:+.2f} dB PSNR, "
          f"{scores['ssim_gain']['over_cubic_spline']:+.4f} SSIM")


def output_folder(out: Path) -> Path:
    """Create the results folder (and its parents); a file of that name is a user error."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; give a folder for the demo's results")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args: argparse.Namespace) -> int:
    from ..io.atomic_files import replace_atomically, write_json
    from ..io.volumes import read_volume
    from ..model.artifact import model_identity
    from ..resources import sample_mask_path, sample_volume_path
    from .progress_bar import terminal_progress

    out = output_folder(args.out)
    volume = read_volume(sample_volume_path())
    mask = read_volume(sample_mask_path()).voxels > 0.5

    superres = superresolve_sample(volume, args.device, out / f"{SAMPLE_NAME}_rrlsrn_x2.nii.gz")
    print(f"super-resolved {sample_volume_path().name}: {superres['input_size']} -> {superres['output_size']} "
          f"voxels (slices along {superres['slice_axis']}) in {superres['seconds']:.1f} s on {superres['device']}")
    print(f"  wrote {superres['path']}")

    comparison = simulated_lr.simulate(volume.voxels, volume.geometry.spacing, mask, "bicubic", device=args.device,
                                     progress=terminal_progress("simulated-LR evaluation"))
    scores = simulated_lr.score(comparison)
    metrics_path = out / "metrics.json"
    write_json(metrics_path, {"command": "rrlsrn demo", "hr": sample_volume_path(), "mask": sample_mask_path(),
                              "model": model_identity(None), "superresolution": superres,
                              "conventions": simulated_lr.conventions("bicubic"), "evaluation": scores})
    print_scores(scores)
    print(f"  wrote {metrics_path}")

    figure_path = out / "comparison.png"
    figure = compose(list(figure_panels(comparison, scores)))
    replace_atomically(figure_path, lambda temporary: figure.save(temporary, format="PNG"))
    print(f"  wrote {figure_path}")
    return 0
