"""Small synthetic phantoms and an independent thick-slice simulation for the reconstruction tests.

The simulation uses SimpleITK resampling of a finely sampled Gaussian slice profile and a 3 x 3
box in-plane, nothing from ``reconstruction``'s operator, so tests are not an inverse crime.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from RRLSRNSuperResLib.reconstruction.stacks import Stack, stack_from_image
from scipy.spatial.transform import Rotation

BLOBS = (  # centre (mm from the volume centre, along the volume's own axes), sigma (mm), amplitude
    ((0.0, 0.0, 0.0), 9.0, 0.6),
    ((9.0, -6.0, 5.0), 2.5, 1.4),  # the off-centre bright blob the geometry test tracks
    ((-8.0, 6.0, -4.0), 4.0, 0.8),
    ((-3.0, -9.0, 7.0), 3.0, 0.7),
    ((5.0, 8.0, -8.0), 3.5, 0.9),
    ((-9.0, -2.0, 9.0), 2.5, 0.6),
)
BRIGHT_BLOB = 1


def oblique_direction(angles_deg=(25.0, -20.0, 0.0)) -> np.ndarray:
    return Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()


def textured_blobs(count: int = 40, seed: int = 0) -> tuple:
    """``BLOBS`` plus small random blobs inside a 13 mm ball: asymmetric detail that pins every slice's pose."""
    rng = np.random.default_rng(seed)
    extra = []
    while len(extra) < count:
        centre = rng.uniform(-13.0, 13.0, 3)
        if np.linalg.norm(centre) < 13.0:
            extra.append((tuple(centre), rng.uniform(1.2, 2.5), rng.uniform(-0.4, 0.5)))
    return BLOBS + tuple(extra)


def phantom(size: int = 40, spacing: float = 1.0, direction=None, origin=(31.0, -17.5, 12.25),
            blobs: tuple = BLOBS) -> sitk.Image:
    """Gaussian blobs in a volume of ``size``^3 voxels with an oblique direction and a non-zero origin."""
    direction = oblique_direction() if direction is None else direction
    axis = (np.arange(size) - (size - 1) / 2.0) * spacing
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    volume = np.zeros((size,) * 3)
    for (cx, cy, cz), sigma, amplitude in blobs:
        volume += amplitude * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))
    image = sitk.GetImageFromArray((100.0 * np.maximum(volume, 0.0)).astype(np.float32))
    image.SetSpacing((spacing,) * 3)
    image.SetDirection(tuple(np.asarray(direction).ravel()))
    image.SetOrigin(tuple(origin))
    return image


def blob_centre_mm(image: sitk.Image, blob: int = BRIGHT_BLOB) -> np.ndarray:
    """LPS position of a blob's centre."""
    centre_index = (np.asarray(image.GetSize()) - 1) / 2.0 + np.asarray(BLOBS[blob][0]) / np.asarray(image.GetSpacing())
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(tuple(centre_index)))


def stack_geometry(truth: sitk.Image, axes: np.ndarray, pixel_mm: float, slice_mm: float, field_mm: float):
    """Size, spacing, origin, direction of a stack centred on the truth, IJK axes = columns of ``axes``."""
    centre = np.asarray(truth.TransformContinuousIndexToPhysicalPoint(tuple((np.asarray(truth.GetSize()) - 1) / 2.0)))
    spacing = np.array([pixel_mm, pixel_mm, slice_mm])
    size = np.ceil(field_mm / spacing).astype(int)
    origin = centre - axes @ (spacing * (size - 1) / 2.0)
    return tuple(int(s) for s in size), tuple(spacing), tuple(origin), tuple(np.asarray(axes).ravel())


def simulate_stack(truth: sitk.Image, geometry, thickness_mm: float, slice_transforms=None,
                   noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Thick slices (numpy KJI) of ``truth``: Gaussian profile (FWHM = thickness) sampled every 0.25 mm,
    3 x 3 box in-plane; slice k sees the anatomy at ``slice_transforms[k] @ x`` (4x4 LPS)."""
    size, spacing, origin, direction = geometry
    direction_matrix = np.asarray(direction).reshape(3, 3)
    sigma = thickness_mm / 2.3548
    offsets = np.arange(-3 * sigma, 3 * sigma + 1e-9, 0.25)
    profile = np.exp(-0.5 * (offsets / sigma) ** 2)
    profile /= profile.sum()
    slices = []
    for k in range(size[2]):
        fine = sitk.Image([size[0] * 3, size[1] * 3, offsets.size], sitk.sitkFloat32)
        fine.SetSpacing((spacing[0] / 3, spacing[1] / 3, 0.25))
        first = np.array([-spacing[0] / 3, -spacing[1] / 3, k * spacing[2] + offsets[0]])
        fine.SetOrigin(tuple(np.asarray(origin) + direction_matrix @ first))
        fine.SetDirection(direction)
        transform = sitk.AffineTransform(3)
        if slice_transforms is not None:
            transform.SetMatrix(tuple(slice_transforms[k][:3, :3].ravel()))
            transform.SetTranslation(tuple(slice_transforms[k][:3, 3]))
        sampled = sitk.GetArrayFromImage(sitk.Resample(truth, fine, transform, sitk.sitkLinear, 0.0))
        thick = np.tensordot(profile, sampled, axes=(0, 0))
        slices.append(thick.reshape(size[1], 3, size[0], 3).mean(axis=(1, 3)))
    voxels = np.stack(slices)
    rng = np.random.default_rng(seed)
    return (voxels + noise * voxels.max() * rng.standard_normal(voxels.shape)).astype(np.float32)


def make_stack(truth: sitk.Image, geometry, thickness_mm: float, name: str, slice_transforms=None,
               noise: float = 0.0, seed: int = 0) -> Stack:
    """A simulated :class:`Stack` with a mask of where the truth's smoothed content is present."""
    voxels = simulate_stack(truth, geometry, thickness_mm, slice_transforms, noise, seed)
    size, spacing, origin, direction = geometry
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    mask_reference = sitk.Resample(truth, image, sitk.Transform(), sitk.sitkLinear, 0.0)
    mask = sitk.GetArrayFromImage(mask_reference) > 5.0
    return stack_from_image(image, mask, thickness_mm, name)


def orthogonal_axes(truth_direction: np.ndarray) -> list[np.ndarray]:
    """Three stack orientations (axial, coronal, sagittal) in the truth's own frame."""
    permutations = ([0, 1, 2], [0, 2, 1], [1, 2, 0])
    return [np.asarray(truth_direction)[:, order] for order in permutations]
