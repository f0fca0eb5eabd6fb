"""RRLSRN x2 in-plane super-resolution of brain MRI stacks: the Slicer-free core package.

Rooms (subpackages, see ``SUBPACKAGES``): ``imaging`` pure numerics, ``model`` the network and
its artifact, ``io`` files, ``masks`` the fetal brain mask, ``engine`` volume -> x2 volume,
``evaluation`` metrics and comparisons, ``training``, ``mrml`` the Slicer adapters, ``cli``
the command. At the top only this public API, ``errors`` and ``resources``.

The MRML entry points are resolved lazily (module ``__getattr__``), so ``import
RRLSRNSuperResLib`` stays cheap and imports neither ``slicer`` nor ``torch``: the CLI, the
tests and Slicer's generic module tests can import the package without those costs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_EXPORTS = {
    "superresolve": "engine.volume",
    "superresolve_volume_node": "mrml.volumes",
    "create_brain_segmentation": "mrml.segmentations",
}

SUBPACKAGES = (
    "imaging", "model", "io", "masks", "reconstruction", "engine", "pipeline", "evaluation", "training", "bids", "mrml",
    "cli",
)
"""The rooms of the Lib in dependency order: each imports only rooms before it (``Testing`` checks)."""

__all__ = sorted(_LAZY_EXPORTS)
PACKAGE = "rrlsrn-superres"


def package_version() -> str:
    """The installed package's version ("unknown" when run from a source tree, as inside Slicer)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY_EXPORTS[name]}", __name__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
