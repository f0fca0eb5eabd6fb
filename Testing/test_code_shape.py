"""The Lib's functions stay readable: none over 60 lines, none with more than 8 parameters.

A longer function is split into named steps; more parameters travel as a dataclass (e.g.
``engine.options.EngineOptions``). Dataclass constructors are generated, so they are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parent.parent / "RRLSRNSuperRes" / "RRLSRNSuperResLib"
MAX_LINES = 60
MAX_PARAMETERS = 8  # ``self`` and ``cls`` included, ``*args`` and ``**kwargs`` count one each


def functions() -> list[tuple[str, ast.FunctionDef]]:
    """``(file:line name, node)`` of every function and method in the Lib."""
    found = []
    for path in sorted(LIB_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(LIB_DIR.parent)}:{node.lineno} {node.name}", node))
    return found


def parameter_count(node: ast.FunctionDef) -> int:
    arguments = node.args
    return (len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
            + (arguments.vararg is not None) + (arguments.kwarg is not None))


def test_no_function_is_over_60_lines():
    """Counted from the ``def`` line (decorators excluded) to the last line of the body, docstring included."""
    long = [f"{where}: {node.end_lineno - node.lineno + 1} lines" for where, node in functions()
            if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines (split them into steps):\n" + "\n".join(long)


def test_no_function_takes_more_than_8_parameters():
    many = [f"{where}: {parameter_count(node)} parameters" for where, node in functions()
            if parameter_count(node) > MAX_PARAMETERS]
    assert not many, f"functions with over {MAX_PARAMETERS} parameters (pass a dataclass):\n" + "\n".join(many)
