"""The notebooks execute top to bottom (nbclient, kernel python3 of the project venv).

* against small outputs made here (a few synthetic detections + a tiny simulation), always;
* against the real ``results/`` of an end-to-end run, when they exist (skipped otherwise).

The kernel spec ``python3`` starts ``python -m ipykernel_launcher``; jupyter_client replaces
``python`` by the interpreter running the tests, so the kernel uses the project venv.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from test_simulate import CFG, tiny_dataset  # noqa: E402

from activepam.simulation.config import SimConfig  # noqa: E402
from activepam.simulation.loop import full_supervision, run_simulation  # noqa: E402
from activepam.simulation.steps import divergence_to_files, gather_to_files, stratified_to_files  # noqa: E402
from activepam.simulation.strategies import resolve_strategy  # noqa: E402
from activepam.simulation.stratified import stratified_analysis  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NB_DETECTIONS = NOTEBOOKS / "01_explore_detections.ipynb"
NB_STRATEGIES = NOTEBOOKS / "02_compare_strategies.ipynb"


def run_notebook(
    path: Path, results: Path, monkeypatch: pytest.MonkeyPatch
) -> nbformat.NotebookNode:
    """Execute a notebook with ``ACTIVEPAM_RESULTS=results`` from the notebooks folder."""
    monkeypatch.setenv("ACTIVEPAM_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return nb


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        o.get("ename", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.fixture(scope="module")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic detections and a tiny simulation (2 strategies x 2 seeds) in results layout."""
    root = tmp_path_factory.mktemp("results")
    ds = tiny_dataset()
    rng = np.random.default_rng(0)
    seg = ds.units.rename(columns={"unit_id": "segment_id"}).copy()
    seg["country"] = seg["site"].map({"A": "NO", "B": "DK", "C": "FR", "D": "ES"})
    seg["top1_species"] = [ds.species[int(np.argmax(y + rng.random(len(y)) * 0.5))] for y in ds.Y]
    seg["top1_confidence"] = rng.random(len(seg))
    seg["max_binary_entropy"] = rng.random(len(seg))
    seg["mean_binary_entropy"] = seg["max_binary_entropy"] / 3
    seg["margin"] = rng.random(len(seg))
    (root / "detect").mkdir()
    seg.to_parquet(root / "detect" / "segments.parquet")
    simdir = root / "simulation"
    runs = []
    for name in ("random_files", "topk_entropy_files"):
        for seed in (0, 1):
            res = run_simulation(ds, resolve_strategy(name), seed, CFG)
            path = simdir / "runs" / name / f"{seed}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            res.to_parquet(path)
            runs.append(str(path))
    full_supervision(ds, CFG, seeds=[0, 1]).to_parquet(simdir / "full_supervision.parquet")
    params = {
        "metric": "macro_ap",
        "budget_axis": "recording_fraction",
        "claim": {"strategy": "topk_entropy_files", "baseline": "random_files", "max_budget": 0.5},
    }
    out = {
        k: str(simdir / f"{k}.{e}")
        for k, e in (
            ("results", "parquet"),
            ("results_csv", "csv"),
            ("per_run", "csv"),
            ("summary", "csv"),
            ("claims", "json"),
        )
    }
    gather_to_files(runs, str(simdir / "full_supervision.parquet"), params, out)
    cfg = SimConfig(pca_dims=0, strata=("site",))
    sim_params = {
        "pca_dims": 0,
        "stratified": {"loso_keys": ["site"], "mi_keys": ["site", "lat_band"], "permutations": 2},
    }
    (simdir / "stratified").mkdir()
    stratified_to_files(
        ds,
        sim_params,
        {k: str(simdir / "stratified" / f"{k}.parquet") for k in ("loso", "mi", "jsd")},
    )
    (simdir / "divergence").mkdir()
    tables = stratified_analysis(ds, cfg, ["site"], ["site"], setting="t0", n_permutations=2)
    tables["loso"].to_parquet(simdir / "divergence" / "t0_loso.parquet")
    tables["mi"].to_parquet(simdir / "divergence" / "t0_mi.parquet")
    divergence_to_files(
        [str(simdir / "divergence" / "t0_loso.parquet")],
        [str(simdir / "divergence" / "t0_mi.parquet")],
        {
            "loso": str(simdir / "divergence" / "loso.parquet"),
            "mi": str(simdir / "divergence" / "mi.parquet"),
            "summary": str(simdir / "divergence" / "summary.json"),
        },
    )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("notebook", [NB_DETECTIONS, NB_STRATEGIES], ids=lambda p: p.stem)
def test_notebook_runs_on_small_outputs(
    notebook: Path, small_results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = run_notebook(notebook, small_results, monkeypatch)
    assert not _errors(nb)
    images = sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert images >= 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "notebook,needs",
    [
        (NB_DETECTIONS, "detect/segments.parquet"),
        (NB_STRATEGIES, "simulation/claims.json"),
    ],
    ids=["01_explore_detections", "02_compare_strategies"],
)
def test_notebook_runs_on_real_results(
    notebook: Path, needs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = Path(os.environ.get("ACTIVEPAM_RESULTS", REPO / "results"))
    if not (results / needs).exists():
        pytest.skip(f"no end-to-end outputs: {results / needs} (run `make run` first)")
    nb = run_notebook(notebook, results, monkeypatch)
    assert not _errors(nb)


def test_notebooks_are_stored_without_outputs() -> None:
    for path in (NB_DETECTIONS, NB_STRATEGIES):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        assert nb.metadata["kernelspec"]["name"] == "python3"
