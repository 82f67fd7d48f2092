"""DVC versioning of a project: deps complete by construction, Snakemake and DVC agree.

- dvc.yaml lists, per stage, exactly the code its Snakemake rules run (scripts/dvc_deps.py: the
  rule files, scripts and whole src/activepam/<pkg> folders reached by a static import scan),
  and the scan finds every module a script really imports;
- editing a sampling module marks exactly the stages that run it (`dvc status` on a copy whose
  dvc.lock records placeholder files);
- a real Snakemake run of a small demo, recorded with `make commit` (scripts/dvc_commit.sh):
  `dvc status` clean, `dvc repro` reuses everything; `dvc push`, a fresh `git clone` and
  `make pull` (scripts/dvc_pull.sh) restore labels and models byte-identical, `dvc status` is
  clean and `snakemake -n` plans nothing; a clone whose default remote folder is missing is
  told which folder and where the default remote lives. No network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_copy import copy_repo

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
DVC = BIN / "dvc"
SMK = BIN / "snakemake"
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}
needs_tools = pytest.mark.skipif(
    not DVC.exists() or shutil.which("git") is None, reason="needs git and dvc"
)


def _load_dvc_deps() -> Any:
    spec = importlib.util.spec_from_file_location("dvc_deps", REPO / "scripts" / "dvc_deps.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dvc_deps"] = mod
    spec.loader.exec_module(mod)
    return mod


dvc_deps = _load_dvc_deps()


def run(
    cmd: list[str | Path],
    cwd: Path,
    env: dict[str, str] | None = None,
    ok: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if ok:
        assert res.returncode == 0, (
            f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    return res


def git_dvc_init(work: Path) -> None:
    run(["git", "init", "-q", "-b", "main"], work)
    run([DVC, "init", "-q", "-f"], work)
    shutil.copy(REPO / ".dvc" / "config", work / ".dvc" / "config")


def dvc_status(work: Path, *targets: str) -> dict:
    return json.loads(run([DVC, "status", "--json", *targets], work).stdout or "{}")


# --------------------------------------------------------------------------- configuration


def test_dvc_config_is_local_and_offline(repo: Path) -> None:
    cfg = (repo / ".dvc" / "config").read_text()
    assert "remote = local" in cfg and "url = ../../activepam-dvc-remote" in cfg
    assert "analytics = false" in cfg
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert {
        "demo",
        "detect",
        "indices",
        "figures",
        "sample",
        "simulate",
        "testset",
        "baseline",
        "export",
        "round",
    } <= set(stages)
    assert stages["round"]["foreach"] == "${rounds.plan}"


# --------------------------------------------------------------------------- deps by construction


@pytest.mark.slow
def test_every_stage_lists_exactly_the_code_its_rules_run() -> None:
    assert dvc_deps.check(REPO) == {}
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = dvc_deps.rule_table(REPO)
    for name, stage in stages.items():
        body = stage.get("do", stage)
        rules = dvc_deps.stage_rules(body["cmd"])
        assert rules, f"stage {name}: no --allowed-rules"
        deps = [next(iter(d)) if isinstance(d, dict) else d for d in body["deps"]]
        code = [d for d in deps if d.startswith("src/")]
        # whole subpackage folders (a new module is covered), never single module files
        assert all(d == "src/activepam/__init__.py" or (REPO / d).is_dir() for d in code), name
        for rule in rules:
            assert table[rule].script is not None and table[rule].script.is_file(), rule
            assert dvc_deps._rel(table[rule].script, REPO) in deps, (name, rule)
    # a stage missing a package, or listing one it does not run, is reported with both names
    need = dvc_deps.required_deps(["round_sample"], table, REPO)
    assert "src/activepam/sampling" in need and "scripts/round_sample.py" in need
    assert "src/activepam/simulation" not in need


@pytest.mark.slow
def test_check_names_stage_and_missing_or_unneeded_dep(tmp_path: Path) -> None:
    for rel in ("src", "scripts", "workflow"):
        shutil.copytree(
            REPO / rel, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    text = (REPO / "dvc.yaml").read_text()
    broken = text.replace("        - src/activepam/sampling\n", "", 1)  # first: sample@
    broken = broken.replace(
        "      - src/activepam/demo\n",
        "      - src/activepam/demo\n      - src/activepam/search\n",
        1,
    )
    (tmp_path / "dvc.yaml").write_text(broken)
    problems = dvc_deps.check(tmp_path)
    assert set(problems) == {"demo", "sample"}
    assert any("missing dep src/activepam/sampling" in p for p in problems["sample"])
    assert any("src/activepam/search is code none of its rules" in p for p in problems["demo"])


@pytest.mark.slow
def test_static_scan_finds_every_module_a_script_imports() -> None:
    """Import each rule script's top-level imports in a fresh interpreter: every activepam
    module Python loads is in the scan (the scan may find more: lazy imports it reaches)."""
    table = dvc_deps.rule_table(REPO)
    scripts = sorted({r.script for r in table.values() if r.script is not None})
    assert len(scripts) >= 20
    probe = (
        "import ast, json, sys\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    before = set(sys.modules)\n"
        "    tree = ast.parse(open(path).read())\n"
        "    body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]\n"
        "    exec(compile(ast.Module(body=body, type_ignores=[]), path, 'exec'), {})\n"
        "    out[path] = sorted(m for m in sys.modules if m.split('.')[0] == 'activepam')\n"
        "    for m in list(sys.modules):\n"
        "        if m.split('.')[0] == 'activepam':\n"
        "            del sys.modules[m]\n"
        "print(json.dumps(out))\n"
    )
    env = {**ENV, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    res = run([sys.executable, "-c", probe, *map(str, scripts)], REPO, env=env)
    loaded = json.loads(res.stdout)
    for path, modules in loaded.items():
        found = dvc_deps.script_modules(Path(path), REPO / "src")
        assert modules, path
        assert set(modules) <= found, (path, sorted(set(modules) - found))


def _placeholder_project(work: Path) -> list[str]:
    """A git + dvc copy of the code whose every stage dep and out is a placeholder file,
    recorded by `dvc commit`; returns the stage names."""
    for rel in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / rel, work / rel)
    for rel in ("src", "scripts", "workflow"):
        shutil.copytree(
            REPO / rel, work / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    git_dvc_init(work)
    listing = (
        "import json, sys\nfrom dvc.repo import Repo\n"
        "out = {}\n"
        "for s in Repo('.').index.stages:\n"
        "    out[s.addressing] = {'deps': [d.def_path for d in s.deps],\n"
        "                         'outs': [o.def_path for o in s.outs]}\n"
        "print(json.dumps(out))\n"
    )
    stages = json.loads(run([BIN / "python", "-c", listing], work).stdout)
    for spec in stages.values():
        for rel in spec["deps"] + spec["outs"]:
            path = work / rel
            if path.exists():
                continue
            # a folder when it has no suffix (annotation/, results/detect, ...)
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"placeholder {rel}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder.txt").write_text(f"placeholder {rel}\n")
    run([DVC, "commit", "-f", "-q"], work)
    assert dvc_status(work) == {}
    return sorted(stages)


@pytest.mark.slow
@needs_tools
def test_editing_a_sampling_module_marks_exactly_the_stages_running_it(tmp_path: Path) -> None:
    names = _placeholder_project(tmp_path)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = dvc_deps.rule_table(REPO)
    users = {
        name
        for name, st in stages.items()
        if "src/activepam/sampling"
        in dvc_deps.required_deps(dvc_deps.stage_rules(st.get("do", st)["cmd"]), table)
    }
    expected = {n for n in names if n.split("@")[0] in users}
    with open(tmp_path / "src/activepam/sampling/scores.py", "a") as fh:
        fh.write("# an edit\n")
    changed = set(dvc_status(tmp_path))
    assert changed == expected
    assert {"export@00", "export@03", "round@00"} <= changed
    assert not changed & {"demo", "detect", "indices", "figures", "testset"}
    # a new module in a subpackage is seen without editing dvc.yaml
    run([DVC, "commit", "-f", "-q"], tmp_path)
    (tmp_path / "src/activepam/detection/new_module.py").write_text("X = 1\n")
    changed = set(dvc_status(tmp_path))
    assert "detect" in changed and "demo" not in changed and "export@00" in changed


# --------------------------------------------------------------------------- commit, push, pull


def _small_params() -> dict[str, Any]:
    """params.yaml + params/ci_small.yaml, one round, fewer strategies and bootstraps."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small = yaml.safe_load((REPO / "params" / "ci_small.yaml").read_text())

    def merge(a: dict, b: dict) -> None:
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v

    merge(params, small)
    params["rounds"]["plan"] = {"00": params["rounds"]["plan"]["00"]}
    params["sampling"]["run"] = ["random"]
    params["evaluate"]["thresholds"]["n_boot"] = 20
    params["simulation"]["divergence"]["turnovers"] = [0.0]
    return params


def _snakemake_plan(work: Path) -> str:
    env = {**ENV, "PYTHONPATH": str(work / "src"), "MPLBACKEND": "Agg"}
    res = run([SMK, "-n", "--cores", "1", "--profile", "profiles/default"], work, env=env)
    return res.stdout + res.stderr


@pytest.mark.slow
@needs_tools
def test_run_commit_push_clone_pull_agree(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    copy_repo(work, skip=(".dvc/cache", ".dvc/tmp"))
    (work / "params.yaml").write_text(yaml.safe_dump(_small_params(), sort_keys=False))
    for stale in ("dvc.lock", "data/labels", "data/rounds", "results"):
        shutil.rmtree(work / stale, ignore_errors=True) if (work / stale).is_dir() else (
            work / stale
        ).unlink(missing_ok=True)
    git_dvc_init(work)
    env = {**ENV, "PYTHONPATH": str(work / "src"), "MPLBACKEND": "Agg"}

    # a refused commit before the run: Snakemake still plans jobs
    res = run(["bash", "scripts/dvc_commit.sh"], work, env=env, ok=False)
    assert res.returncode == 1 and "still plans jobs" in res.stderr
    run([SMK, "--cores", "2", "--profile", "profiles/default"], work, env=env, timeout=1200)
    run(["bash", "scripts/dvc_commit.sh"], work, env=env)
    assert dvc_status(work) == {}
    stamp = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()}
    repro = run([DVC, "repro"], work, env={**env, "PATH": f"{BIN}:{env['PATH']}"})
    assert "didn't change, skipping" in repro.stdout or "up to date" in repro.stdout
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # reused, not rebuilt
    assert "Nothing to be done" in _snakemake_plan(work)

    run(["git", "add", "-A"], work)  # .venv (a link) is ignored by .gitignore
    run(["git", "commit", "-q", "-m", "round 0"], work)
    run(["git", "tag", "round-0"], work)
    run([DVC, "push", "-q"], work)
    assert (tmp_path / "activepam-dvc-remote" / "files" / "md5").is_dir()

    # another folder depth: the default remote (beside the clone) is missing, and we say so
    deep = tmp_path / "elsewhere" / "clone"
    deep.parent.mkdir()
    run(["git", "clone", "-q", str(work), str(deep)], tmp_path)
    (deep / ".venv").symlink_to(REPO / ".venv")
    res = run(["bash", "scripts/dvc_pull.sh"], deep, env=env, ok=False)
    assert res.returncode == 2
    assert str(tmp_path / "elsewhere" / "activepam-dvc-remote") in res.stderr
    assert "beside the clone" in res.stderr and "dvc remote modify --local local url" in res.stderr

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--branch", "round-0", str(work), str(clone)], tmp_path)
    (clone / ".venv").symlink_to(REPO / ".venv")
    assert not (clone / "data/labels/round_00.csv").exists()  # labels are in DVC, not git
    assert (clone / "data/rounds/round_00.settings.json").exists()  # frozen settings: git
    cenv = {**env, "PYTHONPATH": str(clone / "src")}
    res = run(["bash", "scripts/dvc_pull.sh"], clone, env=cenv)
    assert "marked up to date" in res.stdout
    tracked = [
        "data/labels/round_00.csv",
        "data/labels/test.csv",
        "results/rounds/round_00/model.joblib",
        "results/rounds/round_00/model.json",
        "results/rounds/round_00/metrics.json",
        "results/rounds/round_00/segments_scored.parquet",
        "results/rounds/round_00/annotation/manifest.csv",
        "results/inventory/quarantine.csv",
        "results/inventory/recording_ids.csv",
        "results/detect/embeddings.parquet",
        "results/simulation/claims.json",
    ]
    for rel in tracked:
        assert (clone / rel).read_bytes() == (work / rel).read_bytes(), rel
    assert dvc_status(clone) == {}
    plan = _snakemake_plan(clone)
    assert "Nothing to be done" in plan, plan[-3000:]
    assert "macro_ap" in run([DVC, "metrics", "show", "--json"], clone).stdout
