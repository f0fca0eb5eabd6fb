"""Where the bundled files are: ``Resources/`` beside the module folder.

The same relative path holds in the source tree (``<root>/RRLSRNSuperRes/RRLSRNSuperResLib``
-> ``<root>/Resources``), for an editable install, and in a built Slicer extension, whose
resources are installed one level above the scripted modules' folder.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent.parent / "Resources"


def resource_path(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)


# The bundled RRLSRN model for each way the LR was made (the engine's consistency model). MRI
# stacks, and inputs whose k-space is no longer a measurement, get the model trained on k-space
# and bicubic LR alike; LR made by the paper's bicubic downsampling gets the model fine-tuned on
# that alone, as the paper's own model was trained.
_MRI_MODEL = "rrlsrn_x2"
_MODEL_FOR_CONSISTENCY = {"bicubic": "rrlsrn_x2_bicubic"}
_SRCNN_MODEL = "srcnn_x2"
# The second level of the x4 cascade for each consistency model: an x2 network trained on what the
# first level (the bundled x2 model above) leaves, not on degraded HR (training.cascade).
_MRI_SECOND_LEVEL = "rrlsrn_x4_level2"
_SECOND_LEVEL_FOR_CONSISTENCY = {"bicubic": "rrlsrn_x4_level2_bicubic"}
# Shipped for --model only, checked against its card like the others: fine-tuned on k-space LR
# alone, better there, not yet the default (docs/model-card.md says why).
_OPTIONAL_MODELS = ("rrlsrn_x2_kspace",)


def bundled_model_path(consistency: str = "kspace") -> Path:
    return resource_path("Models", _MODEL_FOR_CONSISTENCY.get(consistency, _MRI_MODEL) + ".pt")


def bundled_second_level_path(consistency: str = "kspace") -> Path:
    """The x4 cascade's bundled second level for ``consistency`` (its first level: ``bundled_model_path``)."""
    return resource_path("Models", _SECOND_LEVEL_FOR_CONSISTENCY.get(consistency, _MRI_SECOND_LEVEL) + ".pt")


def bundled_model_card_path(consistency: str = "kspace") -> Path:
    return bundled_model_path(consistency).with_suffix(".json")


def bundled_card_of(model_path: Path) -> Path | None:
    """The card of a bundled model file (RRLSRN, the x4 second levels, SRCNN, the optional ones), whose
    SHA256 it must match; None for other files."""
    names = (_MRI_MODEL, *_MODEL_FOR_CONSISTENCY.values(), _MRI_SECOND_LEVEL, *_SECOND_LEVEL_FOR_CONSISTENCY.values(),
             _SRCNN_MODEL, *_OPTIONAL_MODELS)
    bundled = {resource_path("Models", name + ".pt").resolve() for name in names}
    return model_path.with_suffix(".json") if model_path.resolve() in bundled else None


def bundled_srcnn_path() -> Path:
    """SRCNN, the learned baseline of ``rrlsrn report`` (not offered in the Slicer module)."""
    return resource_path("Models", _SRCNN_MODEL + ".pt")


def sample_volume_path() -> Path:
    return resource_path("SampleData", "sub-01_run-1_T2w.nii.gz")


def sample_mask_path() -> Path:
    return resource_path("SampleData", "sub-01_run-1_T2w_desc-brain_mask.nii.gz")


def reconstruction_sample_paths() -> tuple[list[Path], list[Path]]:
    """The six orthogonal stacks of one fetus (cropped around the head) and their brain masks, for
    ``rrlsrn reconstruct``'s example and Slicer's Sample Data."""
    folder = resource_path("SampleData", "sub-01-stacks")
    runs = range(1, 7)
    return ([folder / f"sub-01_run-{run}_T2w.nii.gz" for run in runs],
            [folder / f"sub-01_run-{run}_T2w_desc-brain_mask.nii.gz" for run in runs])
