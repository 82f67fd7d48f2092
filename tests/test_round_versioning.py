"""Rounds that stay put (issue #9, defects 1 and 3): the real Snakemake rounds on a toy project.

A temporary project gets the workflow (Snakefile, workflow/, scripts/, profiles/), a params.yaml
with a two-round plan and the toy detection outputs of :func:`test_rounds_e2e.build_toy_project`
(no BirdNET). Snakemake runs only the round rules (``--allowed-rules``, as the DVC stages do):

- appending a round: the dry run lists only the new round's jobs, and the real run leaves every
  file of the earlier rounds' annotation folders alone (an expert's saved table survives);
- changing ``rounds.n_per_round`` / ``rounds.strategy``: exported rounds keep the settings frozen
  in ``data/rounds/round_RR.settings.json``; only the next round uses the new ones;
- with expert labels (``rounds.simulated_annotator: false``) a labelled round is locked:
  ``--forcerun round_sample`` and a deleted sample are refused with a message naming the round
  and ``activepam rounds unfreeze RR``; ``--forceall`` schedules no sample/export job; the
  unfreeze command archives the round and the next dry run redoes only that round.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_rounds_e2e import SITES, build_toy_project

REPO = Path(__file__).resolve().parents[1]
SMK = Path(sys.executable).with_name("snakemake")
ROUND_RULES = [
    "rounds_test_set",
    "rounds_export_test",
    "round_sample",
    "round_export",
    "round_simulated_labels",
    "round_train",
    "rounds_baseline",
    "round_evaluate",
    "round_answers",
    "round_plots",
]
PLAN = {
    "00": "results/detect/segments.parquet",
    "01": "results/rounds/round_00/segments_scored.parquet",
    "02": "results/rounds/round_01/segments_scored.parquet",
    "03": "results/rounds/round_02/segments_scored.parquet",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SMK.exists(), reason="snakemake not installed in the venv"),
]


def _project(root: Path) -> dict:
    """Workflow files + toy detection outputs + a small params.yaml under ``root``."""
    for name in ("Snakefile",):
        shutil.copy(REPO / name, root / name)
    for name in ("workflow", "scripts", "profiles"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    p = build_toy_project(root, n_rec_per_site=3, duration_s=30.0)
    inv = pd.read_parquet(p["inventory"])
    inv["shard"] = "0000"
    inv.to_parquet(p["inventory"])
    pd.DataFrame(
        [
            {
                "device_id": f"dev{i}",
                "site": s,
                "country": "NO",
                "habitat": h,
                "lat": la,
                "lon": lo,
                "deployment_start": "2025-01-01T00:00:00Z",
                "deployment_end": "",
            }
            for i, (s, h, la, lo) in enumerate(SITES)
        ]
    ).to_csv(p["raw"] / "sites.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"raw_dir": "data/raw/toy", "sites_csv": "data/raw/toy/sites.csv"}
    params["demo"]["enabled"] = False
    params["rounds"].update(
        plan={"00": PLAN["00"]},
        strategy="max_entropy",
        n_per_round=12,
        test_size=15,
        context_s=2.0,
        spectrograms=False,
        annotators=["ann", "bob"],
        simulated_annotator=True,
    )
    params["train"]["calibrate_min"] = 8
    params["evaluate"]["thresholds"]["n_boot"] = 20
    params["evaluate"]["stopping"]["stop_set"] = 100
    params["sampling"]["run"] = []
    params["search"]["build_index"] = False
    _write_params(root, params)
    return params


def _write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _targets(params: dict) -> list[str]:
    """Metrics and learning curve of every planned round (the DVC stage round@RR's targets)."""
    return [
        f"results/rounds/round_{r}/{name}"
        for r in params["rounds"]["plan"]
        for name in ("metrics.json", "learning_curve.png")
    ]


def _smk(
    root: Path, params: dict, *extra: str, check: bool = True, targets: list[str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    cmd = [
        str(SMK),
        "--profile",
        "profiles/default",
        "--cores",
        "2",
        "--allowed-rules",
        *ROUND_RULES,
        *extra,
        "--",
        *(targets if targets is not None else _targets(params)),
    ]
    res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    return res


def _jobs(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job listed by a dry run."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if m:
            w = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
            jobs.append((m.group(1), w.group(1) if w else ""))
    return jobs


def _fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(f.relative_to(folder)): (
            f.stat().st_mtime_ns,
            hashlib.sha256(f.read_bytes()).hexdigest(),
        )
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A toy project after Snakemake played round 00 (simulated annotator)."""
    root = tmp_path_factory.mktemp("versioning")
    params = _project(root)
    _smk(root, params)
    return root, params


def test_exported_round_freezes_its_settings(project: tuple[Path, dict]) -> None:
    root, params = project
    for rid in ("00",):
        s = json.loads((root / f"data/rounds/round_{rid}.settings.json").read_text())
        assert (s["round"], s["strategy"], s["n"], s["seed"]) == (rid, "max_entropy", 12, int(rid))
        assert s["spec"]["name"] == "max_entropy" and s["scores"] == PLAN[rid]
        assert s["export"]["annotators"] == ["ann", "bob"] and s["export"]["context_s"] == 2.0
        assert s["exported"]["units"] == 12
        assert len(pd.read_parquet(root / f"results/rounds/round_{rid}/sample.parquet")) == 12
    test = json.loads((root / "data/rounds/test.settings.json").read_text())
    assert (test["n"], test["seed"]) == (15, 0)
    # nothing to do on a second run: params are what the rules recorded
    res = _smk(root, params, "-n")
    assert _jobs(res.stdout + res.stderr) == [], res.stdout[-3000:]


def test_appending_a_round_runs_only_the_new_round(project: tuple[Path, dict]) -> None:
    root, params = project
    ann0 = root / "results/rounds/round_00/annotation"
    saved = ann0 / "ann" / "expert_saved.Table.1.selections.txt"  # an expert's work in progress
    saved.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\n")
    before = {
        d: _fingerprint(root / f"results/rounds/{d}/annotation") for d in ("round_00", "test")
    }
    labels0 = (root / "data/labels/round_00.csv").read_bytes()

    params["rounds"]["plan"]["01"] = PLAN["01"]
    _write_params(root, params)
    res = _smk(root, params, "-n")
    jobs = _jobs(res.stdout)
    assert jobs, res.stdout[-3000:]
    assert {w for _, w in jobs} == {"r=01", "name=round_01"}, jobs
    assert {r for r, _ in jobs} >= {"round_sample", "round_export", "round_train"}

    _smk(root, params)
    assert (root / "results/rounds/round_01/metrics.json").exists()
    assert saved.exists()
    for d, fp in before.items():
        assert _fingerprint(root / f"results/rounds/{d}/annotation") == fp, d
    assert (root / "data/labels/round_00.csv").read_bytes() == labels0


def test_changed_settings_apply_only_to_rounds_not_exported(project: tuple[Path, dict]) -> None:
    root, params = project
    test_set = (root / "results/rounds/test_set.csv").read_bytes()
    params["rounds"].update(n_per_round=8, strategy="random", test_size=20)
    _write_params(root, params)
    res = _smk(root, params, "-n")
    assert _jobs(res.stdout) == [], res.stdout[-3000:]
    warn = res.stdout + res.stderr
    assert "round 00 keeps the settings it was exported with" in warn
    assert "activepam rounds unfreeze 00" in warn and "n: 12 (params.yaml now 8)" in warn

    params["rounds"]["plan"]["02"] = PLAN["02"]
    _write_params(root, params)
    jobs = _jobs(_smk(root, params, "-n").stdout)
    assert jobs and {w for _, w in jobs} == {"r=02", "name=round_02"}, jobs
    _smk(root, params, targets=["results/rounds/round_02/annotation"])  # sample + export only
    s = json.loads((root / "data/rounds/round_02.settings.json").read_text())
    assert (s["strategy"], s["n"], s["seed"]) == ("random", 8, 2)
    assert len(pd.read_parquet(root / "results/rounds/round_02/sample.parquet")) == 8
    for rid in ("00", "01"):
        assert len(pd.read_parquet(root / f"results/rounds/round_{rid}/sample.parquet")) == 12
    assert (root / "results/rounds/test_set.csv").read_bytes() == test_set


def test_labelled_rounds_are_locked(project: tuple[Path, dict]) -> None:
    """With expert labels every labelled round is a source: forcing it is refused."""
    root, params = project
    params["rounds"]["simulated_annotator"] = False
    params["rounds"]["plan"] = {k: PLAN[k] for k in ("00", "01")}
    _write_params(root, params)
    ann0 = root / "results/rounds/round_00/annotation"
    before = _fingerprint(ann0)

    res = _smk(root, params, "-n", "--forcerun", "round_sample", check=False)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "round 00 is labelled" in out and "activepam rounds unfreeze 00" in out, out[-3000:]

    jobs = _jobs(_smk(root, params, "-n", "--forceall").stdout)
    assert jobs and not {r for r, _ in jobs} & {
        "round_sample",
        "round_export",
        "rounds_test_set",
        "rounds_export_test",
    }

    sample1 = root / "results/rounds/round_01/sample.parquet"
    kept = sample1.read_bytes()
    sample1.unlink()
    try:
        res = _smk(root, params, "-n", check=False)
        assert res.returncode != 0
        out = res.stdout + res.stderr
        assert "round 01 is labelled" in out and str(sample1.relative_to(root)) in out
        assert "activepam rounds unfreeze 01" in out
    finally:
        sample1.write_bytes(kept)
    assert _fingerprint(ann0) == before

    # the explicit way out, newest round first; archived, not deleted; then only it is redone
    params["rounds"]["plan"]["02"] = PLAN["02"]
    _write_params(root, params)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cli = [
        sys.executable,
        "-c",
        "from activepam.cli import build_parser; import sys; "
        "a = build_parser(('activepam.rounds.freeze',)).parse_args(sys.argv[1:]); "
        "sys.exit(a.func(a))",
    ]

    def unfreeze(rid: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli, "rounds", "unfreeze", rid],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = unfreeze("01")
    assert refused.returncode == 1 and "activepam rounds unfreeze 02" in refused.stderr
    assert (root / "data/labels/round_01.csv").exists()
    assert unfreeze("2").returncode == 0
    done = unfreeze("01")
    assert done.returncode == 0, done.stderr
    assert not (root / "data/labels/round_01.csv").exists()
    assert not (root / "data/rounds/round_01.settings.json").exists()
    archived = [p.name for p in (root / "data/rounds/archive/round_01.1").iterdir()]
    assert any(n.endswith("round_01.csv") for n in archived), archived
    assert any(n.endswith("annotation") for n in archived), archived
    jobs = _jobs(_smk(root, params, "-n", targets=["results/rounds/round_01/annotation"]).stdout)
    assert ("round_sample", "r=01") in jobs and ("round_export", "r=01") in jobs
    assert all(w in ("r=01", "name=round_01") for _, w in jobs), jobs
    assert _fingerprint(ann0) == before
