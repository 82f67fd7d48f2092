"""Query by example: the segments nearest to one or more examples, over the embedding store.

An *example* is an existing segment id (``rec@12.0``) or an audio file (each of its 3 s BirdNET
windows is embedded; the example's query vector is the mean of the L2-normalised window
embeddings). Similarity is cosine on BirdNET V2.4 embeddings; with several examples a segment's
score is its highest similarity to any of them (``nearest_example`` says which), as in
perch-hoplite's ``db.search`` and BirdNET-Analyzer's search. The examples' own segments are left
out of the hits.

*Store*: an embeddings Parquet file, or a detection folder — ``shards/*/embeddings.parquet``
when present (the workflow's per-shard outputs), else ``embeddings.parquet``. Metadata filters
(``site=A``, ``country=NO,ES``) read the ``segments.parquet`` beside each embeddings file.

*Exact search* (:func:`exact_search`) streams each file in record batches and keeps a running
top-N, so memory is bounded by the batch size and N, whatever the number of segments.

*Approximate search* uses a usearch HNSW index per embeddings file (``embeddings.usearch`` with
``embeddings.usearch.keys.parquet`` mapping its integer keys to segment ids and
``embeddings.usearch.json`` recording the source's size and mtime). :func:`update_index` builds
it, or brings it up to date incrementally: only segments added since are embedded into the
index, and removed ones are taken out. :func:`search` uses the indexes when every file has a
fresh one (unless ``exact=True``), asks each for ``oversample x N`` candidates so that
metadata filters still leave N, and falls back to the exact scan for a file where they do not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activepam.core.embeddings import embedding_matrix
from activepam.core.io import atomic_path, write_csv, write_json, write_parquet

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings.parquet"
INDEX_SUFFIX = ".usearch"
HIT_COLUMNS: tuple[str, ...] = (
    "rank",
    "segment_id",
    "recording_id",
    "start_s",
    "similarity",
    "nearest_example",
    "method",
)


class SearchError(ValueError):
    """Bad examples, store or filter; the message names the one at fault."""


# --------------------------------------------------------------------------- store


def store_files(store: str | Path) -> list[Path]:
    """Embeddings files of a store (see the module docstring), sorted."""
    store = Path(store)
    if store.is_file():
        return [store]
    if not store.is_dir():
        raise SearchError(f"{store}: no such embeddings file or detection folder")
    shards = sorted(store.glob(f"shards/*/{EMBEDDINGS}"))
    if shards:
        return shards
    if (store / EMBEDDINGS).is_file():
        return [store / EMBEDDINGS]
    raise SearchError(f"{store}: no {EMBEDDINGS} (nor shards/*/{EMBEDDINGS}) in this folder")


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norm > 0, norm, 1.0)


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``["site=A", "country=NO,ES"]`` -> ``{"site": ["A"], "country": ["NO", "ES"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SearchError(f"--filter {item!r}: expected COLUMN=VALUE[,VALUE...]")
        out.setdefault(key.strip(), []).extend(v.strip() for v in value.split(",") if v.strip())
    return out


def allowed_segments(
    embeddings_file: Path, filters: Mapping[str, Sequence[str]]
) -> pa.Array | None:
    """Segment ids passing ``filters`` (None: no filter), from the sibling segments table."""
    if not filters:
        return None
    seg = embeddings_file.with_name("segments.parquet")
    if not seg.is_file():
        raise SearchError(f"{embeddings_file}: filters need {seg.name} beside it")
    schema = pq.read_schema(seg)
    missing = [k for k in filters if k not in schema.names]
    if missing:
        raise SearchError(
            f"--filter: no column {', '.join(missing)} in {seg} (columns: "
            f"{', '.join(schema.names)})"
        )
    table = pq.read_table(seg, columns=["segment_id", *filters])
    mask = None
    for key, values in filters.items():
        col = pc.cast(table[key], pa.string())
        m = pc.is_in(col, value_set=pa.array(list(values), pa.string()))
        mask = m if mask is None else pc.and_(mask, m)
    return table.filter(mask)["segment_id"].combine_chunks()


# --------------------------------------------------------------------------- examples


@dataclass
class Queries:
    names: list[str]
    vectors: np.ndarray  # [q, d], unit rows
    exclude: set[str]


def _embed_audio(path: Path, model: Any | None) -> np.ndarray:
    from activepam.core.io import read_audio
    from activepam.detection import birdnet as bn
    from activepam.detection.detect import window_starts

    audio, _ = read_audio(path, target_sr=bn.SAMPLE_RATE)
    starts = window_starts(len(audio), bn.WINDOW_SAMPLES)
    if starts.size == 0:
        raise SearchError(f"{path}: shorter than BirdNET's minimum window ({bn.MIN_LEN_S} s)")
    windows = np.zeros((starts.size, bn.WINDOW_SAMPLES), dtype=np.float32)
    for i, s in enumerate(starts):
        piece = audio[s : s + bn.WINDOW_SAMPLES]
        windows[i, : piece.size] = piece
    model = model or bn.BirdNET(threads=2)
    _, emb = model.predict(windows)
    return emb


def load_queries(
    examples: Sequence[str], files: Sequence[Path], model: Any | None = None
) -> Queries:
    """Query vectors of ``examples``: audio files (embedded with BirdNET) or segment ids
    (looked up in the store). Raises naming every example that is neither."""
    if not examples:
        raise SearchError("give at least one --example (an audio file or a segment id)")
    vectors: dict[str, np.ndarray] = {}
    wanted = []
    for ex in examples:
        if Path(ex).is_file():
            vectors[ex] = _unit_rows(_embed_audio(Path(ex), model)).mean(axis=0)
        else:
            wanted.append(ex)
    if wanted:
        left = set(wanted)
        for f in files:
            if not left:
                break
            t = pq.read_table(
                f, columns=["segment_id", "embedding"], filters=[("segment_id", "in", sorted(left))]
            )
            ids = t["segment_id"].to_pylist()
            if ids:
                m = _unit_rows(embedding_matrix(t["embedding"], f, SearchError))
                for sid, v in zip(ids, m):
                    vectors[sid] = v
                left -= set(ids)
        if left:
            raise SearchError(
                f"example(s) neither an audio file nor a segment id of the store: "
                f"{', '.join(sorted(left))}"
            )
    names = list(examples)
    q = _unit_rows(np.stack([vectors[n] for n in names]))
    return Queries(names, q, set(wanted))


# --------------------------------------------------------------------------- exact search


class _TopN:
    """Running top-N of (similarity, segment id, example index) over batches."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sim = np.zeros(0, dtype=np.float32)
        self.rows: list[dict[str, Any]] = []

    def push(self, sim: np.ndarray, row: Callable[[int], dict[str, Any]]) -> None:
        """Merge a batch: ``sim`` per candidate, ``row(i)`` builds candidate i's row (called for
        the batch's best ``n`` only, so a large batch costs no per-row objects)."""
        if sim.size == 0:
            return
        k = min(self.n, sim.size)
        take = np.argpartition(-sim, k - 1)[:k] if sim.size > k else np.arange(sim.size)
        both = np.concatenate([self.sim, sim[take]])
        merged = self.rows + [row(int(i)) for i in take]
        keep = np.argsort(-both, kind="stable")[: self.n]
        self.sim = both[keep]
        self.rows = [merged[i] for i in keep]


def _scan_file(f: Path, q: Queries, top: _TopN, allowed: pa.Array | None, batch_rows: int) -> int:
    pf = pq.ParquetFile(f)
    seen = 0
    for batch in pf.iter_batches(
        batch_size=batch_rows, columns=["segment_id", "recording_id", "start_s", "embedding"]
    ):
        seen += batch.num_rows
        if allowed is not None:
            batch = batch.filter(pc.is_in(batch["segment_id"], value_set=allowed))
        if q.exclude:
            batch = batch.filter(
                pc.invert(
                    pc.is_in(
                        batch["segment_id"], value_set=pa.array(sorted(q.exclude), pa.string())
                    )
                )
            )
        if batch.num_rows == 0:
            continue
        sims = _unit_rows(embedding_matrix(batch["embedding"], error=SearchError)) @ q.vectors.T
        best = sims.argmax(axis=1)
        score = sims[np.arange(sims.shape[0]), best]
        sid = batch["segment_id"].to_pylist()
        rid = batch["recording_id"].to_pylist()
        st = batch["start_s"].to_pylist()
        top.push(
            score,
            lambda i: {
                "segment_id": sid[i],
                "recording_id": rid[i],
                "start_s": st[i],
                "nearest_example": q.names[best[i]],
            },
        )
    return seen


def exact_search(
    files: Sequence[Path],
    q: Queries,
    k: int,
    filters: Mapping[str, Sequence[str]] | None = None,
    batch_rows: int = 65536,
) -> pd.DataFrame:
    """Streamed exact cosine search over ``files``: the ``k`` best segments."""
    top = _TopN(k)
    for f in files:
        _scan_file(f, q, top, allowed_segments(f, filters or {}), batch_rows)
    return _hits(top, "exact")


def _hits(top: _TopN, method: str) -> pd.DataFrame:
    df = pd.DataFrame(
        top.rows, columns=["segment_id", "recording_id", "start_s", "nearest_example"]
    )
    df.insert(3, "similarity", np.round(top.sim.astype(float), 6))
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df["method"] = method
    return df.reindex(columns=list(HIT_COLUMNS))


# --------------------------------------------------------------------------- index


def _index_paths(f: Path) -> tuple[Path, Path, Path]:
    base = f.with_suffix(INDEX_SUFFIX)
    return base, base.with_name(base.name + ".keys.parquet"), base.with_name(base.name + ".json")


def _signature(f: Path) -> dict[str, int]:
    st = f.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def index_is_fresh(f: Path) -> bool:
    idx, keys, meta = _index_paths(f)
    if not (idx.is_file() and keys.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("source") == _signature(f)
    except (OSError, ValueError):
        return False


def _usearch() -> Any:
    try:
        from usearch.index import Index
    except ImportError:  # pragma: no cover - usearch is in requirements.lock
        return None
    return Index


def update_index(f: Path, dtype: str = "f16", batch_rows: int = 65536) -> dict[str, Any]:
    """Build or incrementally update the usearch index of one embeddings file.

    Returns counts: ``added``, ``removed``, ``kept`` and ``action`` (built/updated/fresh)."""
    Index = _usearch()
    if Index is None:
        raise SearchError("usearch is not installed: approximate search is unavailable")
    idx_path, keys_path, meta_path = _index_paths(f)
    if index_is_fresh(f):
        return {"file": str(f), "action": "fresh", "added": 0, "removed": 0}
    ids = pq.read_table(f, columns=["segment_id"])["segment_id"].to_pylist()
    index, known = (
        None,
        pd.DataFrame({"key": pd.Series(dtype="int64"), "segment_id": pd.Series(dtype=str)}),
    )
    if idx_path.is_file() and keys_path.is_file():
        try:
            index = Index.restore(str(idx_path), view=False)
            known = pd.read_parquet(keys_path)
        except Exception as exc:  # noqa: BLE001 - a damaged index is rebuilt, never trusted
            log.warning("%s: unreadable index (%s); rebuilding", idx_path, exc)
            index = None
    current = set(ids)
    gone = known[~known["segment_id"].isin(current)]
    kept = known[known["segment_id"].isin(current)]
    new_ids = sorted(current - set(kept["segment_id"]))
    next_key = int(known["key"].max()) + 1 if len(known) else 0
    added_rows = []
    if new_ids:
        need = pa.array(new_ids, pa.string())
        for batch in pq.ParquetFile(f).iter_batches(
            batch_size=batch_rows, columns=["segment_id", "embedding"]
        ):
            batch = batch.filter(pc.is_in(batch["segment_id"], value_set=need))
            if batch.num_rows == 0:
                continue
            m = _unit_rows(embedding_matrix(batch["embedding"], error=SearchError))
            if index is None:
                index = Index(ndim=m.shape[1], metric="cos", dtype=dtype)
            keys = np.arange(next_key, next_key + m.shape[0], dtype=np.uint64)
            index.add(keys, m)
            added_rows.append(
                pd.DataFrame(
                    {"key": keys.astype("int64"), "segment_id": batch["segment_id"].to_pylist()}
                )
            )
            next_key += m.shape[0]
    if index is not None and len(gone):
        index.remove(gone["key"].to_numpy(dtype=np.uint64))
    if index is None:
        index = Index(ndim=1024, metric="cos", dtype=dtype)
    table = pd.concat([kept, *added_rows], ignore_index=True)
    with atomic_path(idx_path, stage="search") as tmp:
        index.save(str(tmp))
    write_parquet(table, keys_path, stage="search")
    write_json(
        {"source": _signature(f), "n": len(table), "dtype": dtype}, meta_path, stage="search"
    )
    action = "built" if not len(known) else "updated"
    return {
        "file": str(f),
        "action": action,
        "added": len(new_ids),
        "removed": len(gone),
        "kept": len(kept),
    }


def index_search(
    files: Sequence[Path],
    q: Queries,
    k: int,
    filters: Mapping[str, Sequence[str]] | None = None,
    oversample: int = 4,
    batch_rows: int = 65536,
) -> pd.DataFrame:
    """Approximate search through the per-file indexes (exact scan for a file whose filtered
    candidates fall short of ``k``)."""
    Index = _usearch()
    top = _TopN(k)
    method = "index"
    for f in files:
        idx_path, keys_path, _ = _index_paths(f)
        index = Index.restore(str(idx_path), view=True)
        keys = pd.read_parquet(keys_path).set_index("key")["segment_id"]
        allowed = allowed_segments(f, filters or {})
        allowed_set = None if allowed is None else set(allowed.to_pylist())
        want = min(len(index), k * oversample + len(q.exclude))
        if want == 0:
            continue
        matches = index.search(q.vectors, want)
        mk = np.atleast_2d(matches.keys)
        md = np.atleast_2d(matches.distances)
        best: dict[str, tuple[float, int]] = {}
        for qi in range(mk.shape[0]):
            for key, dist in zip(mk[qi], md[qi]):
                sid = keys.get(int(key))
                if sid is None or sid in q.exclude:
                    continue
                if allowed_set is not None and sid not in allowed_set:
                    continue
                sim = 1.0 - float(dist)
                if sid not in best or sim > best[sid][0]:
                    best[sid] = (sim, qi)
        if len(best) < min(k, len(index)) and (allowed_set is None or len(best) < len(allowed_set)):
            _scan_file(f, q, top, allowed, batch_rows)
            method = "index+exact"
            continue
        if not best:
            continue
        meta = pq.read_table(
            f,
            columns=["segment_id", "recording_id", "start_s"],
            filters=[("segment_id", "in", sorted(best))],
        ).to_pandas()
        meta = meta.set_index("segment_id")
        sids = list(best)
        top.push(
            np.array([best[s][0] for s in sids], dtype=np.float32),
            lambda i: {
                "segment_id": sids[i],
                "recording_id": meta.at[sids[i], "recording_id"],
                "start_s": meta.at[sids[i], "start_s"],
                "nearest_example": q.names[best[sids[i]][1]],
            },
        )
    return _hits(top, method)


def search(
    store: str | Path,
    examples: Sequence[str],
    k: int = 50,
    filters: Mapping[str, Sequence[str]] | None = None,
    exact: bool = False,
    model: Any | None = None,
) -> pd.DataFrame:
    """The ``k`` segments nearest to ``examples`` (:data:`HIT_COLUMNS`)."""
    if k < 1:
        raise SearchError(f"--k must be >= 1, got {k}")
    files = store_files(store)
    q = load_queries(examples, files, model)
    if not exact and _usearch() is not None and all(index_is_fresh(f) for f in files):
        return index_search(files, q, k, filters)
    return exact_search(files, q, k, filters)


# --------------------------------------------------------------------------- command


def build_indexes(store: str | Path) -> list[dict[str, Any]]:
    return [update_index(f) for f in store_files(store)]


def search_command(
    store: str | Path,
    examples: Sequence[str],
    k: int = 50,
    filters: Sequence[str] = (),
    exact: bool = False,
    build_index: bool = False,
    out: str | Path | None = None,
    figure: str | Path | None = None,
) -> int:
    """``activepam search``: optionally (re)build the indexes, then the ``k`` nearest segments
    to ``examples``, printed or written to ``out`` (CSV), with an optional ``figure``."""
    import sys

    try:
        if build_index:
            for r in build_indexes(store):
                print(
                    f"index {r['action']}: {r['file']} (+{r['added']} -{r['removed']})",
                    file=sys.stderr,
                )
            if not examples:
                return 0
        hits = search(store, list(examples), k, parse_filters(list(filters)), exact)
    except SearchError as exc:
        print(f"activepam search: {exc}", file=sys.stderr)
        return 2
    if figure:
        files = store_files(store)
        plot_hits(
            hits,
            files[0].with_name("segments.parquet")
            if len(files) == 1
            else Path(store) / "segments.parquet",
            list(examples),
            figure,
        )
    if out:
        write_csv(hits, out, stage="search")
        print(
            f"{len(hits)} hits ({hits['method'].iloc[0] if len(hits) else 'none'}) -> {out}",
            file=sys.stderr,
        )
    else:
        print(hits.to_string(index=False))
    return 0


# --------------------------------------------------------------------------- sampling score


def similarity_scores(
    segment_ids: pd.Series,
    source: Any,
    examples: Sequence[str],
    model: Any | None = None,
    batch_rows: int = 65536,
) -> np.ndarray:
    """Score ``similarity`` of the sampler: each segment's highest cosine similarity to the
    ``examples`` (segment ids of ``source`` or audio files); NaN for segments without an
    embedding and for the examples themselves (already known).

    ``source`` is an :class:`activepam.core.embeddings.EmbeddingSource`; a Parquet-backed one is
    streamed in record batches (memory bounded by ``batch_rows``)."""
    if not examples:
        raise SearchError(
            "score.examples: method similarity needs examples (segment ids or audio files)"
        )
    audio = [e for e in examples if Path(e).is_file()]
    ids = [e for e in examples if e not in audio]
    vecs = [_unit_rows(_embed_audio(Path(a), model)).mean(axis=0) for a in audio]
    if ids:
        have = source.available(pd.Series(ids), "segment_id")
        missing = [i for i, ok in zip(ids, have) if not ok]
        if missing:
            raise SearchError(
                f"score.examples: neither an audio file nor a segment with an "
                f"embedding: {', '.join(missing)}"
            )
        vecs.extend(_unit_rows(source.fetch(ids, "segment_id")))
    q = _unit_rows(np.stack(vecs))
    wanted = pd.Index(segment_ids.astype(str))
    out = np.full(len(wanted), np.nan)
    path = getattr(source, "path", None)
    if path is not None:
        for batch in pq.ParquetFile(path).iter_batches(
            batch_size=batch_rows, columns=["segment_id", "embedding"]
        ):
            rows = wanted.get_indexer(batch["segment_id"].to_pylist())
            ok = rows >= 0
            if ok.any():
                m = _unit_rows(embedding_matrix(batch["embedding"], error=SearchError))[ok]
                out[rows[ok]] = (m @ q.T).max(axis=1)
    else:
        have = source.available(segment_ids.astype(str), "segment_id")
        sel = np.flatnonzero(have)
        for lo in range(0, sel.size, batch_rows):
            part = sel[lo : lo + batch_rows]
            m = _unit_rows(source.fetch(wanted[part].tolist(), "segment_id"))
            out[part] = (m @ q.T).max(axis=1)
    out[wanted.isin(ids)] = np.nan
    return out


def plot_hits(
    hits: pd.DataFrame,
    segments: str | Path,
    examples: Sequence[str],
    out: str | Path,
    n: int = 8,
    max_hz: float = 12000.0,
) -> Path:
    """Spectrograms of the examples (segment ids) and the first ``n`` hits, with similarity:
    what an expert looks at to judge a search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from activepam.core.io import read_audio, save_figure

    seg = pq.read_table(segments, columns=["segment_id", "path", "start_s"]).to_pandas()
    seg = seg.set_index("segment_id")
    shown = [(e, "example", None) for e in examples if e in seg.index][:2]
    shown += [(r.segment_id, f"#{r.rank}", r.similarity) for r in hits.head(n).itertuples()]
    ncol = 5
    nrow = int(np.ceil(len(shown) / ncol)) or 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow), squeeze=False)
    cache: dict[str, tuple[np.ndarray, int]] = {}
    for ax, (sid, tag, sim) in zip(axes.flat, shown):
        path, start = seg.at[sid, "path"], float(seg.at[sid, "start_s"])
        if path not in cache:
            cache[path] = read_audio(path)
        audio, sr = cache[path]
        piece = audio[int(start * sr) : int((start + 3.0) * sr)]
        if piece.size > 512:
            ax.specgram(piece, NFFT=512, Fs=sr, noverlap=384, cmap="magma")
        ax.set_ylim(0, min(max_hz, sr / 2))
        ax.set_title(f"{tag} {sid}" + (f"\ncos {sim:.3f}" if sim is not None else ""), fontsize=6)
        ax.tick_params(labelsize=5)
        ax.set_xlabel("s", fontsize=6)
        ax.set_ylabel("Hz", fontsize=6)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out, stage="search", dpi=110)
