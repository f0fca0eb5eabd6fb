"""Robustness variants of a stack and its manual mask, as clinical use presents them.

A brain mask that is only checked on the stacks it was developed on says little. Each
variant below is what a user or a pipeline does to a stack before asking for a mask: crop it
tightly, rescale or retype it, flip it, add noise, or resample it to another in-plane
spacing. The manual mask goes through the same change (nearest-neighbour or linear > 0.5),
so the Dice of the automatic mask on each variant measures robustness, not the reference.

Arrays are numpy [k, j, i]; spacings are IJK, as in :mod:`..masks.fetal_brain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from ..imaging.geometry import numpy_axis, slice_axis

NOISE_FRACTION = 0.05  # Gaussian noise SD as a fraction of the brain's median intensity
INTENSITY_FACTOR = 0.01  # "any intensity scale or type": x0.01 as float32
NOISE_SEED = 0


@dataclass(frozen=True)
class Variant:
    """One changed copy of a stack and its reference mask (both [k, j, i]) with its spacing."""

    name: str
    voxels: np.ndarray
    reference: np.ndarray
    spacing_ijk: tuple[float, float, float]


def _crop_to_box(voxels, reference, spacing_ijk, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the reference mask's bounding box plus ``margin_mm`` on every side."""
    inside = np.argwhere(reference > 0)
    margin = np.ceil(margin_mm / np.asarray(spacing_ijk, dtype=float)[::-1]).astype(int)
    start = np.maximum(inside.min(axis=0) - margin, 0)
    stop = np.minimum(inside.max(axis=0) + 1 + margin, reference.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    return voxels[box], reference[box]


def _resample_in_plane(voxels, reference, spacing_ijk, target_mm: float):
    """Linear resampling of the acquisition plane to ``target_mm`` pixels (slices unchanged)."""
    through = numpy_axis(slice_axis(tuple(spacing_ijk)))
    spacing_kji = np.asarray(spacing_ijk, dtype=float)[::-1]
    zoom = np.where(np.arange(3) == through, 1.0, spacing_kji / target_mm)
    image = ndimage.zoom(np.asarray(voxels, dtype=np.float32), zoom, order=1, grid_mode=True, mode="nearest")
    mask = ndimage.zoom((reference > 0).astype(np.float32), zoom, order=1, grid_mode=True, mode="nearest") > 0.5
    new_spacing = np.where(np.arange(3) == through, spacing_kji, target_mm)[::-1]
    return image, mask.astype(np.uint8), tuple(float(s) for s in new_spacing)


def _noisy(voxels, reference) -> np.ndarray:
    image = np.asarray(voxels, dtype=np.float32)
    level = float(np.median(image[reference > 0]))
    noise = np.random.default_rng(NOISE_SEED).normal(0.0, NOISE_FRACTION * level, image.shape)
    return (image + noise).astype(np.float32)


VARIANT_NAMES = ("as given", "crop box+12mm", "crop box+3mm", "intensity x0.01 float", "flipped", "noise 5%",
                 "in-plane 0.5mm", "in-plane 1.0mm")


def variants(voxels: np.ndarray, reference: np.ndarray, spacing_ijk, names=VARIANT_NAMES) -> Iterator[Variant]:
    """The variants named in ``names`` (see :data:`VARIANT_NAMES`) of one stack and its mask."""
    spacing = tuple(float(s) for s in spacing_ijk)
    reference = (np.asarray(reference) > 0.5).astype(np.uint8)
    makers: dict[str, Callable[[], Variant]] = {
        "as given": lambda: Variant("as given", voxels, reference, spacing),
        "crop box+12mm": lambda: Variant("crop box+12mm", *_crop_to_box(voxels, reference, spacing, 12.0), spacing),
        "crop box+3mm": lambda: Variant("crop box+3mm", *_crop_to_box(voxels, reference, spacing, 3.0), spacing),
        "intensity x0.01 float": lambda: Variant(
            "intensity x0.01 float", np.asarray(voxels, dtype=np.float32) * np.float32(INTENSITY_FACTOR),
            reference, spacing),
        "flipped": lambda: Variant("flipped", voxels[::-1, ::-1, ::-1], reference[::-1, ::-1, ::-1], spacing),
        "noise 5%": lambda: Variant("noise 5%", _noisy(voxels, reference), reference, spacing),
        "in-plane 0.5mm": lambda: Variant("in-plane 0.5mm", *_resample_in_plane(voxels, reference, spacing, 0.5)),
        "in-plane 1.0mm": lambda: Variant("in-plane 1.0mm", *_resample_in_plane(voxels, reference, spacing, 1.0)),
    }
    for name in names:
        if name not in makers:
            raise ValueError(f"unknown mask variant {name!r}; known: {', '.join(VARIANT_NAMES)}")
        yield makers[name]()
