"""DVC versioning of a project: push to a local remote, fresh clone, pull, status clean.

A temporary git repository gets the project's dvc.yaml, .dvc/config (default remote: a local
folder beside the repository), .gitignore, code and params (two rounds), the outputs of a toy
run of the rounds (the same functions Snakemake calls, see test_rounds_e2e.play_rounds) and
`dvc commit` records them. After `git commit` + `dvc push`, a fresh `git clone` + `dvc pull`
must restore labels and models byte-identical and `dvc status` must be clean. No network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_rounds_e2e import build_toy_project, play_rounds

REPO = Path(__file__).resolve().parents[1]
DVC = REPO / ".venv" / "bin" / "dvc"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0",
       "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def run(cmd: list[str | Path], cwd: Path) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_dvc_config_is_local_and_offline(repo: Path) -> None:
    cfg = (repo / ".dvc" / "config").read_text()
    assert "remote = local" in cfg and "url = ../../activepam-dvc-remote" in cfg
    assert "analytics = false" in cfg
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert {"demo", "detect", "testset", "baseline", "export", "round"} <= set(stages)
    assert stages["round"]["foreach"] == "${rounds.plan}"


@pytest.mark.slow
@pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="needs git and dvc")
def test_push_clone_pull_restores_labels_and_models(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    run(["git", "init", "-q", "-b", "main"], work)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, work / name)
    shutil.copytree(REPO / "src", work / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "workflow", work / "workflow")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["raw_dir"] = "data/raw/demo"
    plan = params["rounds"]["plan"]
    params["rounds"]["plan"] = {k: v for k, v in plan.items() if k in ("00", "01")}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([DVC, "init", "-q"], work)
    shutil.copy(REPO / ".dvc" / "config", work / ".dvc" / "config")

    p = build_toy_project(work, raw_name="demo")
    monkeypatch.chdir(work)
    play_rounds(work, p, rounds=("00", "01"), n=12, test_size=15)
    monkeypatch.chdir(tmp_path)

    run([DVC, "commit", "-f", "-q"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-q", "-m", "round 1"], work)
    run(["git", "tag", "round-1"], work)
    run([DVC, "push", "-q"], work)
    assert (tmp_path / "activepam-dvc-remote" / "files" / "md5").is_dir()
    status = json.loads(run([DVC, "status", "--json"], work) or "{}")
    assert status == {}

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--branch", "round-1", str(work), str(clone)], tmp_path)
    assert not (clone / "data/labels/round_00.csv").exists()  # labels are in DVC, not git
    run([DVC, "pull", "-q"], clone)
    tracked = ["data/labels/round_00.csv", "data/labels/round_01.csv", "data/labels/test.csv",
               "results/rounds/round_00/model.joblib", "results/rounds/round_01/model.joblib",
               "results/rounds/round_01/model.json", "results/rounds/round_01/metrics.json",
               "results/rounds/round_01/segments_scored.parquet",
               "results/rounds/round_01/annotation/manifest.csv",
               "results/detect/embeddings.parquet"]
    for rel in tracked:
        assert (clone / rel).read_bytes() == (work / rel).read_bytes(), rel
    assert json.loads(run([DVC, "status", "--json"], clone) or "{}") == {}
    metrics = run([DVC, "metrics", "show", "--json"], clone)
    assert "macro_ap" in metrics
