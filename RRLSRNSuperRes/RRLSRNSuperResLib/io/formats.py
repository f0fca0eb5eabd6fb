"""Output formats and the checks made before any work: a run never computes for minutes and then cannot write.

The format comes from ``--output-format`` or the file name's extension; ``dicom`` writes a
folder (a derived series). Checks: a known format whose extension fits, an existing folder we
may write into (probed with a real temporary file), and not one of the inputs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

from ..errors import UserInputError

EXTENSIONS = {"nifti": (".nii.gz", ".nii"), "nrrd": (".nrrd", ".nhdr"), "mha": (".mha", ".mhd")}
OUTPUT_FORMATS = (*EXTENSIONS, "dicom")
OUTPUT_TYPES = ("auto", "float32", "input")  # pixel types: see pipeline.stack.StackOptions


def infer_format(path: Path) -> Optional[str]:
    """The format named by the file's extension, or None."""
    name = path.name.lower()
    return next((fmt for fmt, extensions in EXTENSIONS.items() if name.endswith(extensions)), None)


def _probe_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: permissions, read-only mounts and full quotas show here.
    Its random name is bound before it exists, so a Ctrl-C in between cannot leave it (as in
    ``io.atomic_files``)."""
    probe = folder / f".rrlsrn-write-check-{uuid.uuid4().hex}"
    try:
        try:
            probe.touch()
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        raise UserInputError(f"cannot write into {folder} ({error.strerror}); choose a folder you may write to") \
            from error


def _check_place(output: Path, inputs: list[Path | str], clash: str) -> None:
    """An existing, writable parent folder, and not one of the inputs (``clash`` says what to do if it is)."""
    if not output.parent.resolve().is_dir():
        raise UserInputError(f"output folder {output.parent} does not exist; create it first")
    for given in inputs:
        if Path(given).exists() and output.resolve() == Path(given).resolve():
            raise UserInputError(f"output {output} is {clash} (the input is never modified)")
    _probe_writable(output.parent.resolve())


def check_output_path(output: Path | str, inputs: list[Path | str]) -> Path:
    """Refuse an output that would overwrite an input, or that lies in a missing or read-only folder."""
    output = Path(output)
    if output.is_dir():
        raise UserInputError(f"output {output} is a folder; give a file name such as {output / 'out.nii.gz'}")
    _check_place(output, inputs, "the input file; choose another name")
    return output


def check_volume_output(output: Path | str, inputs: list[Path | str], output_format: str | None = None) -> str:
    """Check where a volume will be written, before any work; returns its format.

    ``dicom`` needs a new or empty folder (a series is never mixed into other files) and
    pydicom; the other formats a file name with their extension.
    """
    output = Path(output)
    inferred = infer_format(output)
    if output_format is None:
        if inferred is None:
            raise UserInputError(
                f"cannot tell the format of {output.name!r}: end it in .nii.gz, .nii, .nrrd or .mha, "
                "or give --output-format dicom and a folder",
                in_slicer=f"cannot tell the format of {output.name!r}: end it in .nii.gz, .nii, .nrrd or .mha")
        output_format = inferred
    if output_format not in OUTPUT_FORMATS:
        raise UserInputError(f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}",
                             in_slicer=f"the output format must be one of {', '.join(OUTPUT_FORMATS)}, not "
                                       f"{output_format!r}")
    if output_format == "dicom":
        return _check_dicom_folder(output, inputs)
    if inferred != output_format:
        raise UserInputError(f"{output.name!r} does not end in {' or '.join(EXTENSIONS[output_format])}, "
                             f"as --output-format {output_format} needs",
                             in_slicer=f"{output.name!r} does not end in {' or '.join(EXTENSIONS[output_format])}, "
                                       f"as the {output_format} format needs")
    check_output_path(output, inputs)
    return output_format


def _check_dicom_folder(output: Path, inputs: list[Path | str]) -> str:
    from .dicom import require_pydicom

    require_pydicom()
    if infer_format(output) is not None:
        raise UserInputError(f"--output-format dicom writes a folder; {output.name!r} looks like a file name",
                             in_slicer=f"a DICOM series is written into a folder; {output.name!r} looks like a file "
                                       "name")
    _check_place(output, inputs, "the input; choose another folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserInputError(f"{output} exists and is not an empty folder; give a new folder for the DICOM series")
    return "dicom"
