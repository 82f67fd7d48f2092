"""Figures of a sample (activepam.sampling.figures) from small synthetic files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_sampling import make_segments

from activepam.sampling.figures import (
    composition_figure,
    composition_table,
    plot_sample_figures,
    uncertainty_figure,
)
from activepam.sampling.files import run_sampling


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("plots")
    df, emb = make_segments(n_rec=30, seg_per_rec=10, seed=2)
    seg, embp = tmp / "segments.parquet", tmp / "embeddings.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), seg)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])
    pq.write_table(
        pa.table(
            {"segment_id": df["segment_id"], "recording_id": df["recording_id"], "embedding": arr}
        ),
        embp,
    )
    return {"dir": tmp, "segments": seg, "embeddings": embp}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["stratified_kmeans_entropy", "topk_entropy_files", "random"])
def test_plot_sample_figures(files: dict[str, Path], strategy: str) -> None:
    out = files["dir"] / strategy
    run_sampling(
        files["segments"],
        strategy,
        n=12,
        embeddings=files["embeddings"],
        out=out / "sample.csv",
        progress=False,
    )
    paths = plot_sample_figures(
        out / "sample.csv",
        files["segments"],
        strategy,
        out / "figures",
        embeddings=files["embeddings"],
        map_points=200,
    )
    assert [Path(p).name for p in paths] == [
        "composition.png",
        "uncertainty.png",
        "embedding_map.png",
    ]
    for p in paths:
        assert Path(p).stat().st_size > 5000


def test_composition_table_shares_and_other() -> None:
    pool = pd.Series(list("aaaabbbcc") + [f"x{i}" for i in range(5)])
    samp = pd.Series(list("abc"))
    table = composition_table(pool, samp, top=4)
    assert list(table.index[:3]) == ["a", "b", "c"] and table.index[3] == "other (5)"
    assert table["pool"].sum() == pytest.approx(1) and table["sample"].sum() == pytest.approx(1)


def test_figures_handle_empty_input() -> None:
    empty = pd.Series([], dtype=str)
    assert composition_figure(empty, empty, empty, empty) is not None
    frame = pd.DataFrame({"score": [np.nan], "top1_confidence": [np.nan]})
    assert uncertainty_figure(frame, frame) is not None
