"""Threads and resources are stated in the profiles only (issue 9).

- no rule in workflow/rules/*.smk (or the Snakefile) declares ``threads:`` or ``resources:``;
- every rule named in profiles/default or profiles/slurm exists, both profiles name the same
  rules, and every rule gets mem_mb and runtime (per rule or from default-resources);
- the SLURM numbers equal the local ones at attempt 1 and grow with ``attempt``;
- Snakemake 9 loads profiles/default as the workflow profile and lets it beat ``--profile``
  (whole keys), so the documented SLURM invocations pass ``--workflow-profile none``; a dry run
  of a tiny Snakefile with copies of both profiles shows which values each invocation gets.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
RULE_LINE = re.compile(r"^(\s*)(?:rule|checkpoint)\s+(\w+)\s*:")
DIRECTIVE = re.compile(r"^\s*(threads|resources)\s*:")
ATTEMPT_FREE = ("slurm_partition", "slurm_account", "disk_mb")  # cluster-only, not scaled


def rule_bodies(path: Path) -> dict[str, list[tuple[int, str]]]:
    """Rule name -> its body lines (line number, text) in a Snakemake file."""
    lines = path.read_text().splitlines()
    rules: dict[str, list[tuple[int, str]]] = {}
    i = 0
    while i < len(lines):
        m = RULE_LINE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, body = len(m.group(1)), rules.setdefault(m.group(2), [])
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append((i + 1, lines[i]))
            i += 1
    return rules


def all_rules() -> dict[str, list[tuple[int, str]]]:
    rules: dict[str, list[tuple[int, str]]] = {}
    for path in [*RULE_FILES, REPO / "Snakefile"]:
        rules.update({f"{path.name}:{name}": body for name, body in rule_bodies(path).items()})
    return rules


def rule_names() -> set[str]:
    return {key.split(":", 1)[1] for key in all_rules()}


def profile(name: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
    assert isinstance(data, dict), f"profiles/{name}/config.yaml: not a mapping"
    return data


def value(expr: Any, attempt: int) -> Any:
    """A profile resource at ``attempt`` (strings are Snakemake expressions of ``attempt``)."""
    if isinstance(expr, str) and "attempt" in expr:
        return eval(expr, {"__builtins__": {}}, {"attempt": attempt})  # noqa: S307 (own file)
    return expr


def resolved(prof: dict[str, Any], rule: str, attempt: int = 1) -> dict[str, Any]:
    """The resources and threads one rule gets from a profile."""
    res = dict(prof.get("default-resources") or {})
    res.update((prof.get("set-resources") or {}).get(rule, {}))
    out = {key: value(v, attempt) for key, v in res.items()}
    out["threads"] = (prof.get("set-threads") or {}).get(rule, 1)
    return out


def test_parser_sees_rules_and_directives(tmp_path: Path) -> None:
    """The scan below would notice a declaration (guards against a parser that sees nothing)."""
    smk = tmp_path / "x.smk"
    smk.write_text(
        "if X:\n\n    rule a:\n        output:\n            'a'\n        threads: 2\n"
        "        resources:\n            mem_mb=1,\n\n\nrule b:\n    output:\n        'b'\n"
    )
    bodies = rule_bodies(smk)
    assert set(bodies) == {"a", "b"}
    assert [t for _, t in bodies["a"] if DIRECTIVE.match(t)] == [
        "        threads: 2",
        "        resources:",
    ]
    assert len(rule_names()) >= 25, "the rule files define the workflow's ~30 rules"


def test_no_rule_declares_threads_or_resources() -> None:
    found = [
        f"{key} line {n}: {text.strip()}"
        for key, body in all_rules().items()
        for n, text in body
        if DIRECTIVE.match(text)
    ]
    assert not found, "threads/resources belong in profiles/*/config.yaml: " + "; ".join(found)


@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profile_rules_exist_and_every_rule_is_covered(name: str) -> None:
    prof, rules = profile(name), rule_names()
    for key in ("set-threads", "set-resources"):
        unknown = set(prof.get(key) or {}) - rules
        assert not unknown, f"profiles/{name}/config.yaml {key}: no such rule {sorted(unknown)}"
    for rule in sorted(rules - {"all"}):
        got = resolved(prof, rule)
        assert {"mem_mb", "runtime"} <= set(got), f"profiles/{name}: rule {rule} lacks {got}"
        assert got["threads"] >= 1 and got["mem_mb"] > 0 and got["runtime"] > 0, (name, rule)


def test_profiles_agree_and_slurm_scales_with_attempt() -> None:
    local, slurm = profile("default"), profile("slurm")
    for key in ("set-threads", "set-resources"):
        assert set(local.get(key) or {}) == set(slurm.get(key) or {}), (
            f"{key}: profiles/default and profiles/slurm must name the same rules"
        )
    for rule in sorted(rule_names() - {"all"}):
        here, there = resolved(local, rule), resolved(slurm, rule, attempt=1)
        for key, number in here.items():
            assert there.get(key) == number, (
                f"rule {rule} {key}: profiles/default {number}, profiles/slurm {there.get(key)}"
            )
        twice = resolved(slurm, rule, attempt=2)
        for key in ("mem_mb", "runtime"):
            assert twice[key] == 2 * there[key], f"profiles/slurm rule {rule} {key}: not x attempt"
        assert set(there) - set(here) <= set(ATTEMPT_FREE), (rule, set(there) - set(here))
    # the heavy rules keep their numbers (threads -> --cpus-per-task, memory of a shard)
    assert resolved(local, "detect_shard") == {"mem_mb": 3000, "runtime": 120, "threads": 2}
    assert resolved(local, "indices_shard")["threads"] == 1


def test_slurm_invocations_skip_the_workflow_profile() -> None:
    for path in (REPO / ".ci" / "slurm.sh", REPO / "README.md"):
        calls = [
            line for line in path.read_text().splitlines() if "--profile profiles/slurm" in line
        ]
        assert calls, f"{path.name}: no SLURM invocation found"
        assert all("--workflow-profile none" in line for line in calls), (path.name, calls)


def dry_run_values(workdir: Path, *args: str) -> dict[str, str]:
    """threads/mem_mb/runtime of rule x as a dry run prints its shell command."""
    out = subprocess.run(
        [str(SNAKEMAKE), "-n", "-p", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"VALUES threads=(\d+) mem_mb=(\d+) runtime=(\d+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    return dict(zip(("threads", "mem_mb", "runtime"), m.groups(), strict=True))


def test_workflow_profile_precedence(tmp_path: Path) -> None:
    """Why `--workflow-profile none`: profiles/default would replace the cluster's keys whole."""
    (tmp_path / "Snakefile").write_text(
        "rule x:\n    output: 'x'\n    shell: "
        "'echo VALUES threads={threads} mem_mb={resources.mem_mb} runtime={resources.runtime}'\n"
    )
    profiles = {
        "default": {
            "cores": 2,
            "default-resources": {"mem_mb": 111, "runtime": 11},
            "set-threads": {"x": 2},
            "set-resources": {"x": {"mem_mb": 222}},
        },
        "cluster": {
            "cores": 4,
            "default-resources": {"mem_mb": "999 * attempt", "runtime": 99},
            "set-threads": {"x": 3},
            "set-resources": {"x": {"runtime": "77 * attempt"}},
        },
    }
    for name, data in profiles.items():
        (tmp_path / "profiles" / name).mkdir(parents=True)
        (tmp_path / "profiles" / name / "config.yaml").write_text(yaml.safe_dump(data))
    cluster = ("--profile", "profiles/cluster")
    assert dry_run_values(tmp_path, *cluster, "--workflow-profile", "none") == {
        "threads": "3",
        "mem_mb": "999",
        "runtime": "77",
    }
    # without it, every key profiles/default sets wins whole (no merge per rule or resource)
    expected = {"threads": "2", "mem_mb": "222", "runtime": "11"}
    assert dry_run_values(tmp_path, *cluster) == expected
    assert dry_run_values(tmp_path, "--profile", "profiles/default") == expected
