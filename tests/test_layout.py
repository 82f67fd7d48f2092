"""Package layout (issue 9): every module imports, subpackages are layered, stages have a CLI.

The layering, lowest first (a static AST scan of every ``import activepam.x`` / ``from
activepam.x import ...``, function bodies included):

* ``core`` imports no other subpackage;
* ``demo`` and ``detection`` import only ``core``;
* ``search`` imports ``core`` and ``detection`` (query by audio embeds clips with BirdNET);
* ``sampling`` imports ``core`` and ``search`` (similarity scores);
* ``plots`` (shared renderers) imports only ``core``; every stage may use it;
* ``rounds``, ``simulation`` and ``datasets`` may import the layers above, but not each other;
  ``review`` also imports ``rounds``: every exception is listed in :data:`EXCEPTIONS` with
  its reason
  (an entry that is no longer used fails too, so the list stays true).

The top-level modules (``activepam.cli``, ``__main__``) may import anything.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import activepam

SRC = Path(activepam.__file__).resolve().parent

LOWER = frozenset({"core", "plots", "demo", "detection", "search", "sampling"})

#: subpackage -> the subpackages it may import
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    # shared renderers (spectrogram, evaluation panels, ...): each stage draws its own figures
    # with them, so plots sits right above core and imports nothing else
    "plots": frozenset({"core"}),
    "demo": frozenset({"core", "plots"}),
    "detection": frozenset({"core", "plots"}),
    "search": frozenset({"core", "plots", "detection"}),
    "sampling": frozenset({"core", "plots", "search"}),
    **{pkg: LOWER for pkg in ("rounds", "simulation", "datasets")},
    # the review page serves an exported round (rounds.export's manifest and options)
    "review": LOWER | {"rounds"},
}

#: documented exceptions to :data:`ALLOWED`: (importer, imported) -> reason
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("simulation", "datasets"): "simulation/loop.py costs recording units with "
    "datasets.union_seconds",
}

#: stage subpackages, each with a ``cli.py`` holding its ``register(subparsers)``
STAGES: tuple[str, ...] = (
    "demo",
    "detection",
    "sampling",
    "rounds",
    "simulation",
    "search",
    "review",
    "datasets",
)
#: stages whose ``cli.py`` is not written yet (issue 9 follow-ups); the lead removes an entry
#: when its package is done (the strict xfail then turns into a failure as a reminder)
CLI_PENDING: frozenset[str] = frozenset()


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages([str(SRC)], "activepam.")]
    return sorted(n for n in names if n != "activepam.__main__")  # __main__ runs the CLI


def _subpackages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())


def imports_of(path: Path) -> list[tuple[int, str, bool]]:
    """``(line, module, eager)`` of every absolute ``activepam.*`` import in a file; ``eager``
    = at module level (run on import), not inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lazy.update(id(n) for n in ast.walk(node) if n is not node)
    out: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.extend(
            (node.lineno, n, id(node) not in lazy) for n in names if n.split(".")[0] == "activepam"
        )
    return out


def package_edges(eager_only: bool = False) -> dict[tuple[str, str], list[str]]:
    """Cross-subpackage imports: ``(importer, imported) -> ["file:line module", ...]``."""
    pkgs = set(_subpackages())
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2:
            continue  # activepam/cli.py, __main__.py: the dispatcher imports every stage
        src = rel.parts[0]
        for line, name, eager in imports_of(path):
            parts = name.split(".")
            dst = parts[1] if len(parts) > 1 else ""
            if dst in pkgs and dst != src and (eager or not eager_only):
                edges.setdefault((src, dst), []).append(f"{rel.as_posix()}:{line} {name}")
    return edges


def violations(
    edges: dict[tuple[str, str], list[str]], exceptions: dict[tuple[str, str], str] = EXCEPTIONS
) -> tuple[list[str], list[tuple[str, str]]]:
    """Imports breaking :data:`ALLOWED` that ``exceptions`` does not document, and the
    exceptions no import uses any more."""
    bad = [
        f"{a} -> {b}: " + "; ".join(where)
        for (a, b), where in sorted(edges.items())
        if b not in ALLOWED[a] and (a, b) not in exceptions
    ]
    return bad, sorted(k for k in exceptions if k not in edges)


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Every elementary cycle of the subpackage graph (each once, from its smallest name)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


# ----------------------------------------------------------------------------- the scanner itself


def test_scanner_sees_lazy_and_eager_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "import os\nfrom activepam.core import io\nimport activepam.rounds.export\n"
        "def g():\n    from activepam.plots.spectrogram import render_png\n"
        "from . import sibling\n"
    )
    assert imports_of(f) == [
        (2, "activepam.core", True),
        (3, "activepam.rounds.export", True),
        (5, "activepam.plots.spectrogram", False),
    ]


def test_violations_flag_undocumented_and_stale() -> None:
    edges = {
        ("core", "rounds"): ["core/x.py:3 activepam.rounds.export"],
        ("rounds", "core"): ["rounds/y.py:1 activepam.core.io"],
        ("review", "rounds"): ["review/z.py:9 activepam.rounds.export"],
    }
    bad, stale = violations(edges, {("review", "rounds"): "why", ("plots", "rounds"): "old"})
    assert bad == ["core -> rounds: core/x.py:3 activepam.rounds.export"]
    assert stale == [("plots", "rounds")]


def test_cycle_finder() -> None:
    e: dict[tuple[str, str], list[str]] = {
        ("a", "b"): [],
        ("b", "c"): [],
        ("c", "a"): [],
        ("c", "d"): [],
        ("d", "c"): [],
    }
    assert cycles(e) == [["a", "b", "c", "a"], ["c", "d", "c"]]
    assert cycles({("a", "b"): [], ("b", "c"): []}) == []


# ----------------------------------------------------------------------------- the package


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_every_subpackage_is_layered() -> None:
    assert set(_subpackages()) == set(ALLOWED), "a new subpackage needs a place in ALLOWED"


def test_imports_follow_the_layers() -> None:
    bad, stale = violations(package_edges())
    assert not bad, "imports across the layers (fix, or document in EXCEPTIONS):\n  " + "\n  ".join(
        bad
    )
    assert not stale, f"EXCEPTIONS no longer used (remove them): {stale}"


def test_no_import_cycle_at_import_time() -> None:
    """Module-level imports between subpackages form no cycle (a real circular import)."""
    found = cycles(package_edges(eager_only=True))
    assert not found, " / ".join(" -> ".join(c) for c in found)


def test_no_subpackage_cycle_even_through_lazy_imports() -> None:
    """Not even imports inside functions close a cycle between subpackages."""
    found = cycles(package_edges())
    assert not found, " / ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize(
    "pkg",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=f"{p}/cli.py not written yet"))
        if p in CLI_PENDING
        else p
        for p in STAGES
    ],
)
def test_stage_has_a_cli_module(pkg: str) -> None:
    path = SRC / pkg / "cli.py"
    assert path.is_file(), f"{path} missing"
    mod = importlib.import_module(f"activepam.{pkg}.cli")
    assert callable(getattr(mod, "register", None)), f"{path} has no register(subparsers)"
