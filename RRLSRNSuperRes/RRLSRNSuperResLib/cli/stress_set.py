"""``rrlsrn stress-set DATA_ROOT OUT_DIR``: a stress set of smooth, high-SNR fetal stacks, built from a data folder.

Smooth, high-SNR, well-resolved fetal stacks (``evaluation.stress_set``), written as NIfTI
HR stacks with their brain masks, so ``rrlsrn evaluate --degradation kspace`` scores them as
it scores any HR volume. The command prints that evaluate command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from ..errors import UserInputError


class Recipe(NamedTuple):
    """One stack: source and mask (paths under DATA_ROOT; no mask: voxels > 0, the source is
    skull-stripped), slice axis (IJK), HR in-plane size, denoising sigma (in-plane pixels; 0:
    none), zero-fill interpolation to this pixel size (mm; 0: none) and Rician noise (fraction
    of the brain median; 0: none)."""

    name: str
    source: str
    mask: Optional[str]
    through_ijk: int
    size: int
    denoise: float = 0.0
    pixel_mm: float = 0.0
    noise: float = 0.0


_ATLAS = "fetal/spina-bifida-atlas/fetal_SB_atlas_GA{}.nii.gz"
_ATLAS_MASK = "fetal/spina-bifida-atlas/fetal_SB_atlas_GA{}-mask.nii.gz"
_MIAL = "fetal/mialsrtk-sub-01/sub-01_run-{}_T2w{}.nii.gz"
RECIPES = (
    Recipe("dbclab-0009-k-142", "fetal/dbclab/sub-0009_ses-V01_T2w.nii.gz", None, 2, 142),
    Recipe("dbclab-0010-k-142", "fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", None, 2, 142),
    Recipe("dbclab-0010-k-140", "fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", None, 2, 140),
    Recipe("dbclab-0010-k-136", "fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", None, 2, 136),
    Recipe("dbclab-0010-j-142", "fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", None, 1, 142),
    Recipe("template-k-142", "fetal/dbclab/Template-Fetal-T2w.nii.gz", None, 2, 142),
    Recipe("atlas-GA25-k-142", _ATLAS.format("25_notoperated"), _ATLAS_MASK.format("25_notoperated"), 2, 142),
    Recipe("atlas-GA31-i-142", _ATLAS.format("31_operated"), _ATLAS_MASK.format("31_operated"), 0, 142),
    Recipe("mial-run-1-denoised", _MIAL.format(1, ""), _MIAL.format(1, "_desc-brain_mask"), 2, 142, denoise=0.8),
    Recipe("mial-run-4-denoised", _MIAL.format(4, ""), _MIAL.format(4, "_desc-brain_mask"), 2, 142, denoise=0.8),
    *(Recipe(f"mial-run-{run}-{label}", _MIAL.format(run, ""), _MIAL.format(run, "_desc-brain_mask"), 2, 142,
             denoise=sigma, pixel_mm=pixel_mm)
      for run in (1, 3, 5)
      for label, sigma, pixel_mm in (("078", 0.0, 0.78), ("078-denoised", 0.8, 0.78), ("denoised16", 1.6, 0.0))),
    Recipe("dbclab-0010-k-142-noise2", "fetal/dbclab/sub-0010_ses-V01_T2w.nii.gz", None, 2, 142, noise=0.02),
    Recipe("atlas-GA31-i-142-noise4", _ATLAS.format("31_operated"), _ATLAS_MASK.format("31_operated"), 0, 142,
           noise=0.04),
    Recipe("mial-run-1-078-noise3", _MIAL.format(1, ""), _MIAL.format(1, "_desc-brain_mask"), 2, 142,
           pixel_mm=0.78, noise=0.03),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT",
                        help="the data folder (holding fetal/dbclab, fetal/spina-bifida-atlas, "
                             "fetal/mialsrtk-sub-01)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="folder to write NAME.nii.gz and NAME_mask.nii.gz for each of the "
                             f"{len(RECIPES)} stacks: 3D fetal volumes cut into 0.8 mm x 3.2 mm thick-slice stacks "
                             "(HR 142 wide, so the k-space LR is 71 wide; 140 and 136 crops of one of them), "
                             "MIALSRTK stacks denoised and/or zero-fill interpolated to 0.78 mm pixels, and "
                             "Rician-noise variants")


def build(recipe: Recipe, data_root: Path):
    """The recipe's ``StressStack``, read from ``data_root``."""
    from ..evaluation import stress_set
    from ..io.volumes import read_mask_on_grid, read_volume

    volume = read_volume(data_root / recipe.source)
    mask = (read_mask_on_grid(data_root / recipe.mask, volume) if recipe.mask else volume.voxels > 0)
    voxels, spacing = volume.voxels.astype(np.float32), volume.geometry.spacing
    if recipe.denoise:
        voxels = stress_set.denoise_in_plane(voxels, recipe.through_ijk, recipe.denoise)
    if recipe.pixel_mm:
        voxels, mask, spacing = stress_set.interpolate_in_plane(voxels, mask, spacing, recipe.through_ijk,
                                                                recipe.pixel_mm)
    if max(spacing) / min(spacing) < 1.5:  # a 3D volume: cut thick slices (the mask with the same profile)
        voxels, thick_spacing = stress_set.thick_slices(voxels, spacing, recipe.through_ijk)
        mask = stress_set.thick_slices(mask.astype(np.float32), spacing, recipe.through_ijk)[0] >= 0.5
        spacing = thick_spacing
    voxels, mask = stress_set.crop_around_brain(voxels, mask, recipe.through_ijk, recipe.size)
    if recipe.noise:
        voxels = stress_set.add_rician_noise(voxels, mask, recipe.noise)
    return stress_set.StressStack(recipe.name, voxels, tuple(spacing), mask)


def run(args: argparse.Namespace) -> int:
    from ..imaging.geometry import Geometry
    from ..io.volumes import write_volume

    if not (args.data_root / "fetal").is_dir():
        raise UserInputError(f"{args.data_root} has no fetal/ folder; give the data folder")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    images, masks = [], []
    for recipe in RECIPES:
        stack = build(recipe, args.data_root)
        geometry = Geometry(size=stack.voxels.shape[::-1], spacing=stack.spacing_ijk, origin=(0.0, 0.0, 0.0),
                            direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        images.append(args.out_dir / f"{recipe.name}.nii.gz")
        masks.append(args.out_dir / f"{recipe.name}_mask.nii.gz")
        write_volume(images[-1], stack.voxels, geometry)
        write_volume(masks[-1], stack.mask.astype(np.uint8), geometry)
        print(f"wrote {images[-1]} ({' x '.join(map(str, geometry.size))}, "
              f"{' x '.join(f'{s:.3g}' for s in stack.spacing_ijk)} mm)")
    print("score it with:\nrrlsrn evaluate " + " ".join(map(str, images)) + " "
          + " ".join(f"--mask {m}" for m in masks) + " --degradation kspace")
    return 0
