"""The layout holds: our modules import each other without a cycle, in the direction
docs/architecture.md gives (broker -> workers -> nothing of ours; switchboard -> workers.sdk),
and that document's map of the folders names what is in the tree, all of it.

The import graph is read from the source (every `import`, at module level or inside a
function: an import deferred to call time is a dependency all the same), so a cycle is
found even where Python would not trip on it at import time. Imports under
`if TYPE_CHECKING:` are left out: they name types for annotations and never run."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("broker", "workers", "switchboard")
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"


def our_modules() -> dict[str, Path]:
    """Every module of our packages by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = our_modules()


def _ours(name: str) -> str | None:
    """The module of ours that importing `name` loads (`a.b.C` -> `a.b`), if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The modules of ours that `module` imports, by name. `from package import name` counts
    as importing the submodule when `name` is one, else the package."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_ours(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                target = f"{base}.{alias.name}"
                hit = target if target in MODULES else _ours(base)
                if hit is not None:
                    found.add(hit)
    found.discard(module)
    return found


def _run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of `tree` but what is under `if TYPE_CHECKING:` (its `else` counts)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield child
                yield from _run_time_nodes(child)
            continue
        yield node
        yield from _run_time_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


GRAPH = {module: imports_of(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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


def test_our_modules_import_each_other_without_a_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_an_import_for_annotations_only_is_no_dependency() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    found = {
        alias.name
        for node in _run_time_nodes(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert found == {"b", "c"}


def _room(module: str) -> str:
    return module.split(".", 1)[0]


def _path_of(module: str) -> str:
    """`workers.sdk` -> `workers/sdk/`, `broker.app` -> `broker/app.py` (as the map spells them)."""
    path = MODULES[module].relative_to(ROOT)
    return f"{path.parent}/" if path.name == "__init__.py" else str(path)


# --------------------------------------------------------------------------- the map


def map_section() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index("\n## Map of the folders\n")
    return text[start : text.index("\n## ", start + 1)]


def _tables(section: str) -> Iterator[list[list[str]]]:
    """Each markdown table's body rows, as cells."""
    rows: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
                rows.append([cell.strip() for cell in cells])
        elif rows:
            yield rows[1:]  # without the header
            rows = []


def _paths(cell: str) -> list[str]:
    return re.findall(r"`([a-z_]+/[a-z_/.]*)`", cell)


def import_rules() -> dict[str, list[str]]:
    """The map's first table: room -> the path prefixes it may import (`*`: anything)."""
    rooms = next(_tables(map_section()))
    return {
        room: ["*"] if cells[1] == "anything" else _paths(cells[1])
        for cells in rooms
        for room in _paths(cells[0])
    }


def test_the_map_gives_the_import_direction_the_issue_set() -> None:
    rules = import_rules()
    assert rules["broker/"] == ["workers/"]
    assert rules["workers/"] == ["workers/"]  # nothing outside itself
    assert rules["switchboard/"] == ["workers/sdk/"]
    assert rules["tests/"] == rules["benchmarks/"] == ["*"]


def test_imports_go_the_way_the_map_says() -> None:
    rules = import_rules()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _room(target) != _room(module)
        and not _path_of(target).startswith(tuple(rules[f"{_room(module)}/"]))
    )
    assert not wrong


def test_every_path_the_map_names_exists() -> None:
    named = _paths(map_section())
    assert named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing


def test_the_map_names_every_module_and_folder_of_broker_and_workers() -> None:
    named = set(_paths(map_section()))
    present = {
        f"{child.relative_to(ROOT)}/" if child.is_dir() else str(child.relative_to(ROOT))
        for package in ("broker", "workers")
        for child in (ROOT / package).iterdir()
        if (child.is_dir() and child.name != "__pycache__")
        or (child.suffix == ".py" and child.name != "__init__.py")
    }
    assert sorted(present - named) == []


def test_the_readme_links_the_map() -> None:
    assert "(docs/architecture.md#map-of-the-folders)" in README.read_text(encoding="utf-8")


def test_nothing_of_ours_imports_the_tests_or_the_benchmarks() -> None:
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not [n for n in names if _room(n) in ("tests", "benchmarks")], module


def test_every_module_imports() -> None:
    """What the source says, Python agrees with: each module loads (a cycle that bites at
    import time, or a module a move left behind, fails here by name)."""
    for module in MODULES:
        if module.endswith("__main__") or module.endswith(".migrations.env"):
            continue  # runs its command (or Alembic's migration) when imported
        importlib.import_module(module)
