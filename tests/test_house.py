"""The shape of the package: imports point one way, modules and functions stay short enough to read.

The import graph counts every import of the package's own modules, at module level and inside
functions alike (a function-level import hides a cycle from Python, not from a reader); imports
under `if TYPE_CHECKING:` never run and do not count.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kaggle_flow"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package's own modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if not base.startswith("kaggle_flow"):
        return []
    found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return found if len(found) == len(node.names) else [*found, base]


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under `if TYPE_CHECKING:`."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            ids.update(id(n) for n in ast.walk(node))
    return ids


def _imports(path: Path) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every runtime import statement of a module and whether it sits inside a function."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_blocks(tree)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    return [(n, id(n) in inside) for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph[name] = {t for node, _ in _imports(path) for t in _target(node) if t != name}
    return graph


def test_no_import_cycle() -> None:
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))
    assert set(order) == set(MODULES)


def test_the_graph_sees_function_level_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle closed by an import inside a function is still a cycle."""
    module = tmp_path / "m.py"
    module.write_text("from kaggle_flow import errors\n\ndef f():\n    from kaggle_flow.config import RunConfig\n")
    targets = [t for node, _ in _imports(module) for t in _target(node)]
    assert targets == ["kaggle_flow.errors", "kaggle_flow.config"]
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()


def test_lazy_imports_of_the_package_say_why() -> None:
    """A function-level import of the package's own module keeps a heavy library (paddle, sklearn,
    matplotlib, albumentations) out of a command that does not need it, and says so on its line.
    The CLI is exempt: every command imports its library inside itself so `flow --help` stays fast
    (cli/__init__.py says so once)."""
    silent = []
    for name, path in MODULES.items():
        if name.startswith("kaggle_flow.cli"):
            continue
        lines = path.read_text().splitlines()
        for node, in_function in _imports(path):
            if in_function and _target(node) and "#" not in lines[node.lineno - 1]:
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not silent, "lazy imports without a reason:\n" + "\n".join(silent)


def test_modules_and_functions_stay_short() -> None:
    long = []
    for path in MODULES.values():
        source = path.read_text()
        if (n := len(source.splitlines())) > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {n} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


LIGHT = ["kaggle_flow.cli", "kaggle_flow.explore.eda", "kaggle_flow.explore.split", "kaggle_flow.explore.balance",
         "kaggle_flow.table.importer", "kaggle_flow.data.augment", "kaggle_flow.runs", "kaggle_flow.submit.ledger",
         "kaggle_flow.submit.score", "kaggle_flow.submit.submission", "kaggle_flow.submit.review", "kaggle_flow.exclusion",
         "kaggle_flow.submit.blend"]


def test_commands_that_do_not_train_never_load_paddle() -> None:
    """`flow --help`, eda, split, balance, import, augment, runs, submissions, score and review stay quick to start."""
    import subprocess
    import sys

    code = f"import sys\nfor m in {LIGHT!r}: __import__(m)\nprint(sorted(n for n in ('paddle', 'sklearn') if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
