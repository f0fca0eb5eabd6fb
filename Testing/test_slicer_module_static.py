"""Static checks of the Slicer module, which cannot run here: .ui vs code, CMake vs files, imports.

Slicer only reports these mistakes at run time (a missing widget, an unbound parameter) or at
configure time (``slicerMacroBuildScriptedModule`` stops on a listed file that does not
exist), so they are checked from the source text.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "RRLSRNSuperRes"
MODULE_FILE = MODULE_DIR / "RRLSRNSuperRes.py"
UI_FILE = ROOT / "Resources" / "UI" / "RRLSRNSuperRes.ui"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
LIB_DIR = MODULE_DIR / "RRLSRNSuperResLib"
BUNDLED_RESOURCE_DIRS = ("Icons", "UI", "Models", "SampleData")

# What the module file may import at module level: Slicer's own, light modules. torch, the
# Lib and the scientific stack must be imported inside functions (generic tests, no torch).
ALLOWED_TOP_LEVEL_IMPORTS = {
    "__future__", "enum", "importlib", "logging", "os", "sys", "pathlib", "typing", "unittest",
    "numpy", "qt", "ctk", "vtk", "slicer",
}
WIDGETS_FOR_TYPES = {
    "vtkMRMLScalarVolumeNode": "qMRMLNodeComboBox",
    "vtkMRMLSegmentationNode": "qMRMLNodeComboBox",
    "bool": "QCheckBox",
    "int": "QSpinBox",
    "float": "QDoubleSpinBox",
}


@cache
def module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(), filename=str(MODULE_FILE))


@cache
def ui_widgets() -> dict[str, ElementTree.Element]:
    return {widget.get("name"): widget for widget in ElementTree.parse(UI_FILE).iter("widget")}


def ui_parameter_bindings() -> dict[str, str]:
    """SlicerParameterName -> class of the widget that carries it."""
    bindings = {}
    for widget in ui_widgets().values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bindings[prop.findtext("string")] = widget.get("class")
    return bindings


def parameter_node_fields() -> dict[str, str]:
    """Field name -> annotation source of the ``@parameterNodeWrapper`` class."""
    for node in module_tree().body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id: ast.unparse(item.annotation)
                    for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in the module file")


def enum_class_names() -> set[str]:
    return {node.name for node in module_tree().body if isinstance(node, ast.ClassDef)
            and any(ast.unparse(base) == "enum.Enum" for base in node.bases)}


def cmake_list(name: str) -> list[str]:
    text = MODULE_CMAKE.read_text()
    match = re.search(rf"set\({name}\s+(.*?)\)", text, re.S)
    assert match, f"{name} not set in {MODULE_CMAKE}"
    entries = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return [entry.replace("${MODULE_NAME}", "RRLSRNSuperRes") for entry in entries if entry]


def test_every_ui_attribute_the_code_uses_is_a_widget_in_the_ui_file():
    used = {node.attr for node in ast.walk(module_tree())
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used, "the widget uses no self.ui.<name>: the parser missed them"
    assert used - set(ui_widgets()) == set()


def test_every_slicer_parameter_name_in_the_ui_is_a_parameter_node_field():
    assert set(ui_parameter_bindings()) - set(parameter_node_fields()) == set()


def test_bound_widgets_can_represent_their_field_types():
    """Mirror of parameterNodeWrapper's GUI connectors: enums need QComboBox, and so on."""
    fields, enums = parameter_node_fields(), enum_class_names()
    for name, widget_class in ui_parameter_bindings().items():
        annotation = fields[name]
        base = "enum" if annotation in enums else re.sub(r"Annotated\[(\w+),.*", r"\1", annotation)
        expected = "QComboBox" if base == "enum" else WIDGETS_FOR_TYPES[base]
        assert widget_class == expected, f"{name}: {annotation} needs a {expected}, the .ui has a {widget_class}"


def test_the_mask_section_is_laid_out_for_the_brain_mask_helper():
    widgets = ui_widgets()
    for name, widget_class in [("maskCollapsibleButton", "ctkCollapsibleButton"), ("createMaskButton", "QPushButton"),
                               ("refineMaskButton", "QPushButton"), ("restrictToBrainCheckBox", "QCheckBox")]:
        assert widgets[name].get("class") == widget_class


def test_input_selector_lists_only_plain_scalar_volumes():
    selector = ui_widgets()["inputSelector"]
    properties = {prop.get("name"): prop for prop in selector.findall("property")}
    assert [s.text for s in properties["nodeTypes"].iter("string")] == ["vtkMRMLScalarVolumeNode"]
    assert properties["showChildNodeTypes"].findtext("bool") == "false"  # hides label maps and vector volumes


def test_cmake_lists_the_module_file_and_every_lib_file_and_nothing_else():
    listed = cmake_list("MODULE_PYTHON_SCRIPTS")
    on_disk = {"RRLSRNSuperRes.py"} | {path.relative_to(MODULE_DIR).as_posix() for path in LIB_DIR.rglob("*.py")}
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert {"not listed": sorted(on_disk - set(listed)), "listed, not on disk": sorted(set(listed) - on_disk)} == {
        "not listed": [], "listed, not on disk": []}


def test_cmake_resources_exist_and_cover_the_bundled_files():
    listed = cmake_list("MODULE_PYTHON_RESOURCES")
    missing = [entry for entry in listed if not (MODULE_DIR / entry).is_file()]
    assert missing == []
    bundled = {f"../Resources/{path.relative_to(ROOT / 'Resources').as_posix()}"
               for folder in BUNDLED_RESOURCE_DIRS for path in (ROOT / "Resources" / folder).rglob("*")
               if path.is_file() and not path.name.startswith(".")}
    assert bundled - set(listed) == set()


def test_resource_paths_named_in_the_module_exist():
    constants = {node.targets[0].id: node.value.value for node in module_tree().body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.targets[0], ast.Name)}
    calls = [node for node in ast.walk(module_tree())
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "resourcePath"]
    calls = [call for call in calls if call.args != [] and not (  # the resourcePath(filename) overrides pass through
        len(call.args) == 1 and isinstance(call.args[0], ast.Name) and call.args[0].id == "filename")]
    assert len(calls) >= 4
    for call in calls:
        parts = [arg.value if isinstance(arg, ast.Constant) else constants[arg.id] for arg in call.args]
        assert (ROOT / "Resources").joinpath(*parts).is_file(), parts


def test_module_level_imports_are_light():
    """Generic tests load the module with --no-main-window and maybe no torch: import nothing heavy."""
    imported = set()
    for node in module_tree().body:
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):
            pytest.fail("conditional module-level code: keep imports unconditional and light")
    assert imported - ALLOWED_TOP_LEVEL_IMPORTS == set()


def test_module_file_passes_ruff():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(MODULE_FILE)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# What Slicer's Python can import: its SuperBuild's packages, Slicer's own modules, torch (through
# the PyTorch extension, installed on demand before first use) and this Lib.
# pydicom: Slicer ships it for its DICOM module (SuperBuild/External_python-dicom-requirements.cmake); the Lib
# reaches it only on DICOM paths (a DICOM folder read, a DICOM series written), through io.dicom.require_pydicom.
SLICER_PYTHON_PACKAGES = {"numpy", "scipy", "SimpleITK", "vtk", "slicer", "qt", "ctk", "torch", "pydicom",
                          "RRLSRNSuperResLib"}
SLICER_MODULES_THE_MODULE_FILE_USES = {"SampleData", "PyTorchUtils"}


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module name, imported names) of every import statement in a file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("RRLSRNSuperResLib", *path.relative_to(LIB_DIR).parent.parts)) if LIB_DIR in path.parents \
        else ""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((module, [alias.name for alias in node.names]))
    return found


def lazy_exports() -> dict[str, str]:
    """``RRLSRNSuperResLib.<name>`` -> the submodule its ``__getattr__`` imports it from."""
    tree = ast.parse((LIB_DIR / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_LAZY_EXPORTS":
            return {key.value: f"RRLSRNSuperResLib.{value.value}" for key, value in zip(node.value.keys,
                                                                                       node.value.values)}
    raise AssertionError("no _LAZY_EXPORTS in the Lib's __init__.py")


def lib_file(module: str) -> Path | None:
    relative = Path(*module.split(".")[1:])
    for candidate in (LIB_DIR / relative / "__init__.py", (LIB_DIR / relative).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def slicer_facing_files() -> list[Path]:
    """The module file and every Lib file it reaches through imports (lazy exports followed)."""
    todo, seen = [MODULE_FILE], []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for module, names in imports_of(path):
            if module.split(".")[0] != "RRLSRNSuperResLib":
                continue
            targets = [module] + [f"{module}.{name}" for name in names] + \
                [lazy_exports()[name] for name in names if module == "RRLSRNSuperResLib" and name in lazy_exports()]
            todo += [file for file in map(lib_file, targets) if file is not None]
    return seen


def test_slicer_facing_code_imports_only_what_slicers_python_has():
    files = slicer_facing_files()
    assert len(files) >= 6, [f.name for f in files]
    assert LIB_DIR / "mrml" / "volumes.py" in files and LIB_DIR / "masks" / "fetal_brain.py" in files, \
        "the walk missed the MRML side"
    allowed = set(sys.stdlib_module_names) | SLICER_PYTHON_PACKAGES
    foreign = {f"{path.relative_to(ROOT)}: {module}" for path in files for module, _ in imports_of(path)
               if module.split(".")[0] not in allowed | (SLICER_MODULES_THE_MODULE_FILE_USES if path == MODULE_FILE
                                                         else set())}
    assert foreign == set()


def test_torch_is_guarded_in_the_module_file():
    """The module file never imports torch itself; it checks with find_spec and installs through PyTorchUtils."""
    assert not [module for module, _ in imports_of(MODULE_FILE) if module.split(".")[0] == "torch"]
    source = MODULE_FILE.read_text()
    assert 'find_spec("torch")' in source and "installTorch(askConfirmation=True)" in source


def test_extension_metadata_points_at_files_that_exist():
    text = (ROOT / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        value = re.search(rf'set\({key} "([^"]*)"\)', text).group(1)
        assert "RRLSRNSuperRes/RRLSRNSuperRes" not in value, f"{key} names a placeholder repository"
        assert value.startswith("https://") or (ROOT / value).is_file(), f"{key}: {value}"


def lib_rooms() -> tuple[str, ...]:
    tree = ast.parse((LIB_DIR / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SUBPACKAGES":
            return tuple(element.value for element in node.value.elts)
    raise AssertionError("no SUBPACKAGES in the Lib's __init__.py")


def room_of(path: Path) -> str:
    """The subpackage a Lib file belongs to, or its module name for the few top-level modules."""
    parts = path.relative_to(LIB_DIR).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def room_imports() -> dict[str, set[str]]:
    """Room -> the other rooms (and top-level Lib modules) and third-party packages its files import."""
    imports: dict[str, set[str]] = {}
    for path in LIB_DIR.rglob("*.py"):
        room = room_of(path)
        for module, _ in imports_of(path):
            parts = module.split(".")
            target = parts[1] if parts[0] == "RRLSRNSuperResLib" and len(parts) > 1 else parts[0]
            if target != room:
                imports.setdefault(room, set()).add(target)
    return imports


def test_the_lib_is_a_handful_of_top_level_modules_and_rooms_that_say_their_job():
    top_level = sorted(path.name for path in LIB_DIR.glob("*.py"))
    assert len(top_level) <= 5, top_level
    rooms = lib_rooms()
    assert sorted(rooms) == sorted(path.parent.name for path in LIB_DIR.glob("*/__init__.py"))
    assert len(rooms) >= 4  # each room's "May import" / "Must not import" lines are enforced by test_layering.py


def test_rooms_import_only_rooms_before_them_so_the_graph_has_no_cycle():
    rooms = lib_rooms()
    imports = room_imports()
    for position, room in enumerate(rooms):
        later = set(rooms[position:]) & imports.get(room, set())
        assert later == set(), f"{room} imports {sorted(later)}, which come after it in SUBPACKAGES"
    for top_level in ("errors", "resources", "__init__"):
        assert set(rooms) & imports.get(top_level, set()) == set(), f"{top_level} must not import a room"


def test_imaging_is_the_foundation_cli_the_roof_and_mrml_the_only_slicer_door():
    imports = room_imports()
    assert set(lib_rooms()) & imports.get("imaging", set()) == set()
    assert not [room for room, targets in imports.items() if "cli" in targets]
    assert sorted(room for room, targets in imports.items() if targets & {"slicer", "qt", "ctk"}) == ["mrml"]
    assert not [module for module, _ in imports_of(MODULE_FILE) if module.startswith("RRLSRNSuperResLib.cli")]


def flag_texts(node: ast.AST) -> list[str]:
    """The string pieces of an expression that name a command-line flag ("--device cpu")."""
    return [piece.value for piece in ast.walk(node)
            if isinstance(piece, ast.Constant) and isinstance(piece.value, str) and re.search(r"--[a-z]", piece.value)]


def test_errors_that_reach_slicer_name_no_command_line_flags():
    """Issue 26 item 6: a message naming a flag also carries its Slicer wording (``in_slicer=``), without flags."""
    worded = []
    for path in slicer_facing_files():
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "UserInputError" and call.args):
                continue
            if flag_texts(call.args[0]):
                in_slicer = [keyword.value for keyword in call.keywords if keyword.arg == "in_slicer"]
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                assert in_slicer, f"{where} names a flag and has no in_slicer wording"
                assert not flag_texts(in_slicer[0]), f"{where}: the Slicer wording names a flag"
                worded.append(where)
    assert len(worded) >= 5, worded  # devices (2), precision, fetal brain mask (2)
