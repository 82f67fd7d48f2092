"""Parameter validation: a misspelt section is refused, naming the key, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from activepam.core.config import ConfigError, load_params, validate_params

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    assert {"data", "rounds", "simulation", "sampling"} <= set(params)


def test_misspelt_section_is_named_with_suggestion() -> None:
    params = load_params(ROOT / "params.yaml")
    params["simulaton"] = params.pop("simulation")
    with pytest.raises(ConfigError) as err:
        validate_params(params)
    msg = str(err.value)
    assert "simulaton: unknown key (did you mean 'simulation'?)" in msg
    assert "simulation: " in msg or "'simulation' is a required property" in msg


def test_missing_section_is_an_error() -> None:
    params = load_params(ROOT / "params.yaml")
    del params["train"]
    with pytest.raises(ConfigError, match="'train' is a required property"):
        validate_params(params)


@pytest.mark.slow
def test_misspelt_section_refused_by_workflow_before_any_job(tmp_path: Path) -> None:
    overlay = tmp_path / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"simulaton": {"seeds": [0]}}))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "-n", "--cores", "1", "--configfile", str(overlay)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "simulaton: unknown key (did you mean 'simulation'?)" in out
    assert "Job stats" not in out  # refused while building the DAG: no job was planned
