"""Rigid alignment of whole thick-slice stacks to the template stack, and the choice of that template.

Between stacks the fetus turns, often by tens of degrees, so the headers alone do not put the stacks'
brains on top of each other. This step finds one rigid transform per stack (6 parameters, LPS mm) that
does; it is only the *start* of slice-to-volume registration, which then corrects each slice, so an
accuracy of a degree or two and a millimetre is what it must reach, robustly, in a few seconds.

How: both stacks are cropped around their brain masks, smoothed to a common isotropic resolution (the
slice profile in-plane, the grid through-plane) and resampled onto isotropic grids in their own
orientation; SimpleITK's registration framework maximises the normalised correlation inside the
(dilated) brain masks. Large turns are found by a multi-start: rotations sampled up to 60 degrees about
the brain's centre are scored on a coarse grid, the best few optimised there, the best of those refined
on the finer grids.

The matrix follows the reconstruction's slice convention: ``x_anatomy_in_fixed_frame = matrix @
x_nominal_moving`` (identity when the headers are right). SimpleITK's registration transform maps
fixed points to moving points, so ``matrix`` is its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import UserInputError
from ..imaging.geometry import Geometry
from ..imaging.intensity import foreground_threshold
from ..masks.fetal_brain import mask_volume_ml
from .stacks import Stack

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
# 13 rotation axes (3 faces, 4 corners, 6 edges of a cube), both signs: an even sampling of directions.
_AXES = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1),
                  (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1)], dtype=float)


@dataclass(frozen=True)
class AlignmentSettings:
    """Knobs of ``align_stack``; the defaults align two 320x320x22 fetal stacks in a few seconds.

    ``grids_mm``: isotropic registration grids, coarse (multi-start) first, then refinements.
    ``start_angles_deg``: rotation angles sampled about each of 26 axis directions (plus no rotation).
    ``starts_optimised``: how many of the best-scoring starts are optimised on the coarse grid.
    ``crop_margin_mm``: kept around each brain mask (room for the turn); ``mask_dilation_mm``: the
    metric's masks grow by this so the brain's outline counts. ``min_agreement``: normalised
    correlation below which the stacks are taken for different subjects.
    """

    grids_mm: tuple[float, ...] = (4.0, 2.0)
    start_angles_deg: tuple[float, ...] = (30.0, 60.0)
    starts_optimised: int = 12
    iterations: int = 200
    crop_margin_mm: float = 15.0
    mask_dilation_mm: float = 4.0
    min_agreement: float = 0.5


@dataclass(frozen=True)
class AlignmentResult:
    """``matrix``: 4x4 LPS, moving nominal -> fixed frame; ``metric``: NCC in the overlap after alignment."""

    matrix: np.ndarray
    metric: float
    converged: bool


@dataclass(frozen=True)
class _Level:
    """One stack on one registration grid: smoothed image and its (dilated) brain mask."""

    image: sitk.Image
    mask: sitk.Image


@dataclass(frozen=True)
class _Descent:
    """Regular-step gradient descent: first step and smallest step (mm of physical shift), step shrink
    factor at each reversal of direction, iteration cap."""

    step_mm: float
    min_step_mm: float
    relaxation: float
    iterations: int


def align_stack(moving: Stack, fixed: Stack, settings: AlignmentSettings = AlignmentSettings()) -> AlignmentResult:
    """Rigid transform that brings ``moving``'s anatomy onto ``fixed``'s (see the module docstring).

    Raises ``UserInputError`` when the stacks' fields of view do not overlap, or when after alignment
    the stacks' correlation stays below ``settings.min_agreement`` (different subjects, or a broken stack).
    """
    _check_fields_of_view_overlap(moving, fixed)
    levels = [(_level(fixed, grid, settings), _level(moving, grid, settings)) for grid in settings.grids_mm]
    coarse_fixed, coarse_moving = levels[0]
    starts = _initial_transforms(coarse_fixed.mask, coarse_moving.mask, settings.start_angles_deg)
    best_starts = _best(coarse_fixed, coarse_moving, starts, settings.starts_optimised)
    runs = [_coarse_search(coarse_fixed, coarse_moving, start, settings.grids_mm[0], settings.iterations)
            for start in best_starts]
    transform = _best(coarse_fixed, coarse_moving, runs, 1)[0]
    for level_fixed, level_moving in levels:  # coarse to fine
        transform, converged = _refine(level_fixed, level_moving, transform, settings.iterations)
    finest_fixed, finest_moving = levels[-1]
    metric = _overlap_correlation(finest_fixed, finest_moving, transform)
    if not metric >= settings.min_agreement:
        raise UserInputError(
            f"stacks {moving.name} and {fixed.name} do not agree after alignment (correlation {metric:.2f} < "
            f"{settings.min_agreement}): are they of the same subject, with brain masks that cover the brain?"
        )
    return AlignmentResult(matrix=_moving_to_fixed_matrix(transform), metric=metric, converged=converged)


def align_stacks(stacks: Sequence[Stack], template: int) -> list[np.ndarray]:
    """4x4 LPS transform of each stack into the template's frame (x_anatomy = T @ x_nominal): every
    stack but the template aligned to it by :func:`align_stack`."""
    return [np.eye(4) if index == template else align_stack(stack, stacks[template]).matrix
            for index, stack in enumerate(stacks)]


def choose_template(stacks: Sequence[Stack]) -> int:
    """Index of the stack the others are aligned to: the most brain, seen with the least motion.

    Score = brain-mask volume (mL: the stack covering the whole brain gives the most complete frame)
    x median correlation of neighbouring slices inside the mask (motion between slices lowers it).
    Deterministic; ties go to the first stack.
    """
    if not stacks:
        raise UserInputError("no stacks given: pass at least two stacks of the same subject")
    scores = [mask_volume_ml(brain_mask(stack), stack.geometry.spacing) * _slice_continuity(stack)
              for stack in stacks]
    return int(np.argmax(scores))


def brain_mask(stack: Stack) -> np.ndarray:
    """The stack's mask, or (none given) the voxels brighter than the Otsu threshold."""
    if stack.mask_kji is not None:
        return np.asarray(stack.mask_kji, dtype=bool)
    voxels = np.asarray(stack.voxels_kji, dtype=np.float32)
    return voxels > foreground_threshold(voxels)


def _slice_continuity(stack: Stack) -> float:
    """Median correlation of each slice with the next, inside both slices' masks (0 when undefined)."""
    voxels = np.asarray(stack.voxels_kji, dtype=np.float64)
    mask = brain_mask(stack)
    correlations = []
    for k in range(voxels.shape[0] - 1):
        both = mask[k] & mask[k + 1]
        if both.sum() > 10:
            correlations.append(_pearson(voxels[k][both], voxels[k + 1][both]))
    return max(0.0, float(np.median(correlations))) if correlations else 0.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def image_on_grid(voxels_kji: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A SimpleITK image (LPS) of a numpy [k, j, i] array on ``geometry``'s grid."""
    image = sitk.GetImageFromArray(voxels_kji)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def _level(stack: Stack, grid_mm: float, settings: AlignmentSettings) -> _Level:
    """Crop around the brain, smooth to ~``grid_mm`` isotropic resolution, resample onto the grid."""
    mask = brain_mask(stack)
    if not mask.any():
        raise UserInputError(f"the brain mask of stack {stack.name} is empty: give a mask that covers the brain")
    spacing_kji = np.asarray(stack.geometry.spacing, dtype=float)[::-1]
    box = _bounding_box(mask, settings.crop_margin_mm / spacing_kji)
    # Target blur: the slice profile or half the grid, whichever is wider; the slices already carry their
    # profile through-plane (numpy axis 0), the fine in-plane pixels next to nothing.
    target_sigma = max(0.5 * grid_mm, stack.thickness_mm * FWHM_TO_SIGMA)
    intrinsic = np.array([stack.thickness_mm * FWHM_TO_SIGMA, 0.0, 0.0])
    sigma_voxels = np.sqrt(np.maximum(target_sigma ** 2 - intrinsic ** 2, 0.0)) / spacing_kji
    voxels = ndimage.gaussian_filter(np.asarray(stack.voxels_kji, dtype=np.float32)[box], sigma_voxels,
                                     mode="nearest")
    dilated = ndimage.distance_transform_edt(~mask[box], sampling=spacing_kji) <= settings.mask_dilation_mm
    geometry = _cropped_geometry(stack.geometry, box)
    reference = _isotropic_reference(geometry, grid_mm)
    image = sitk.Resample(image_on_grid(voxels, geometry), reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    mask_image = sitk.Resample(image_on_grid(dilated.astype(np.uint8), geometry), reference, sitk.Transform(),
                               sitk.sitkNearestNeighbor, 0)
    return _Level(image=image, mask=mask_image)


def _bounding_box(mask: np.ndarray, margin_voxels: np.ndarray) -> tuple[slice, ...]:
    """Slices of the mask's bounding box grown by ``margin_voxels`` per numpy axis, within the array."""
    indices = np.argwhere(mask)
    low = np.maximum(indices.min(axis=0) - np.ceil(margin_voxels).astype(int), 0)
    high = np.minimum(indices.max(axis=0) + np.ceil(margin_voxels).astype(int) + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def _cropped_geometry(geometry: Geometry, box: tuple[slice, ...]) -> Geometry:
    """The grid of ``box`` (numpy [k, j, i] slices) of ``geometry``: same voxels, origin at its first one."""
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    size = (box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
    origin = geometry.index_to_physical(start_ijk)[0]
    return Geometry(size=size, spacing=geometry.spacing, origin=tuple(float(o) for o in origin),
                    direction=geometry.direction)


def _isotropic_reference(geometry: Geometry, grid_mm: float) -> sitk.Image:
    """An empty image of ``grid_mm`` voxels, in the grid's orientation, over the same extent."""
    extent_ijk = (np.asarray(geometry.size) - 1) * np.asarray(geometry.spacing)
    size = [int(np.floor(e / grid_mm)) + 1 for e in extent_ijk]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing((grid_mm,) * 3)
    reference.SetOrigin(geometry.origin)
    reference.SetDirection(geometry.direction)
    return reference


def _check_fields_of_view_overlap(moving: Stack, fixed: Stack) -> None:
    """One-line error when the stacks' fields of view (axis-aligned LPS boxes) do not meet at all."""
    low_m, high_m = _field_of_view_box(moving.geometry)
    low_f, high_f = _field_of_view_box(fixed.geometry)
    if np.any(high_m < low_f) or np.any(high_f < low_m):
        raise UserInputError(
            f"stacks {moving.name} and {fixed.name} do not overlap in space: give stacks of the same session "
            "(one scanner coordinate system)"
        )


def _field_of_view_box(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """LPS axis-aligned box (low, high corners, mm) around all voxels, half a voxel beyond the centres."""
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
    corners_ijk = corners * np.asarray(geometry.size) - 0.5
    points = geometry.index_to_physical(corners_ijk)
    return points.min(axis=0), points.max(axis=0)


def _mask_centroid(mask: sitk.Image) -> np.ndarray:
    """Physical (LPS mm) centroid of a mask image's voxels."""
    indices_kji = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0).mean(axis=0)
    return np.asarray(mask.TransformContinuousIndexToPhysicalPoint(indices_kji[::-1].tolist()))


def start_rotations(angles_deg: Sequence[float]) -> list[np.ndarray]:
    """No rotation, then each angle about each of 26 directions: an even sampling of turns up to max(angles)."""
    rotations = [np.eye(3)]
    for angle in angles_deg:
        for axis in np.concatenate([_AXES, -_AXES]):
            rotation = sitk.VersorTransform(tuple(axis / np.linalg.norm(axis)), float(np.deg2rad(angle)))
            rotations.append(np.asarray(rotation.GetMatrix()).reshape(3, 3))
    return rotations


def _initial_transforms(fixed_mask: sitk.Image, moving_mask: sitk.Image,
                        angles_deg: Sequence[float]) -> list[sitk.VersorRigid3DTransform]:
    """Fixed -> moving transforms that map the brains' centroids onto each other, one per start rotation."""
    fixed_centre = _mask_centroid(fixed_mask)
    moving_centre = _mask_centroid(moving_mask)
    transforms = []
    for rotation in start_rotations(angles_deg):
        transform = sitk.VersorRigid3DTransform()
        transform.SetCenter(fixed_centre.tolist())
        transform.SetMatrix(rotation.ravel().tolist())
        transform.SetTranslation((moving_centre - fixed_centre).tolist())
        transforms.append(transform)
    return transforms


def _registration(fixed: _Level, moving: _Level) -> sitk.ImageRegistrationMethod:
    """Correlation inside both dilated brain masks, every voxel of the fixed mask sampled (deterministic)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsCorrelation()
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(fixed.mask)
    method.SetMetricMovingMask(moving.mask)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _best(fixed: _Level, moving: _Level, transforms: list[sitk.Transform], count: int) -> list[sitk.Transform]:
    """The ``count`` transforms with the highest signed correlation (SimpleITK's metric is the *squared*
    correlation, blind to an inverted, wrong, match of the same contrast). Ties keep the given order."""
    scores = [_overlap_correlation(fixed, moving, transform) for transform in transforms]
    order = sorted(range(len(transforms)), key=lambda index: -scores[index])
    return [transforms[index] for index in order[:max(1, count)]]


def _coarse_search(fixed: _Level, moving: _Level, start: sitk.Transform, step_mm: float,
                   iterations: int) -> sitk.VersorRigid3DTransform:
    """Regular-step gradient descent from one start: big first steps (``step_mm``) that can leave a poor start."""
    transform, _ = _descend(fixed, moving, start, _Descent(step_mm, 0.005 * step_mm, 0.5, iterations))
    return transform


def _refine(fixed: _Level, moving: _Level, start: sitk.Transform,
            iterations: int) -> tuple[sitk.VersorRigid3DTransform, bool]:
    """Slow gradient descent from a near start: 1 mm first steps, shrinking gently (x0.8 at each turn back)
    down to 1 micrometre. Faster optimisers (L-BFGS-B, quicker shrinking) stopped 1-2 degrees short on
    real stacks. Returns (transform, converged before the iteration cap)."""
    return _descend(fixed, moving, start, _Descent(1.0, 1e-3, 0.8, iterations))


def _descend(fixed: _Level, moving: _Level, start: sitk.Transform,
             descent: _Descent) -> tuple[sitk.VersorRigid3DTransform, bool]:
    """Run one descent from ``start``; (transform, stopped before the iteration cap)."""
    method = _registration(fixed, moving)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=descent.step_mm, minStep=descent.min_step_mm,
                                                    numberOfIterations=descent.iterations,
                                                    relaxationFactor=descent.relaxation,
                                                    gradientMagnitudeTolerance=1e-10)
    method.SetOptimizerScalesFromPhysicalShift()
    transform = sitk.VersorRigid3DTransform(start)
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed.image, moving.image)
    return transform, "Maximum number of iterations" not in method.GetOptimizerStopConditionDescription()


def _overlap_correlation(fixed: _Level, moving: _Level, transform: sitk.Transform) -> float:
    """Pearson correlation of the two smoothed stacks where both dilated masks overlap (0 if no overlap)."""
    warped = sitk.GetArrayFromImage(sitk.Resample(moving.image, fixed.image, transform, sitk.sitkLinear, np.nan))
    warped_mask = sitk.GetArrayFromImage(sitk.Resample(moving.mask, fixed.mask, transform,
                                                       sitk.sitkNearestNeighbor, 0))
    overlap = (sitk.GetArrayViewFromImage(fixed.mask) > 0) & (warped_mask > 0) & np.isfinite(warped)
    if overlap.sum() < 100:
        return 0.0
    return _pearson(sitk.GetArrayViewFromImage(fixed.image)[overlap].astype(np.float64),
                    warped[overlap].astype(np.float64))


def _moving_to_fixed_matrix(transform: sitk.VersorRigid3DTransform) -> np.ndarray:
    """4x4 LPS matrix of the inverse of a fixed -> moving rigid transform (moving nominal -> fixed frame)."""
    rotation = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    offset = np.asarray(transform.GetTranslation()) + centre - rotation @ centre
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.T
    matrix[:3, 3] = -rotation.T @ offset
    return matrix
