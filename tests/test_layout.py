"""The layout docs/development.md's map describes: every import points down the layers, argparse
lives only in the command line, trainer/ knows nothing above it, no import circle, no module too
long to read.

Imports are read from the source (inside functions too), not by importing, so an import that a
function makes lazily cannot hide an arrow pointing up."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.helpers import ROOT

# search/'s layers, top first: a module may import its own package and any layer below its own.
LAYERS = (
    ("cli",),
    ("api",),
    ("launch", "results", "serve"),
    ("run",),
    ("study",),
    ("studyfile",),
    ("errors", "attrs", "locations", "url_secrets"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
MAX_LINES = 400
# The only imports allowed inside a function: optional dependencies, imported on use.
LAZY_IMPORTS = {
    "optuna_dashboard",
    "kaleido",
    "choreographer",
    "grpc",
    "sklearn",
}
# ... and torchvision in the module that checks model names: TrainConfig checks its model, and the
# commands that only read a study must load no torch (the default model is known without it).
# ... and search.api in the package's __init__, whose __getattr__ (PEP 562) imports the module of
# a name of the Python API when it is first used: `import search` runs before any `search.x`.
# ... and what trains (torch, seconds to import) in the functions that start training, once the
# study file and flags passed their checks: `hpsearch run typo.toml` is refused in a second; and
# in those that train or score one configuration, once their settings and paths did.
LAZY_IMPORTS_IN = {
    "trainer/model_names.py": {"torchvision"},
    "search/__init__.py": {"search.api"},
    "search/api/searching.py": {"search.launch", "search.run.joining", "trainer.device"},
    "search/api/training.py": {
        "search.results.evaluate",
        "trainer.checkpoint",
        "trainer.data",
        "trainer.device",
        "trainer.loop",
    },
    "search/cli/searching/workers.py": {"search.run.worker"},
    "search/cli/cluster/slurm.py": {"search.launch.slurm", "search.run.joining"},
}
SOURCES = sorted([*(ROOT / "search").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, ast.AST]]:
    """(module, node) for every import in the tree; `from pkg import name` counts pkg.name when that
    is a module of ours, and pkg itself when some name is defined there."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[
                    : len(module.split(".")) - node.level + (1 if is_package else 0)
                ]
                base = ".".join([*package, *([base] if base else [])])
            submodules = [
                f"{base}.{alias.name}" for alias in node.names if _is_ours(f"{base}.{alias.name}")
            ]
            found.extend((name, node) for name in submodules)
            if len(submodules) < len(node.names):  # names defined in base itself
                found.append((base, node))
    return found


def _is_ours(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache  # every test reads the same sources
def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SOURCES:
        module = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {name for name, _ in imported(tree, module, path.name == "__init__.py")}
        edges[module] = {
            name
            for name in targets
            if name.split(".")[0] in ("search", "trainer") and _is_ours(name) and name != module
        }
    return edges


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "search" and len(parts) > 1 else None


def test_every_import_in_search_points_down_the_layers() -> None:
    upward = []
    for module, targets in graph().items():
        if layer(module) not in RANK:
            continue
        for target in targets:
            if layer(target) is None or layer(target) == layer(module):
                continue
            if target.split(".")[0] == "search" and RANK[layer(target)] <= RANK[layer(module)]:
                upward.append(f"{module} -> {target}")
    assert upward == [], "imports that point up or sideways: " + "; ".join(sorted(upward))


def test_nothing_imports_the_command_line_but_the_entry_point() -> None:
    importers = sorted(
        module
        for module, targets in graph().items()
        if any(target.startswith("search.cli") for target in targets)
        and not module.startswith("search.cli")
        and module != "search.__main__"
    )
    assert importers == []


def test_trainer_imports_neither_optuna_nor_search() -> None:
    offenders = []
    for path in (ROOT / "trainer").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, node in imported(tree, module_name(path), path.name == "__init__.py"):
            if name.split(".")[0] in ("optuna", "search"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []


def test_argparse_only_in_the_command_line() -> None:
    users = [
        str(path.relative_to(ROOT))
        for path in SOURCES
        if any(
            name == "argparse"
            for name, _ in imported(
                ast.parse(path.read_text(encoding="utf-8")), module_name(path), False
            )
        )
        and "cli" not in path.relative_to(ROOT).parts
    ]
    assert users == []


def test_no_import_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            pytest.fail("import circle: " + " -> ".join([*trail[trail.index(module) :], module]))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_imports_inside_functions_are_only_for_optional_dependencies() -> None:
    lazy = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for name, node in imported(function, module_name(path), False):
                allowed = LAZY_IMPORTS | LAZY_IMPORTS_IN.get(str(path.relative_to(ROOT)), set())
                if not any(name == ok or name.startswith(f"{ok}.") for ok in allowed):
                    lazy.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} imports {name} inside a function"
                    )
    assert lazy == []


def test_only_the_command_line_imports_a_module_by_name() -> None:
    """`search.cli.common.runs_from` imports a command's handler module when the command runs, so
    that --help and the commands that read a study load no torch. Its modules are search.cli's
    own, whose imports the tests above read; an import by name anywhere else could hide one."""
    users = sorted(
        {
            str(path.relative_to(ROOT))
            for path in SOURCES
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and _called_name(node) in ("import_module", "__import__")
        }
    )
    assert users == ["search/cli/common.py"]


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def test_no_module_is_too_long_to_read() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in SOURCES
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"
