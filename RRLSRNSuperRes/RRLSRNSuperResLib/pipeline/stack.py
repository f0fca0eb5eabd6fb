"""One stack from a file to a file: read, check, super-resolve (per component), write atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..engine.volume import Progress, superresolve
from ..errors import UserInputError
from ..imaging.geometry import Geometry, upsampled_geometry
from ..io.volumes import check_output_path, read_mask_on_grid, read_volume, write_volume
from ..masks.transfer import mask_to_x2_grid


@dataclass(frozen=True)
class StackOptions:
    """The options that change the numbers (a BIDS rerun skips work only when they are the same)."""

    plane: str = "auto"
    device: str = "auto"
    batch_size: Optional[int] = None
    keep_input_type: bool = False
    extract_brain: bool = False
    replace_nonfinite: Optional[float] = None


@dataclass
class StackResult:
    """What was written and how."""

    output: Path
    geometry: Geometry
    slice_axis: int
    device: str
    seconds: float
    dtype: np.dtype
    mask_output: Optional[Path] = None
    notes: list[str] = field(default_factory=list)


def superresolve_file(input_path: Path, output: Path, *, model: Path | None = None,
                      options: StackOptions = StackOptions(), mask: Path | None = None,
                      mask_output: Path | None = None,
                      progress_for: Callable[[str], Optional[Progress]] = lambda label: None) -> StackResult:
    """Super-resolve ``input_path`` x2 in-plane into ``output`` (never the input), atomically.

    ``mask`` (on the input grid) restricts the network to the brain box and sets the
    intensity range; ``mask_output`` also writes it on the x2 grid; ``options.extract_brain``
    zeroes the output outside it. ``progress_for(label)`` gives the progress callback of each
    run (one per component of a vector image). Outputs are checked before any work.
    """
    if (options.extract_brain or mask_output) and not mask:
        raise UserInputError("--extract-brain and --mask-output need --mask (make one with: rrlsrn mask INPUT MASK)")
    if options.batch_size is not None and options.batch_size < 1:
        raise UserInputError("--batch must be at least 1")
    inputs = [input_path] + ([mask] if mask else [])
    output = check_output_path(output, inputs)
    mask_output = check_output_path(mask_output, inputs + [output]) if mask_output else None
    volume = read_volume(input_path, replace_nonfinite=options.replace_nonfinite)
    mask_voxels = read_mask_on_grid(mask, volume) if mask else None
    # Vector images (e.g. RGB, multi-echo) are super-resolved one component at a time.
    components = volume.voxels[..., None] if volume.components == 1 else volume.voxels
    results = []
    for component in range(components.shape[-1]):
        label = "superres" if volume.components == 1 else f"component {component + 1}/{volume.components}"
        results.append(superresolve(
            components[..., component], volume.geometry.spacing, plane=options.plane, model=model,
            device=options.device, batch_size=options.batch_size, mask_kji=mask_voxels,
            progress=progress_for(label), output_dtype=volume.voxels.dtype if options.keep_input_type else None))
    voxels = results[0].voxels if volume.components == 1 else np.stack([r.voxels for r in results], axis=-1)
    geometry = upsampled_geometry(volume.geometry, results[0].slice_axis)
    if mask_voxels is not None:
        mask_x2 = mask_to_x2_grid(mask_voxels, results[0].slice_axis)
        if options.extract_brain:
            voxels = voxels * (mask_x2 if volume.components == 1 else mask_x2[..., None]).astype(voxels.dtype)
        if mask_output:
            write_volume(mask_output, mask_x2.astype(np.uint8), geometry)
    write_volume(output, voxels, geometry, components=volume.components)
    return StackResult(output=output, geometry=geometry, slice_axis=results[0].slice_axis, device=results[0].device,
                       seconds=sum(r.seconds for r in results), dtype=voxels.dtype, mask_output=mask_output,
                       notes=[note for r in results for note in r.notes])
