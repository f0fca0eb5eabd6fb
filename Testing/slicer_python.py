"""Make this interpreter's imports look like Slicer's Python: numpy, scipy, SimpleITK, vtk, slicer, torch.

Slicer's SuperBuild ships numpy, scipy, SimpleITK and vtk; torch comes through the PyTorch
extension (with what torch itself requires). Any other installed distribution, scikit-image,
Pillow and matplotlib among them, is made unimportable, so code that would need it in Slicer
fails here too.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import re
import sys

SLICER_DISTRIBUTIONS = ("numpy", "scipy", "SimpleITK", "vtk", "slicer-core", "torch", "rrlsrn-superres")
OWN_REQUIREMENTS_OF = ("torch",)  # the PyTorch extension installs torch with its requirements


def _requirement_closure(names: tuple[str, ...]) -> set[str]:
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return seen


def blocked_top_level_names() -> set[str]:
    """Importable top-level names that come from distributions Slicer's Python does not have."""
    allowed = {name.lower() for name in SLICER_DISTRIBUTIONS} | _requirement_closure(OWN_REQUIREMENTS_OF)
    blocked = set()
    for top_level, distributions in importlib.metadata.packages_distributions().items():
        if not any(d.lower().replace("_", "-") in allowed for d in distributions):
            blocked.add(top_level)
    return blocked - {"_distutils_hack", "pip", "setuptools", "pkg_resources"}


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (Slicer's Python does not ship it)",
                                      name=fullname)
        return None


def restrict_to_slicer_python() -> set[str]:
    """Refuse every import Slicer's Python could not satisfy; returns the refused names."""
    names = blocked_top_level_names()
    loaded = [name for name in sys.modules if name.split(".")[0] in names]
    assert not loaded, f"already imported, cannot be blocked: {loaded}"
    sys.meta_path.insert(0, _Refuse(names))
    sys.modules["skimage"] = None  # the name the issue was about, refused even if the finder were bypassed
    return names
