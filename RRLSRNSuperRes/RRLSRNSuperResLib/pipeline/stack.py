"""One stack from a file to a file: check the outputs, read, super-resolve x2 or x4 (per component), write
atomically."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..engine.acquisition import superresolve_acquired
from ..engine.options import EngineOptions
from ..errors import Progress, UserInputError
from ..imaging.geometry import Geometry, upsampled_geometry
from ..imaging.intensity import cast_to, integer_type_holds
from ..io.formats import OUTPUT_TYPES, check_output_path, check_volume_output
from ..io.volumes import Volume, read_mask_on_grid, read_volume, write_volume
from ..masks.fetal_brain import MaskSettings, mask_volume_ml
from ..masks.transfer import mask_to_upsampled_grid


@dataclass(frozen=True)
class StackOptions:
    """The options that change the numbers (a BIDS rerun skips work only when they are the same).

    ``engine``: how the engine runs (``engine.options.EngineOptions``, the model included).
    ``output_type``: ``auto`` keeps an integer input's type (rounded) unless its top would clip
    (``imaging.intensity.integer_type_holds``), else float32; ``float32`` always; ``input`` the
    input's type, rounded and clipped. ``extract_brain`` zeroes the output outside the mask;
    ``replace_nonfinite`` replaces NaN/Inf input voxels by this value instead of refusing the file.
    """

    engine: EngineOptions = EngineOptions()
    output_type: str = "auto"
    extract_brain: bool = False
    replace_nonfinite: Optional[float] = None

    def record(self) -> dict:
        """Every option but the model (recorded by its identity), flat, as the BIDS sidecars store them."""
        engine = self.engine
        return {"plane": engine.plane, "acquisition": engine.acquisition, "device": engine.device,
                "batch_size": engine.batch_size, "output_type": self.output_type, "precision": engine.precision,
                "extract_brain": self.extract_brain, "replace_nonfinite": self.replace_nonfinite,
                "adapt_seconds": engine.adapt_seconds, "consistency": engine.consistency, "views": engine.views,
                "detail": engine.detail, "scale": engine.scale}


@dataclass
class StackResult:
    """What was written and how."""

    output: Path
    geometry: Geometry
    slice_axis: int
    device: str
    precision: str
    seconds: float
    detail_gain: float = 1.0  # kept share of the network's out-of-band detail (the first component's)
    written: list[str] = field(default_factory=list)  # "<path> (<pixel type>)" for every file or folder
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the inputs: worth the user's attention


def output_voxels(values: np.ndarray, input_dtype: np.dtype, output_type: str) -> tuple[np.ndarray, list[str]]:
    """The float32 result in the pixel type ``output_type`` asks for, and a note when ``auto`` cannot keep it."""
    if output_type == "float32" or not np.issubdtype(input_dtype, np.integer):
        return values, []
    if output_type == "input" or integer_type_holds(values, input_dtype):
        return cast_to(values, input_dtype), []
    return values, [f"kept float32: the result ({values.min():.6g} to {values.max():.6g}) does not fit "
                    f"the input's {np.dtype(input_dtype).name} without clipping (--output-type input clips it)"]


def _mask_warnings(mask: Path, mask_voxels: np.ndarray, volume: Volume, input_path: Path) -> list[str]:
    """An empty mask is refused; one smaller than a fetal brain is run, with a warning."""
    if not mask_voxels.any():
        raise UserInputError(f"mask {mask} is empty; make one with: rrlsrn mask {input_path} MASK")
    smallest = MaskSettings().brain_volume_ml[0]
    volume_ml = mask_volume_ml(mask_voxels, volume.geometry.spacing)
    if volume_ml < smallest:
        return [f"mask {mask} holds {volume_ml:.1f} mL, less than a fetal brain ({smallest:g} mL at 20 weeks): "
                "only its box is super-resolved, the rest is cubic spline"]
    return []


def _write(output: Path, output_format: str, voxels: np.ndarray, geometry: Geometry, volume: Volume,
           derivation: str, input_path: Path) -> str:
    if output_format != "dicom":
        write_volume(output, voxels, geometry, components=volume.components)
        return f"{output} ({voxels.dtype.name})"
    from ..io.dicom_derived import derived_source, write_derived_series
    from ..io.sidecars import read_sidecar

    sidecar = None if volume.dicom_series is not None else read_sidecar(Path(input_path))
    source = derived_source(volume.dicom_series, sidecar)
    count = write_derived_series(output, voxels, geometry, source, derivation)
    return f"{output}/ (DICOM series of {count} slices, {voxels.dtype.name} with rescale)"


def _plane_for(volume, plane: str, input_path: Path) -> tuple[str, list[str]]:
    """``plane``, or under ``auto`` the slice axis the file's header declares (with a note saying so)."""
    if plane != "auto" or volume.header_slice_axis is None:
        return plane, []
    axis = "ijk"[volume.header_slice_axis]
    source = "the DICOM slice normal" if volume.dicom_series is not None else "the NIfTI header (dim_info)"
    return axis, [f"slicing along {axis}, the slice axis {source} of {Path(input_path).name} declares"]


def superresolve_file(input_path: Path, output: Path, *, options: StackOptions = StackOptions(),
                      mask: Path | None = None, mask_output: Path | None = None, output_format: str | None = None,
                      series: str | None = None,
                      progress_for: Callable[[str], Optional[Progress]] = lambda label: None) -> StackResult:
    """Super-resolve ``input_path`` x2 (``options.engine.scale``: x4) in-plane into ``output`` (never the
    input), atomically.

    Every output is checked (format, folder, permission, not an input) before any work.
    ``mask`` (on the input grid) restricts the network to the brain box and sets the
    intensity range; ``mask_output`` also writes it on the output grid; ``options.extract_brain``
    zeroes the output outside it. ``output_format`` (default: from the extension) may be
    ``dicom``, a folder; ``series`` picks a series of a DICOM input folder. ``progress_for(label)``
    gives the progress callback of each run (one per component of a vector image).
    """
    if (options.extract_brain or mask_output) and not mask:
        raise UserInputError("--extract-brain and --mask-output need --mask (make one with: rrlsrn mask INPUT MASK)",
                             in_slicer="extracting the brain or writing its mask needs a brain mask")
    if options.output_type not in OUTPUT_TYPES:
        raise UserInputError(f"--output-type must be one of {', '.join(OUTPUT_TYPES)}",
                             in_slicer=f"the output type must be one of {', '.join(OUTPUT_TYPES)}")
    inputs = [input_path] + ([mask] if mask else [])
    output_format = check_volume_output(output, inputs, output_format)
    mask_output = check_output_path(mask_output, inputs + [output]) if mask_output else None
    volume = read_volume(input_path, replace_nonfinite=options.replace_nonfinite, series=series)
    if output_format == "dicom" and volume.components != 1:
        raise UserInputError(f"{input_path} has {volume.components} components per voxel; DICOM output takes "
                             "greyscale images only (write NIfTI, NRRD or MHA)")
    mask_voxels = read_mask_on_grid(mask, volume) if mask else None
    warnings = _mask_warnings(mask, mask_voxels, volume, input_path) if mask_voxels is not None else []
    plane, plane_notes = _plane_for(volume, options.engine.plane, input_path)
    engine = replace(options.engine, plane=plane)
    # Vector images (e.g. RGB, multi-echo) are super-resolved one component at a time.
    components = volume.voxels[..., None] if volume.components == 1 else volume.voxels
    results = []
    for component in range(components.shape[-1]):
        label = "superres" if volume.components == 1 else f"component {component + 1}/{volume.components}"
        results.append(superresolve_acquired(components[..., component], volume.geometry.spacing, engine,
                                             mask_kji=mask_voxels, progress=progress_for(label)))
    voxels = results[0].voxels if volume.components == 1 else np.stack([r.voxels for r in results], axis=-1)
    scale = engine.scale
    geometry = upsampled_geometry(volume.geometry, results[0].slice_axis, scale)
    written, notes = [], plane_notes + [note for r in results for note in r.notes]
    if mask_voxels is not None:
        mask_upsampled = mask_to_upsampled_grid(mask_voxels, results[0].slice_axis, scale)
        if options.extract_brain:
            voxels = voxels * (mask_upsampled if volume.components == 1
                               else mask_upsampled[..., None]).astype(voxels.dtype)
        if mask_output:
            write_volume(mask_output, mask_upsampled.astype(np.uint8), geometry)
            written.append(f"{mask_output} (uint8 brain mask on the x{scale} grid)")
    voxels, type_notes = output_voxels(voxels, volume.voxels.dtype, options.output_type)
    derivation = f"RRLSRN x{scale} in-plane super-resolution of {Path(input_path).name}, slicing along " \
                 f"{'ijk'[results[0].slice_axis]}"
    written.insert(0, _write(Path(output), output_format, voxels, geometry, volume, derivation, input_path))
    return StackResult(output=Path(output), geometry=geometry, slice_axis=results[0].slice_axis,
                       device=results[0].device, precision=results[0].precision,
                       seconds=sum(r.seconds for r in results), detail_gain=results[0].detail_gain,
                       written=written, notes=notes + type_notes,
                       warnings=warnings)
