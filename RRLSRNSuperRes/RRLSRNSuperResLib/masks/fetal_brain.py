"""Fetal brain mask for clinical T2 single-shot stacks, and mask helpers for super-resolution.

The automatic mask is classical image processing with no trained weights. Every parameter is
physical (mm, mL); two were chosen on the 9 MIALSRTK development stacks (the 10 mm opening,
checked split-half, and the third gradient scale, which steadied noisy and resampled stacks),
so scores on those stacks are development scores, not held-out ones.

1. Seeds: the brain is what the stack was planned on, so the field-of-view centre (or the
   user's seed) lies in it; a 3 x 3 grid of seeds 15 mm apart in the acquisition plane
   guards against a seed that falls in a ventricle or just outside the brain.
2. Candidates, on a coarse grid of about 2.25 mm: a marker-controlled watershed of the
   gradient magnitude (three scales) from a 5 mm ball at each seed against everything farther
   than 75 mm (a 450 mL brain fits inside) and against the edge of the view in the
   acquisition plane (so a tightly cropped head does not flood the whole view). The skull
   separates the bright extra-axial CSF from the bright amniotic fluid, so the basin that
   floods from the seed stops there.
3. Consensus: candidates whose volume is that of a fetal brain at 20-35 weeks (40-450 mL;
   the spina bifida atlas brain is 52 mL at 21 weeks) vote; the majority wins. A stray seed
   outside the brain is outvoted. How much the candidates agree is the mask's confidence.
4. Clean-up on the input grid: a 10 mm opening cuts the neck, orbits and other attachments
   narrower than 20 mm (the brain itself is wider than 45 mm), the component nearest the
   seed is kept, and each slice becomes its convex hull: inside the skull the brain outline
   is convex in any plane, which fills holes and smooths the boundary.

Arrays are numpy [k, j, i] (KJI); spacings and seeds given by callers are IJK, as
SimpleITK and Slicer report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull

from ..errors import UserInputError
from ..imaging.geometry import numpy_axis, slice_axis
from ..imaging.overlap import dice

BRAIN_LABEL = 1
# The Slicer panel's words for "--seed" (UserInputError.in_slicer).
_SLICER_SEED_HINT = "place a point inside the brain with 'Brain seed' and click 'Create brain mask' again"
BACKGROUND_LABEL = 2
_HULL_TOLERANCE = 1e-10  # a pixel centre on the hull's edge is inside


@dataclass(frozen=True)
class MaskSettings:
    """Physical parameters of :func:`fetal_brain_mask` (mm, mL); the defaults are the method."""

    # A fetal brain at 20-35 gestational weeks; the spina bifida atlas brain is 52 mL at 21 weeks.
    brain_volume_ml: tuple[float, float] = (40.0, 450.0)
    search_radius_mm: float = 75.0  # beyond this distance from a seed it is not brain
    seed_spread_mm: float = 15.0  # spacing of the 3 x 3 seed grid in the acquisition plane
    marker_radius_mm: float = 5.0  # brain marker ball around each seed
    edge_scales_mm: tuple[float, ...] = (1.5, 2.5, 3.5)  # Gaussian sigmas of the gradient magnitude
    coarse_spacing_mm: float = 2.25  # grid of the candidate search (speed)
    opening_radius_mm: float = 10.0  # cuts attachments narrower than twice this


@dataclass(frozen=True)
class BrainMask:
    """An automatic brain mask with what a user should know before trusting it."""

    voxels: np.ndarray  # uint8 0/1, numpy [k, j, i] on the input grid
    confidence: float  # 0-1: agreement of the watershed candidates (see :func:`candidate_agreement`)
    problems: list[str] = field(default_factory=list)  # why it looks wrong; empty when plausible


def fetal_brain_mask(
    voxels_kji: np.ndarray,
    spacing_ijk: Sequence[float],
    seed_ijk: Sequence[float] | None = None,
    settings: MaskSettings = MaskSettings(),
) -> BrainMask:
    """Automatic fetal brain mask of a T2 single-shot stack with the maternal field of view.

    Parameters
    ----------
    voxels_kji : the stack, numpy [k, j, i] order, any real dtype.
    spacing_ijk : voxel size in mm, IJK order (as SimpleITK's ``GetSpacing``).
    seed_ijk : optional continuous voxel index (IJK order) inside the brain; without it the
        field-of-view centre is used, where clinical stacks are planned to put the brain.
    settings : physical parameters; the defaults are the documented method.

    Returns
    -------
    :class:`BrainMask`: the uint8 0/1 mask on the input grid, its confidence, and the
    reasons it looks implausible (:func:`implausibility`, plus a low-confidence warning).

    Raises
    ------
    UserInputError
        No brain-sized region was found around the seed (give a seed inside the brain).
    """
    image = np.asarray(voxels_kji, dtype=np.float32)
    if image.ndim != 3:
        raise UserInputError(f"the brain mask needs a 3D volume, not a {image.ndim}D array")
    spacing = np.asarray(spacing_ijk, dtype=float)[::-1]
    centre = (np.asarray(image.shape) - 1) / 2.0 if seed_ijk is None else np.asarray(seed_ijk, dtype=float)[::-1]
    if np.any(centre < 0) or np.any(centre > np.asarray(image.shape) - 1):
        position = ", ".join(f"{value:.1f}" for value in centre[::-1])
        size = "x".join(str(n) for n in image.shape[::-1])
        raise UserInputError(f"seed (IJK {position}) lies outside the volume ({size} voxels)")
    through = numpy_axis(slice_axis(tuple(spacing[::-1])))
    plane_axes = tuple(axis for axis in range(3) if axis != through)
    box = _search_box(image.shape, spacing, centre, settings)
    origin = np.array([part.start for part in box])
    votes, confidence = _candidate_votes(image[box], spacing, centre - origin, plane_axes, settings)
    brain = _clean(votes >= 0.5, spacing, centre - origin, through, settings)
    found_ml = mask_volume_ml(brain, spacing[::-1])
    if found_ml < NOT_BRAIN_LIKE_FRACTION * settings.brain_volume_ml[0]:
        found = f"found no fetal brain ({found_ml:.1f} mL were left after the clean-up); is this a fetal brain stack?"
        raise UserInputError(f"{found} If so, give a seed inside the brain (--seed)",
                             in_slicer=f"{found} If so, {_SLICER_SEED_HINT}")
    mask = np.zeros(image.shape, dtype=np.uint8)
    mask[box] = brain
    problems = implausibility(mask, spacing[::-1], settings)
    if confidence < LOW_CONFIDENCE:
        problems.append(f"the automatic mask is uncertain (confidence {confidence:.2f}: its candidates disagree); "
                        "check it, or give a seed inside the brain")
    return BrainMask(mask, confidence, problems)


# A brain cropped to its box plus a few mm fills about half the view; much more is suspect.
MOST_OF_THE_VIEW = 0.8
# Below this candidate agreement the mask is worth a warning (see ``candidate_agreement``):
# midway between non-fetal volumes and noise (0.32-0.60) and fetal stacks (0.645-0.99) seen.
LOW_CONFIDENCE = 0.62
# The fetal brain's longest extent, occipito-frontal, is about 115-120 mm at term; longer is another head.
MAX_FETAL_BRAIN_EXTENT_MM = 125.0
NOT_BRAIN_LIKE_FRACTION = 0.1  # a mask under a tenth of the smallest fetal brain is no brain at all


def mask_volume_ml(mask_kji: np.ndarray, spacing_ijk: Sequence[float]) -> float:
    return float((np.asarray(mask_kji) > 0).sum()) * float(np.prod(spacing_ijk)) / 1000.0


def implausibility(mask_kji: np.ndarray, spacing_ijk: Sequence[float],
                   settings: MaskSettings = MaskSettings()) -> list[str]:
    """Why a brain mask looks wrong for a fetal brain (empty list when it looks plausible).

    A mask outside the fetal brain volumes of 20-35 weeks, or covering most of the view,
    is worth a warning: it is what a stack without a fetal brain, or a failed mask, gives.
    """
    mask = np.asarray(mask_kji) > 0
    volume_ml = mask_volume_ml(mask, spacing_ijk)
    low, high = settings.brain_volume_ml
    problems = []
    if volume_ml < low or volume_ml > high:
        problems.append(f"the brain mask holds {volume_ml:.0f} mL, outside the {low:g}-{high:g} mL of a fetal "
                        "brain at 20-35 weeks (a cropped stack, another head, or a failed mask?)")
    if mask.mean() > MOST_OF_THE_VIEW:
        problems.append(f"the brain mask covers {mask.mean():.0%} of the view, nearly all of it: check it before "
                        "using it (a head larger than the view, or a failed mask?)")
    if mask.any():
        voxels = np.argwhere(mask)
        extent = float(((voxels.max(axis=0) - voxels.min(axis=0) + 1) * np.asarray(spacing_ijk)[::-1]).max())
        if extent > MAX_FETAL_BRAIN_EXTENT_MM:
            problems.append(f"the brain mask is {extent:.0f} mm long, more than a fetal brain "
                            f"(about {MAX_FETAL_BRAIN_EXTENT_MM - 5:g} mm at term): is this another head?")
    return problems


def _coarse_factors(spacing_kji: np.ndarray, settings: MaskSettings) -> np.ndarray:
    return np.maximum(1, np.round(settings.coarse_spacing_mm / spacing_kji)).astype(int)


def _search_box(shape: tuple[int, ...], spacing_kji: np.ndarray, centre_kji: np.ndarray,
                settings: MaskSettings) -> tuple[slice, ...]:
    """Box around the seed holding every seed's search ball (clipped to the volume)."""
    half = np.ceil((settings.search_radius_mm + 2 * settings.seed_spread_mm) / spacing_kji).astype(int)
    start = np.maximum(np.round(centre_kji).astype(int) - half, 0)
    stop = np.minimum(np.round(centre_kji).astype(int) + half + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


def _distance_mm(shape: tuple[int, ...], spacing_kji: np.ndarray, point_kji: np.ndarray) -> np.ndarray:
    """Distance in mm of every voxel centre from a point (voxel index units)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((grid - c) * s) ** 2 for grid, c, s in zip(grids, point_kji, spacing_kji)))


def _seed_grid(centre_kji: np.ndarray, spacing_kji: np.ndarray, plane_axes: tuple[int, int],
               spread_mm: float) -> list[np.ndarray]:
    """3 x 3 seeds ``spread_mm`` apart in the acquisition plane through the centre."""
    seeds = []
    for first, second in product((-1, 0, 1), repeat=2):
        offset = np.zeros(3)
        offset[plane_axes[0]] = first * spread_mm
        offset[plane_axes[1]] = second * spread_mm
        seeds.append(centre_kji + offset / spacing_kji)
    return seeds


def _candidate_votes(image: np.ndarray, spacing_kji: np.ndarray, centre_kji: np.ndarray,
                     plane_axes: tuple[int, int], settings: MaskSettings) -> tuple[np.ndarray, float]:
    """Fraction of brain-sized watershed candidates that hold each voxel (input grid), and their agreement."""
    factors = _coarse_factors(spacing_kji, settings)
    coarse = _block_mean(image, factors)
    coarse_spacing = spacing_kji * factors
    coarse_centre = (centre_kji + 0.5) / factors - 0.5
    edges = [ndimage.gaussian_gradient_magnitude(coarse, sigma / coarse_spacing) for sigma in settings.edge_scales_mm]
    low, high = settings.brain_volume_ml
    voxel_ml = float(np.prod(coarse_spacing)) / 1000.0
    candidates = []
    for seed in _seed_grid(coarse_centre, coarse_spacing, plane_axes, settings.seed_spread_mm):
        markers = _markers(coarse.shape, coarse_spacing, seed, plane_axes, settings)
        for edge in edges:
            candidates.append(ndimage.binary_fill_holes(marker_watershed(edge, markers) == BRAIN_LABEL))
    voters = [candidate for candidate in candidates if low <= candidate.sum() * voxel_ml <= high]
    if not voters:
        found = f"found no fetal-brain-sized region ({low:g}-{high:g} mL) around the seed;"
        raise UserInputError(f"{found} give a seed inside the brain (--seed in the CLI)",
                             in_slicer=f"{found} {_SLICER_SEED_HINT}")
    votes = np.mean(voters, axis=0, dtype=np.float32)
    # Linear interpolation back to the input grid keeps the boundary free of coarse staircases.
    fine = ndimage.zoom(votes, factors, order=1, mode="nearest", grid_mode=True)
    return fine[tuple(slice(0, size) for size in image.shape)], candidate_agreement(voters, votes >= 0.5)


def candidate_agreement(voters: list[np.ndarray], consensus: np.ndarray) -> float:
    """Confidence of a consensus mask: the mean Dice of the brain-sized candidates with it.

    1 when every seed and scale flooded the same region; lower when the basins leaked in
    different ways, so the consensus rests on a few of them.
    """
    return float(np.mean([dice(voter, consensus) for voter in voters]))


def marker_watershed(relief: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Flood ``relief`` from the labelled ``markers`` (0 = unlabelled); every voxel gets a label.

    SimpleITK's morphological watershed from markers (face connectivity, no watershed line):
    Slicer's Python ships SimpleITK, not scikit-image.
    """
    labels = sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(np.asarray(relief, dtype=np.float32)),
        sitk.GetImageFromArray(np.asarray(markers, dtype=np.uint32)),
        markWatershedLine=False, fullyConnected=False)
    return sitk.GetArrayFromImage(labels)


def convex_hull_2d(plane: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie in the convex hull of a non-empty 2D mask (pixel edges included).

    As scikit-image's ``convex_hull_image``: the hull is taken over the midpoints of every
    foreground pixel's edges, so single pixels and lines have an area, and centres on the hull
    count as inside.
    """
    # The hull of the outline pixels is the hull of all pixels, and far cheaper to find.
    pixels = np.argwhere(plane & ~ndimage.binary_erosion(plane)).astype(np.float64)
    edge_midpoints = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])
    hull = ConvexHull(np.unique((pixels[:, None, :] + edge_midpoints).reshape(-1, 2), axis=0))
    centres = np.indices(plane.shape).reshape(2, -1).astype(np.float64)
    inside = np.all(hull.equations[:, :2] @ centres + hull.equations[:, 2:] < _HULL_TOLERANCE, axis=0)
    return inside.reshape(plane.shape)


def _block_mean(image: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mean over non-overlapping blocks; the edge is repeated to fill the last block."""
    padded = np.pad(image, [(0, -size % int(f)) for size, f in zip(image.shape, factors)], mode="edge")
    shape = []
    for size, factor in zip(padded.shape, factors):
        shape += [size // factor, int(factor)]
    return padded.reshape(shape).mean(axis=(1, 3, 5))


def _markers(shape: tuple[int, ...], spacing_kji: np.ndarray, seed_kji: np.ndarray, plane_axes: tuple[int, int],
             settings: MaskSettings) -> np.ndarray:
    """Brain ball at the seed; background far from it and on the view's edge in the plane.

    The slices at the ends of the stack are not marked: the brain may be cut by them.
    """
    distance = _distance_mm(shape, spacing_kji, seed_kji)
    markers = np.zeros(shape, dtype=np.int32)
    markers[distance > settings.search_radius_mm] = BACKGROUND_LABEL
    for axis in plane_axes:
        for end in (0, shape[axis] - 1):
            markers[tuple(end if index == axis else slice(None) for index in range(3))] = BACKGROUND_LABEL
    markers[distance <= settings.marker_radius_mm] = BRAIN_LABEL
    return markers


def _clean(brain: np.ndarray, spacing_kji: np.ndarray, seed_kji: np.ndarray, through_axis: int,
           settings: MaskSettings) -> np.ndarray:
    """Opening in mm, the component nearest the seed, then each slice's convex hull."""
    opened = _dilate_mm(_erode_mm(brain, settings.opening_radius_mm, spacing_kji), settings.opening_radius_mm,
                        spacing_kji)
    opened &= brain
    kept = _component_nearest(opened if opened.any() else brain, seed_kji, spacing_kji)
    hulls = [convex_hull_2d(plane) if plane.any() else plane for plane in np.moveaxis(kept, through_axis, 0)]
    return np.moveaxis(np.stack(hulls), 0, through_axis).astype(np.uint8)


def _erode_mm(mask: np.ndarray, radius_mm: float, spacing_kji: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=spacing_kji) > radius_mm


def _dilate_mm(mask: np.ndarray, radius_mm: float, spacing_kji: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask, sampling=spacing_kji) <= radius_mm


def _component_nearest(mask: np.ndarray, seed_kji: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """The connected component containing, or else nearest to, the seed (mm distance)."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return labels > 0
    distance = _distance_mm(mask.shape, spacing_kji, seed_kji)
    nearest = ndimage.minimum(distance, labels, index=np.arange(1, count + 1))
    return labels == int(np.argmin(nearest)) + 1
