"""The code each DVC stage runs, from a static scan, checked against dvc.yaml.

A stage of dvc.yaml calls Snakemake with ``--allowed-rules R1 R2 ... --``. For every such rule
this finds the rule file that defines it (workflow/rules/*.smk), its ``script:`` and the
activepam modules the script imports, transitively (an AST scan of every ``import`` /
``from ... import`` anywhere in a module, function bodies included, and of strings naming
``activepam.x.y`` modules for importlib). The stage must list as deps: the rule files plus
workflow/rules/common.smk (the helpers every rule file uses), the scripts,
src/activepam/__init__.py and the whole folder src/activepam/<pkg> of every subpackage reached,
so a module added to a subpackage is covered without editing dvc.yaml.

The imports of the rule files themselves are not followed: Snakemake runs them at parse time
to build the DAG (paths, targets, validation of params.yaml), and what they hand a job reaches
it as input files or as params computed from the params.yaml keys the stage lists.

    python scripts/dvc_deps.py           # per stage: the deps it needs; exit 1 when dvc.yaml
                                         # misses one (names stage, path and the rule needing it)
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PKG = "activepam"
_RULE_RE = re.compile(r"^[ \t]*(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:", re.M)
_SCRIPT_RE = re.compile(r"^[ \t]*script:[ \t]*\n?[ \t]*[rf]?[\"']([^\"']+)[\"']", re.M)
_MODULE_STR_RE = re.compile(r"^activepam(\.\w+)+$")
#: deps under these folders are code: listed exactly when a rule of the stage runs them
_CODE_DIRS = ("src/", "scripts/", "workflow/")


@dataclass
class RuleInfo:
    """Where a Snakemake rule is defined and what it runs."""

    name: str
    rule_file: Path
    script: Path | None
    modules: set[str] = field(default_factory=set)


def _module_file(name: str, src: Path) -> Path | None:
    base = src.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


class _Module:
    """One parsed module: its top-level functions/classes, module-level code and imports."""

    def __init__(self, name: str, path: Path) -> None:
        tree = ast.parse(path.read_text(), filename=str(path))
        self.name, self.is_pkg = name, path.name == "__init__.py"
        self.defs: dict[str, ast.AST] = {}
        self.code: list[ast.AST] = []  # run on import: statements, decorators, class bases
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
                self.code += node.decorator_list
                if isinstance(node, ast.ClassDef):
                    self.code += [*node.bases, *node.keywords]
            else:
                self.code.append(node)
        # names bound by the imports anywhere in the module (alias -> (module, attr))
        self.binds = _import_binds([tree], self)


def _resolve(node: ast.ImportFrom, mod: _Module | None) -> str:
    base = node.module or ""
    if node.level and mod is not None:
        parts = mod.name.split(".")
        keep = len(parts) - node.level + (1 if mod.is_pkg else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    return base


def _import_binds(
    nodes: Iterable[ast.AST], mod: _Module | None
) -> dict[str, tuple[str, str | None]]:
    """Names bound by the imports in ``nodes``: alias -> (module, attr or None)."""
    binds: dict[str, tuple[str, str | None]] = {}
    for scope in nodes:
        for node in ast.walk(scope):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        binds[a.asname] = (a.name, None)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, mod)
                for a in node.names:
                    binds[a.asname or a.name] = (base, a.name)
    return binds


_PARSED: dict[tuple[Path, int], _Module] = {}


def _parsed(name: str, path: Path) -> _Module:
    """``_Module`` of ``path``, parsed once per file version (path, modification time)."""
    key = (path.resolve(), path.stat().st_mtime_ns)
    if key not in _PARSED:
        _PARSED[key] = _Module(name, path)
    return _PARSED[key]


class _Reach:
    """Activepam modules a script executes: the modules imported at module level of every
    executed module, plus those imported inside the functions and classes reachable from the
    script (by name, through ``from m import f``, ``m.f`` on an imported module, or a string
    naming a module). A function nobody reaches does not pull in its lazy imports; a whole
    class is reached when its name is."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.modules: dict[str, _Module | None] = {}
        self.executed: set[str] = set()
        self.reached: set[tuple[str, str]] = set()

    def _module(self, name: str) -> _Module | None:
        if name not in self.modules:
            path = _module_file(name, self.src)
            self.modules[name] = _parsed(name, path) if path is not None else None
        return self.modules[name]

    def _ours(self, name: str) -> bool:
        return name == PKG or name.startswith(PKG + ".")

    def execute(self, name: str) -> None:
        """Import module ``name`` (and its parent packages): run its module-level code."""
        if not self._ours(name) or name in self.executed or self._module(name) is None:
            return
        self.executed.add(name)
        parts = name.split(".")
        for i in range(1, len(parts)):
            self.execute(".".join(parts[:i]))
        mod = self._module(name)
        assert mod is not None
        self.visit(mod.code, mod)

    def reach(self, module: str, attr: str) -> None:
        """``module.attr`` is used: a submodule, a function/class body, or a re-export."""
        if not self._ours(module) or (module, attr) in self.reached:
            return
        self.reached.add((module, attr))
        if self._module(f"{module}.{attr}") is not None:
            self.execute(f"{module}.{attr}")
            return
        self.execute(module)
        mod = self._module(module)
        if mod is not None and attr in mod.defs:
            self.visit([mod.defs[attr]], mod)

    def reach_all(self, module: str) -> None:
        self.execute(module)
        mod = self._module(module)
        for attr in list(mod.defs) if mod is not None else []:
            self.reach(module, attr)

    def visit(self, nodes: Iterable[ast.AST], mod: _Module | None) -> None:
        """Follow the imports and names used by ``nodes`` (code of ``mod``; None: a script,
        all of whose code runs)."""
        nodes = list(nodes)
        binds = mod.binds if mod is not None else _import_binds(nodes, None)
        local_defs = (
            {}
            if mod is not None
            else {
                n.name: n
                for s in nodes
                for n in ast.walk(s)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            }
        )
        for scope in nodes:
            for node in ast.walk(scope):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        self.execute(a.name)
                        if not a.asname and a.name != a.name.split(".")[0]:
                            self.reach_all(a.name)  # used as a.b.c.f: no finer resolution
                elif isinstance(node, ast.ImportFrom):
                    base = _resolve(node, mod)
                    self.execute(base)
                    for a in node.names:
                        if a.name == "*":
                            self.reach_all(base)
                        else:
                            self.reach(base, a.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    bound = binds.get(node.value.id)
                    if bound is not None:
                        target = bound[0] if bound[1] is None else f"{bound[0]}.{bound[1]}"
                        if self._module(target) is not None:
                            self.reach(target, node.attr)
                elif isinstance(node, ast.Name):
                    if mod is not None and node.id in mod.defs:
                        self.reach(mod.name, node.id)
                    elif (
                        node.id in binds
                        and binds[node.id][1] is not None
                        and node.id not in local_defs
                    ):
                        self.reach(*binds[node.id])  # type: ignore[arg-type]
                elif (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and _MODULE_STR_RE.match(node.value)
                ):
                    self.reach_all(node.value)


def script_modules(script: Path, src: Path) -> set[str]:
    """The activepam modules (with their parent packages) that running ``script`` executes."""
    reach = _Reach(src)
    reach.visit([ast.parse(script.read_text(), filename=str(script))], None)
    return set(reach.executed)


def rule_table(repo: Path = REPO) -> dict[str, RuleInfo]:
    """Every rule of workflow/rules/*.smk: its file, script and the modules the script
    imports (transitively)."""
    src = repo / "src"
    table: dict[str, RuleInfo] = {}
    for smk in sorted((repo / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        heads = list(_RULE_RE.finditer(text))
        for i, head in enumerate(heads):
            body = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            m = _SCRIPT_RE.search(body)
            script = (smk.parent / m.group(1)).resolve() if m else None
            mods = script_modules(script, src) if script is not None and script.is_file() else set()
            table[head.group(1)] = RuleInfo(head.group(1), smk, script, mods)
    return table


def stage_rules(cmd: str) -> list[str]:
    """The rule names after ``--allowed-rules`` in a stage command (up to ``--`` or an option)."""
    words = cmd.split()
    if "--allowed-rules" not in words:
        return []
    out = []
    for w in words[words.index("--allowed-rules") + 1 :]:
        if w.startswith("-"):
            break
        out.append(w)
    return out


def _rel(path: Path, repo: Path) -> str:
    return path.resolve().relative_to(repo.resolve()).as_posix()


def required_deps(
    rules: Iterable[str], table: dict[str, RuleInfo], repo: Path = REPO
) -> dict[str, set[str]]:
    """Dep path -> the rules needing it, for a stage running ``rules``."""
    need: dict[str, set[str]] = {}

    def add(path: str, rule: str) -> None:
        need.setdefault(path, set()).add(rule)

    for name in rules:
        if name not in table:
            raise KeyError(f"rule {name!r} not found in workflow/rules/*.smk")
        info = table[name]
        add(_rel(info.rule_file, repo), name)
        add("workflow/rules/common.smk", name)
        if info.script is not None:
            add(_rel(info.script, repo), name)
        for mod in info.modules:
            parts = mod.split(".")
            add(
                "src/activepam/__init__.py" if len(parts) == 1 else f"src/activepam/{parts[1]}",
                name,
            )
    return need


def _deps_of(stage: dict) -> tuple[str, list[str]]:
    body = stage.get("do", stage)
    deps = []
    for d in body.get("deps") or []:
        deps.append(next(iter(d)) if isinstance(d, dict) else str(d))
    return str(body.get("cmd", "")), deps


def check(repo: Path = REPO) -> dict[str, list[str]]:
    """Stage -> problems (a needed dep not covered by a listed one), for every stage of
    ``repo``/dvc.yaml that runs Snakemake rules."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    table = rule_table(repo)
    problems: dict[str, list[str]] = {}
    for name, stage in stages.items():
        cmd, deps = _deps_of(stage)
        listed = [d.rstrip("/") for d in deps]
        need = required_deps(stage_rules(cmd), table, repo)
        for path, rules in sorted(need.items()):
            if not any(path == d or path.startswith(d + "/") for d in listed):
                problems.setdefault(name, []).append(
                    f"dvc.yaml: stage {name}: missing dep {path} (used by rule "
                    f"{', '.join(sorted(rules))})"
                )
        # code the stage does not run would mark it changed for nothing
        for dep in listed:
            if dep.startswith(_CODE_DIRS) and dep not in need:
                problems.setdefault(name, []).append(
                    f"dvc.yaml: stage {name}: dep {dep} is code none of its rules "
                    f"({', '.join(stage_rules(cmd))}) runs"
                )
    return problems


def main() -> int:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = rule_table(REPO)
    for name, stage in stages.items():
        cmd, _ = _deps_of(stage)
        print(f"{name}:")
        for path in sorted(required_deps(stage_rules(cmd), table, REPO)):
            print(f"  - {path}")
    problems = check(REPO)
    for lines in problems.values():
        for line in lines:
            print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
