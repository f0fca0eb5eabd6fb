"""Thick-slice stacks with known motion, simulated from a 3D volume: the ground truth of the evaluation.

The acquisition model is this module's own and shares no code with the reconstruction's operator (no
inverse crime): slice k images the anatomy at ``T_k @ x`` for each nominal point ``x`` of the slice
(x_anatomy = T_k @ x_nominal, LPS mm; the truth frame is the volume's own physical frame), integrated
along the slice normal with a Gaussian profile (FWHM = thickness, ``profile_samples`` samples across
+-1.5 FWHM), sampled in-plane on a grid ``OVERSAMPLE`` times finer than the stack's pixels by cubic
B-spline interpolation of the volume, and brought to the stack's matrix by k-space truncation
(``imaging.degrade.fourier_resample``: the scanner acquires the central k-space). Then noise, Gaussian
or Rician, with SD = ``noise_fraction`` x the brain's bright-tissue level (``imaging.intensity``'s 99th
percentile inside the brain mask).

Stacks are orthogonal relative to the volume's own axes (axial: slices along the volume's k axis,
coronal: along j, sagittal: along i, then again), each optionally tilted by ``obliquity_deg`` about a
random axis, and cover the brain mask's bounding box plus ``margin_mm``; each grid is shifted by a random
fraction of its voxel, so that no stack's pixels coincide with the volume's voxels (as in real scans).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..imaging.geometry import Geometry
from .motion import MOTION_LEVELS, MotionSettings, draw_motion, rigid_about
from .stacks import Stack

ORIENTATIONS = ("axial", "coronal", "sagittal")
OVERSAMPLE = 2  # fine in-plane samples per stack pixel and axis, before k-space truncation
PROFILE_HALF_WIDTH_FWHM = 1.5
NOISE_KINDS = ("gaussian", "rician")


@dataclass(frozen=True)
class SimulationSettings:
    """Stack count, resolution (factors of the volume's mean spacing), noise, motion, randomness."""

    stacks: int = 3
    in_plane_factor: float = 2.0
    slice_factor: float = 4.0
    thickness_factor: float | None = None  # slice profile FWHM / volume spacing; None: = slice_factor
    noise_fraction: float = 0.02
    noise_kind: str = "gaussian"
    motion: MotionSettings = field(default_factory=lambda: MOTION_LEVELS["moderate"])
    obliquity_deg: float = 0.0
    interleave: int = 2  # 1: sequential slice order
    profile_samples: int = 11
    margin_mm: float = 8.0
    grid_offset: bool = True  # shift each stack's grid by a random fraction of its voxel (no grid coincidence)
    seed: int = 0


@dataclass(frozen=True)
class SampledVolume:
    """A volume ready for accurate sampling: cubic B-spline coefficients (numpy KJI) on its LPS grid."""

    coefficients_kji: np.ndarray
    geometry: Geometry

    @classmethod
    def of(cls, voxels_kji: np.ndarray, geometry: Geometry) -> SampledVolume:
        from scipy import ndimage

        voxels = np.asarray(voxels_kji, dtype=np.float64)
        return cls(ndimage.spline_filter(voxels, order=3, mode="grid-constant"), geometry)

    def at(self, points_lps: np.ndarray) -> np.ndarray:
        """Cubic B-spline values at physical points (N x 3, LPS mm); 0 outside the volume."""
        from scipy import ndimage

        matrix = self.geometry.direction_matrix * np.asarray(self.geometry.spacing)
        ijk = np.linalg.solve(matrix, (points_lps - np.asarray(self.geometry.origin)).T)
        return ndimage.map_coordinates(self.coefficients_kji, ijk[::-1], order=3, mode="grid-constant",
                                       prefilter=False)


@dataclass(frozen=True)
class SimulatedStack:
    """A stack (header = nominal positions, without motion), its true poses and acquisition order."""

    stack: Stack
    transforms: np.ndarray  # K x 4 x 4, x_anatomy (truth frame) = T @ x_nominal
    acquisition_order: np.ndarray  # slice indices in time order
    orientation: str


def stack_axes(direction: np.ndarray, index: int) -> np.ndarray:
    """3x3, columns the stack's IJK axes: slices along the volume's k (axial), j (coronal), i (sagittal).

    Each is right-handed when the volume's direction is (i x j = k).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    choices = (
        np.column_stack([d[:, 0], d[:, 1], d[:, 2]]),
        np.column_stack([d[:, 0], d[:, 2], -d[:, 1]]),
        np.column_stack([d[:, 1], d[:, 2], d[:, 0]]),
    )
    return choices[index % len(choices)]


def tilted(axes: np.ndarray, obliquity_deg: float, rng: np.random.Generator) -> np.ndarray:
    """``axes`` rotated by ``obliquity_deg`` about a random axis (unchanged at 0 degrees)."""
    if obliquity_deg == 0:
        return axes
    axis = rng.normal(size=3)
    rotation = rigid_about(axis / np.linalg.norm(axis) * obliquity_deg, np.zeros(3), np.zeros(3))[:3, :3]
    return rotation @ axes


def brain_box_corners(mask_kji: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The 8 physical corners (LPS mm) of the mask's voxel bounding box (voxel centres)."""
    kji = np.argwhere(mask_kji)
    low, high = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    corners = np.array([[(low, high)[b][a] for a, b in enumerate(bits)]
                        for bits in np.ndindex(2, 2, 2)], dtype=float)
    return geometry.index_to_physical(corners)


def stack_geometry(axes: np.ndarray, corners: np.ndarray, spacing: tuple[float, float, float],
                   margin_mm: float, offset_voxels: np.ndarray | None = None) -> Geometry:
    """The grid with these axes and spacing covering ``corners`` plus ``margin_mm`` (even in-plane size),
    shifted by ``offset_voxels`` (fractions of a voxel along each axis) from the corners' centre."""
    offset = np.zeros(3) if offset_voxels is None else np.asarray(offset_voxels)
    centre = corners.mean(axis=0) + axes @ (offset * np.asarray(spacing))
    extent = np.ptp((corners - centre) @ axes, axis=0) + 2 * margin_mm
    size = np.ceil(extent / np.asarray(spacing)).astype(int) + 1
    size[:2] += size[:2] % 2
    origin = centre - axes @ ((size - 1) / 2.0 * np.asarray(spacing))
    return Geometry(size=tuple(int(s) for s in size), spacing=tuple(float(s) for s in spacing),
                    origin=tuple(float(o) for o in origin), direction=tuple(float(v) for v in axes.reshape(-1)))


def profile(thickness_mm: float, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (mm along the slice normal) and weights (sum 1) of the Gaussian slice profile."""
    sigma = thickness_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    offsets = np.linspace(-PROFILE_HALF_WIDTH_FWHM, PROFILE_HALF_WIDTH_FWHM, samples) * thickness_mm
    weights = np.exp(-0.5 * (offsets / sigma) ** 2) if samples > 1 else np.ones(1)
    return offsets, weights / weights.sum()


def fine_slice_points(geometry: Geometry, slice_index: int) -> np.ndarray:
    """Physical points (H*m x W*m x 3, nominal) of slice ``slice_index`` on the fine in-plane grid.

    Stack pixel ``j`` sits at fine sample ``(j + 1/2) m - 1/2`` (``m = OVERSAMPLE``): the sample
    positions ``imaging.degrade.fourier_resample`` assumes for a crop over the same field of view.
    """
    width, height = geometry.size[0], geometry.size[1]
    i = (np.arange(width * OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5
    j = (np.arange(height * OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5
    jj, ii = np.meshgrid(j, i, indexing="ij")
    ijk = np.stack([ii, jj, np.full_like(ii, float(slice_index))], axis=-1).reshape(-1, 3)
    return geometry.index_to_physical(ijk).reshape(height * OVERSAMPLE, width * OVERSAMPLE, 3)


def acquire(volume: SampledVolume, geometry: Geometry, transforms: np.ndarray, thickness_mm: float,
            profile_samples: int = 11) -> np.ndarray:
    """Noise-free slices (numpy KJI, float32) of ``volume`` on ``geometry`` through poses ``transforms``."""
    from ..imaging.degrade import fourier_resample_slices

    offsets, weights = profile(thickness_mm, profile_samples)
    normal = geometry.direction_matrix[:, 2]
    width, height, count = geometry.size
    fine = np.zeros((count, height * OVERSAMPLE, width * OVERSAMPLE))
    for k in range(count):
        nominal = fine_slice_points(geometry, k).reshape(-1, 3)
        for offset, weight in zip(offsets, weights):
            points = (nominal + offset * normal) @ transforms[k][:3, :3].T + transforms[k][:3, 3]
            fine[k] += weight * volume.at(points).reshape(fine.shape[1:])
    return fourier_resample_slices(fine, (height, width))


def mask_through_poses(mask: SampledVolume, geometry: Geometry, transforms: np.ndarray) -> np.ndarray:
    """The brain mask each slice saw (bool KJI): the volume's mask at the pixel centres through the poses."""
    width, height, count = geometry.size
    jj, ii = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.zeros((count, height, width), dtype=bool)
    for k in range(count):
        ijk = np.stack([ii, jj, np.full_like(ii, k)], axis=-1).reshape(-1, 3)
        points = geometry.index_to_physical(ijk) @ transforms[k][:3, :3].T + transforms[k][:3, 3]
        out[k] = mask.at(points).reshape(height, width) > 0.5
    return out


def add_noise(slices: np.ndarray, sd: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (``x + n``) or Rician (magnitude of ``x + n1 + i n2``) noise of SD ``sd``, float32."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, not {kind!r}")
    real = slices + rng.normal(scale=sd, size=slices.shape)
    if kind == "rician":
        real = np.hypot(real, rng.normal(scale=sd, size=slices.shape))
    return real.astype(np.float32)


def volume_arrays(image, mask=None) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Voxels (float64 KJI), brain mask (bool KJI: ``mask`` > 0.5, else the Otsu foreground) and geometry
    of SimpleITK images (LPS)."""
    import SimpleITK as sitk

    from ..imaging.intensity import foreground_threshold

    voxels = sitk.GetArrayFromImage(image).astype(np.float64)
    if voxels.ndim != 3:
        raise ValueError(f"a 3D scalar volume is needed, not an array of shape {voxels.shape}")
    brain = sitk.GetArrayFromImage(mask) > 0.5 if mask is not None else voxels > foreground_threshold(voxels)
    if brain.shape != voxels.shape or not brain.any():
        raise ValueError("the brain mask is empty or not on the volume's grid")
    geometry = Geometry(size=tuple(image.GetSize()), spacing=tuple(image.GetSpacing()),
                        origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()))
    return voxels, brain, geometry


def simulate_stacks(image, mask=None, settings: SimulationSettings = SimulationSettings()) -> list[SimulatedStack]:
    """``settings.stacks`` motion-corrupted thick-slice stacks of a SimpleITK volume; deterministic by seed."""
    return simulate_from_arrays(*volume_arrays(image, mask), settings)


def simulate_from_arrays(voxels: np.ndarray, brain: np.ndarray, geometry: Geometry,
                         settings: SimulationSettings = SimulationSettings()) -> list[SimulatedStack]:
    """:func:`simulate_stacks` of voxels (KJI), a non-empty brain mask (bool KJI) and their LPS geometry."""
    from ..imaging.intensity import robust_scale

    rng = np.random.default_rng(settings.seed)
    volume = SampledVolume.of(voxels, geometry)
    brain_volume = SampledVolume.of(brain.astype(np.float64), geometry)
    corners = brain_box_corners(brain, geometry)
    centre = geometry.index_to_physical(np.argwhere(brain).mean(axis=0)[::-1])[0]
    base = float(np.mean(geometry.spacing))
    spacing = (settings.in_plane_factor * base, settings.in_plane_factor * base, settings.slice_factor * base)
    thickness = (settings.thickness_factor or settings.slice_factor) * base
    noise_sd = settings.noise_fraction * robust_scale(voxels, brain).hi
    simulated = []
    for index in range(settings.stacks):
        axes = tilted(stack_axes(geometry.direction_matrix, index), settings.obliquity_deg, rng)
        offset = rng.uniform(-0.5, 0.5, size=3) if settings.grid_offset else np.zeros(3)
        grid = stack_geometry(axes, corners, spacing, settings.margin_mm, offset)
        transforms, order = draw_motion(grid.size[2], settings.motion, centre, settings.interleave, rng)
        slices = add_noise(acquire(volume, grid, transforms, thickness, settings.profile_samples), noise_sd,
                           settings.noise_kind, rng)
        orientation = ORIENTATIONS[index % len(ORIENTATIONS)]
        stack = Stack(voxels_kji=slices, geometry=grid, mask_kji=mask_through_poses(brain_volume, grid, transforms),
                      thickness_mm=thickness, name=f"simulated-{index + 1}-{orientation}")
        simulated.append(SimulatedStack(stack, transforms, order, orientation))
    return simulated
