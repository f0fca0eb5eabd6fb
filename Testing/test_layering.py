"""The Lib's layering, checked from the source: each room imports only what its ``__init__`` allows, no cycles.

Each subpackage's ``__init__.py`` docstring states ``May import:`` and ``Must not import:``.
Every import in the room's files (module level and inside functions, found with ``ast``) is
checked against those lines: another room or top-level Lib module must be named under ``May
import`` (in double backticks), and no package named under ``Must not import`` may be
imported at all. The import graph of the Lib's modules (lazy imports included) must have no
cycle: a cycle works only by the accident of import order.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parent.parent / "RRLSRNSuperRes" / "RRLSRNSuperResLib"
LIB = "RRLSRNSuperResLib"
TOP_LEVEL_MODULES = tuple(path.stem for path in LIB_DIR.glob("*.py") if path.stem != "__init__")
ROOMS = tuple(sorted(path.parent.name for path in LIB_DIR.glob("*/__init__.py")))
# Packages outside the Lib that a "Must not import" line may name without backticks.
THIRD_PARTY = ("torch", "slicer", "qt", "ctk", "vtk", "SimpleITK", "scipy", "numpy", "pydicom", "skimage")


def module_name(path: Path) -> str:
    """``RRLSRNSuperResLib.engine.volume`` for ``.../engine/volume.py``, the package for an ``__init__``."""
    parts = path.relative_to(LIB_DIR).with_suffix("").parts
    return ".".join((LIB, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def lib_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(LIB_DIR.rglob("*.py"))}


def imports_in(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, imported names)`` of every import in a Lib file, at any depth."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def rules_of(room: str) -> tuple[set[str], set[str]]:
    """(Lib rooms and top-level modules it may import, packages it must not import) from its docstring."""
    docstring = ast.get_docstring(ast.parse((LIB_DIR / room / "__init__.py").read_text())) or ""
    may = re.search(r"May import:(.*?)(?=Must not|\Z)", docstring, re.S)
    must_not = re.search(r"Must not (?:import|be imported)[^:]*:?(.*?)(?=\n\s*\n|\Z)", docstring, re.S)
    assert may and must_not, f"{room}/__init__.py: the docstring must state 'May import:' and 'Must not import:'"
    # Remarks in parentheses explain (``engine`` directly (``pipeline`` runs it)); they are no rule.
    may_text, must_not_text = (re.sub(r"\([^)]*\)", "", match.group(1)) for match in (may, must_not))
    lib_names = set(ROOMS) | set(TOP_LEVEL_MODULES)
    allowed = lib_names - {room} if "every other subpackage" in may_text else \
        {name for name in re.findall(r"``(\w+)``", may_text) if name in lib_names}
    words = set(re.findall(r"``(\w+)``", must_not_text)) | set(re.findall(r"\b(\w+)\b", must_not_text))
    forbidden = {word for word in words if word in ROOMS or word in THIRD_PARTY} - {room}
    return allowed, forbidden


def layering_violations(modules: dict[str, Path]) -> list[str]:
    violations = []
    for module, path in modules.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in ROOMS:
            continue
        room = parts[1]
        allowed, forbidden = rules_of(room)
        where = path.relative_to(LIB_DIR.parent)
        for line, imported, _ in imports_in(path):
            words = imported.split(".")
            target = words[1] if words[0] == LIB and len(words) > 1 else words[0]
            if imported == LIB:  # the public API's lazy names (``package_version``): imports nothing eagerly
                continue
            if words[0] == LIB and target != room and (target not in allowed or target in forbidden):
                violations.append(f"{where}:{line}: imports {imported} ({room} may import only {sorted(allowed)})")
            elif words[0] != LIB and target in forbidden:
                violations.append(f"{where}:{line}: imports {imported}, which {room}/__init__.py forbids")
    return violations


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Lib module -> the Lib modules it imports (a ``from package import name`` of a submodule counts)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, imported, names in imports_in(path):
            if not imported.startswith(LIB):
                continue
            submodules = {f"{imported}.{name}" for name in names if f"{imported}.{name}" in modules}
            targets |= submodules or ({imported} if imported in modules else set())
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle ``[a, b, ..., a]`` of the directed graph, or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_every_room_imports_only_what_its_init_allows():
    violations = layering_violations(lib_modules())
    assert not violations, "layering violations (see each room's __init__.py):\n" + "\n".join(violations)


def test_the_lib_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph(lib_modules()))
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_a_forbidden_import_and_a_cycle():
    """The checkers themselves: a made-up violation and a made-up cycle are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    allowed, forbidden = rules_of("imaging")
    assert "cli" not in allowed and {"torch"}.isdisjoint(forbidden)
    allowed, forbidden = rules_of("masks")
    assert "imaging" in allowed and {"torch", "engine", "io", "cli"} <= forbidden
