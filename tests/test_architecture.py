"""The structure the code promises (docs/architecture.md): one home per rule, checked on every run.

import-linter (``make lint``) holds the layers between packages; these tests hold what it cannot see:
cycles through imports inside functions, SQL outside the catalog, module sizes, and entry/'s isolation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "churn_core"
ENTRY = ROOT / "entry"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|UNIQUE)|ALTER\s+TABLE|PRAGMA|"
                 r"BEGIN|COMMIT|ROLLBACK)\b")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_graph() -> dict[str, set[str]]:
    """churn_core's import graph, imports inside functions included; ``from pkg import sub`` points at ``sub``."""
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _entry_graph() -> dict[str, set[str]]:
    """entry/'s modules import each other by bare name (the container puts the folder on sys.path)."""
    names = {p.stem for p in ENTRY.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in ENTRY.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                deps.add(node.module or "")
        graph[path.stem] = {d for d in deps if d in names and d != path.stem}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_churn_core_has_no_import_cycle_even_through_imports_inside_functions():
    assert _cycles(_core_graph()) == []


def test_entry_has_no_import_cycle_even_through_imports_inside_functions():
    assert _cycles(_entry_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_entry_imports_nothing_of_the_project():
    project = {"churn_core", "app", "pages", "tests", "bench"}
    for path in ENTRY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & project, f"{path.name} imports {names}"


def _strings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield node.lineno, text


def test_sql_is_written_only_in_the_catalog():
    offenders = []
    for folder in ("churn_core", "app", "pages"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(CORE / "catalog"):
                continue
            tree = ast.parse(path.read_text())
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and n.body and isinstance(n.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if id(node) in docstrings:
                    continue
                for line, text in _strings(node) if isinstance(node, (ast.Constant, ast.JoinedStr)) else ():
                    if SQL.match(text):
                        offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]}")
    assert sorted(set(offenders)) == []


def test_no_module_over_600_lines_and_platform_is_a_facade():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines())
             for folder in ("churn_core", "entry", "app", "pages") for p in (ROOT / folder).rglob("*.py")}
    assert {str(p): n for p, n in sizes.items() if n > 600} == {}
    assert sizes[Path("churn_core/platform.py")] <= 400


def test_pages_and_app_reach_the_product_only_through_platform():
    reach = re.compile(r"\bp\.(catalog|backend|store)\b")
    deep = re.compile(r"^\s*(from|import) churn_core\.(catalog|backends|storage|processes)\b", re.M)
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "app").glob("*.py")]:
        text = path.read_text()
        assert not reach.search(text), f"{path.name} uses the platform's insides"
        assert not deep.search(text), f"{path.name} imports below the services"
