"""The suite's own structure: each fixture has one definition, and no test module imports another
(shared helpers live in tests/support/, shared fixtures in a conftest.py)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def _modules():
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_no_test_module_imports_another():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(TESTS)}: {name}" for name in names
                      if name.startswith("tests.") and (name.rsplit(".", 1)[-1].startswith("test_")
                                                        or name.endswith(".conftest"))]
    assert found == []


def test_each_fixture_is_defined_once():
    homes = defaultdict(list)
    for path, tree in _modules():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(_is_fixture(d) for d in node.decorator_list):
                homes[node.name].append(str(path.relative_to(TESTS)))
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}
