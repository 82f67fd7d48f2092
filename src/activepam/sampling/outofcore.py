"""Bounded-memory sampling of very large segment tables (:func:`outofcore_sample`).

Pool filters, score, strata, allocation and each stratum's top candidates in DuckDB (spilling
to disk), embeddings fetched for the candidates only, pruned by partition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from activepam.sampling.segments import PathLike, SampleInputError, parquet_columns

log = logging.getLogger(__name__)

#: score expressions of :func:`outofcore_sample` (higher = first), as in activepam.sampling.scores
_SQL_SCORES = {
    "max_entropy": "max_binary_entropy::DOUBLE",
    "mean_entropy": "mean_binary_entropy::DOUBLE",
    "lowest_confidence": "1.0 - top1_confidence::DOUBLE",
    "margin": "1.0 - margin::DOUBLE",
    "random": "hash(segment_id || ':r{seed}')::DOUBLE / 18446744073709551615.0",
}
#: stratum keys of :func:`outofcore_sample` -> column (diel is computed from lat/lon/time)
_SQL_KEYS = {
    "site": "site",
    "country": "country",
    "habitat": "habitat",
    "device": "device_id",
    "species": "top1_species",
    "diel": None,
    "month": "month(segment_time AT TIME ZONE 'UTC')::VARCHAR",
    "hour": "hour(segment_time AT TIME ZONE 'UTC')::VARCHAR",
}


def _sql_str(values: Iterable[Any]) -> str:
    return "[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + "]"


def _outofcore_where(spec: Mapping[str, Any]) -> list[str]:
    """SQL conditions of the pool filters (unsupported ones raise, naming the key)."""
    pool = spec["pool"]
    conds = []
    for key, col in (
        ("sites", "site"),
        ("countries", "country"),
        ("habitats", "habitat"),
        ("devices", "device_id"),
        ("species", "top1_species"),
    ):
        if pool.get(key) is not None:
            conds.append(f"{col} IN (SELECT unnest({_sql_str(pool[key])}))")
    if pool.get("exclude_species") is not None:
        conds.append(f"top1_species NOT IN (SELECT unnest({_sql_str(pool['exclude_species'])}))")
    if pool.get("min_confidence") is not None:
        conds.append(f"top1_confidence >= {float(pool['min_confidence'])}")
    if pool.get("max_confidence") is not None:
        conds.append(f"top1_confidence <= {float(pool['max_confidence'])}")
    for key, op in (("date_from", ">="), ("date_to", "<=")):
        if pool.get(key):
            ts = pd.Timestamp(pool[key])
            ts = ts.tz_localize("UTC") if ts.tz is None else ts
            if key == "date_to" and len(str(pool[key])) <= 10:
                ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
            conds.append(f"segment_time {op} '{ts.isoformat()}'::TIMESTAMPTZ")
    for key in ("months", "min_segments"):
        if pool.get(key):
            raise SampleInputError(
                f"strategy {spec['name']!r}: pool.{key} is not supported by the out-of-core sampler"
            )
    return conds


def outofcore_sample(
    segments: PathLike,
    strategy: Mapping[str, Any] | str,
    n: int | None = None,
    seed: int | None = None,
    embeddings: PathLike | None = None,
    labelled: Iterable[str] = (),
    memory_limit: str = "2GB",
    temp_dir: PathLike | None = None,
    threads: int | None = None,
    stats: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Bounded-memory sampling of segment units over a segments Parquet of any size.

    DuckDB (``memory_limit``, spilling to ``temp_dir``) runs, over all rows: labelled
    exclusion, the pool filters, the score (non-finite scores leave the pool), stratum sizes
    (diel computed once per unique site coordinate x ``diel_resolution_s`` step with
    :func:`activepam.core.strata.diel_period`), then :func:`activepam.core.strata.allocate` on
    those sizes and each stratum's ``diversify.candidates`` x quota best-scored segments (a
    streaming top-n aggregate, ``max_by``).
    Only the candidates reach pandas. ``diversify.method`` none takes the top quota; kmeans
    fetches the candidates' embeddings from a store folder (``embeddings``, pruned by each
    candidate's device/month partition and row-group statistics; no id scan), PCA-reduces them
    together and keeps the most uncertain unit per k-means cluster
    (:mod:`activepam.sampling.diversify`).
    Ties are broken by a seeded hash of the segment id (the in-memory sampler uses a seeded
    random draw per row, so exact ties may resolve differently). Supported: segment units,
    scores max_entropy, mean_entropy, lowest_confidence, margin, random; strata site, country,
    habitat, device, species, diel, month, hour; allocation equal or proportional.
    ``stats`` (a dict) receives timings and counts.
    """
    import time

    import duckdb

    from activepam.core.strata import allocate, diel_period
    from activepam.sampling import diversify as dv
    from activepam.sampling.strategies import StrategyError, resolve_strategy

    spec = resolve_strategy(strategy)
    n = int(spec["n"] if n is None else n)
    seed = int(spec["seed"] if seed is None else seed)
    stats = {} if stats is None else stats
    name = spec["name"]
    method = spec["score"]["method"]
    if spec["unit"] != "segment" or spec["design"] != "standard":
        raise StrategyError(
            f"strategy {name!r}: the out-of-core sampler takes segment units of the standard design"
        )
    if method not in _SQL_SCORES:
        raise StrategyError(
            f"strategy {name!r}: score.method {method} is not supported out of "
            f"core (use one of {', '.join(_SQL_SCORES)})"
        )
    bad = [k for k in spec["strata"] if k not in _SQL_KEYS]
    if bad:
        raise StrategyError(f"strategy {name!r}: strata {bad} not supported out of core")
    if spec["allocation"] not in ("equal", "proportional"):
        raise StrategyError(
            f"strategy {name!r}: allocation {spec['allocation']} not supported out of core"
        )
    div = spec["diversify"]
    if div["method"] not in ("none", "kmeans"):
        raise StrategyError(
            f"strategy {name!r}: diversify.method {div['method']} not supported out of core"
        )
    if div["method"] == "kmeans" and embeddings is None:
        raise StrategyError(f"strategy {name!r}: diversify.method=kmeans needs embeddings")
    columns = parquet_columns(segments)
    opts = spec["strata_options"]
    keys = list(spec["strata"])
    score_sql = _SQL_SCORES[method].replace("{seed}", str(seed))
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "preserve_insertion_order": False,
    }
    if temp_dir is not None:
        config["temp_directory"] = str(temp_dir)
    if threads:
        config["threads"] = int(threads)
    con = duckdb.connect(config=config)
    clock = time.perf_counter()
    try:
        con.execute("SET TimeZone = 'UTC'")
        where = _outofcore_where(spec)
        lab = [str(x) for x in labelled]
        if lab:
            con.register("labelled_ids", pa.table({"id": pa.array(lab, pa.string())}))
            where.append("segment_id NOT IN (SELECT id FROM labelled_ids)")
            if "recording_id" in columns:
                where.append("recording_id NOT IN (SELECT id FROM labelled_ids)")
        where.append("isfinite(score)")
        key_cols = {k: (_SQL_KEYS[k] or "") for k in keys}
        res = float(max(float(opts["diel_resolution_s"]), 1.0))
        sel = [f"{score_sql} AS score"]
        group = []
        for k, expr in key_cols.items():
            if k == "diel":
                tb = f"round_even(floor(epoch_us(segment_time) / 1000000) / {res}, 0)::BIGINT"
                sel += ["lat::DOUBLE AS _lat", "lon::DOUBLE AS _lon", f"{tb} AS _tb"]
                group += ["_lat", "_lon", "_tb"]
            else:
                sel.append(f"coalesce(({expr})::VARCHAR, 'unknown') AS \"k_{k}\"")
                group.append(f'"k_{k}"')
        src = "'" + str(segments).replace("'", "''") + "'"
        con.execute(
            f"CREATE VIEW pool AS SELECT * FROM (SELECT *, {', '.join(sel)} FROM "
            f"read_parquet({src})) WHERE " + " AND ".join(where)
        )
        gsql = ", ".join(group) if group else "1"
        cells = (
            con.sql(f"SELECT {gsql}, count(*) AS n FROM pool GROUP BY ALL").df()
            if group
            else con.sql("SELECT count(*) AS n FROM pool").df()
        )
        stats["cells"] = len(cells)
        stats["pool_rows"] = int(cells["n"].sum())
        stats["scan1_s"] = round(time.perf_counter() - clock, 2)
        # stratum of every cell (diel from the cell's coordinates and time step); labels are
        # built per distinct combination only (cells can be millions: sites x time steps)
        combined = np.zeros(len(cells), dtype=np.int64)
        radix: list[list[str]] = []
        for k in keys:
            if k == "diel":
                d = diel_period(
                    cells["_lat"].to_numpy(float),
                    cells["_lon"].to_numpy(float),
                    cells["_tb"].to_numpy(float) * res,
                    opts["twilight_low"],
                    opts["twilight_high"],
                    res,
                )
                c = np.asarray(d.codes, dtype=np.int64)
                values = [str(v) for v in d.categories] + ["unknown"]
                c = np.where(c < 0, len(values) - 1, c)
            else:
                c, uniq = pd.factorize(cells[f"k_{k}"].astype(str), sort=False)
                values = [str(v) for v in uniq]
            combined = combined * len(values) + c
            radix.append(values)
        uniq_comb, inverse = np.unique(combined, return_inverse=True)
        raw_labels = []
        for u in uniq_comb:
            digits = []
            for values in reversed(radix):
                digits.append(values[int(u % len(values))])
                u //= len(values)
            raw_labels.append(
                "|".join(f"{k}={v}" for k, v in zip(keys, reversed(digits))) if keys else "all"
            )
        order = np.argsort(raw_labels, kind="stable")  # sorted by label, as build_strata
        remap = np.empty(len(order), dtype=np.int64)
        remap[order] = np.arange(len(order))
        labels = np.asarray(raw_labels, dtype=object)[order]
        code = remap[inverse.ravel()]
        sizes = np.bincount(code.ravel(), weights=cells["n"].to_numpy(), minlength=len(labels))
        sizes = sizes.astype(np.int64)
        weights = sizes.astype(np.float64) if spec["allocation"] == "proportional" else None
        quota = allocate(sizes, n, weights, seed=seed)
        m = (
            np.where(
                quota > 0, np.maximum(quota, np.ceil(float(div["candidates"] or 0) * quota)), 0
            ).astype(np.int64)
            if div["method"] != "none"
            else quota
        )
        if div["method"] != "none" and not div["candidates"]:
            m = np.where(quota > 0, sizes, 0)
        stats["strata"] = int((sizes > 0).sum())
        if group:
            cmap = cells[[c.strip('"') for c in group]].assign(_s=code.ravel().astype(np.int64))
            cmap = cmap[m[cmap["_s"].to_numpy()] > 0]
            con.register("cellmap", cmap)
            join = f"JOIN cellmap USING ({', '.join(group)})"
        else:
            join = "CROSS JOIN (SELECT 0::BIGINT AS _s) cellmap"
        want = [
            c
            for c in (
                "segment_id",
                "recording_id",
                "path",
                "start_s",
                "end_s",
                "top1_species",
                "top1_confidence",
                "device_id",
                "site",
            )
            if c in columns
        ]
        month = (
            "strftime(start_time AT TIME ZONE 'UTC', '%Y-%m') AS _month"
            if "start_time" in columns
            else "NULL AS _month"
        )
        # each stratum's best m: a streaming top-n aggregate (max_by keeps a heap of m_max per
        # stratum; ~6x faster than a window over all rows and memory bounded by strata x m)
        m_max = int(max(int(m.max()) if len(m) else 0, 1))
        fields = ", ".join(f"{c} := {c}" for c in want)
        tie = f"hash(segment_id || ':{seed}')"
        cand = con.sql(
            f"SELECT _s, unnest(x) FROM (SELECT _s, unnest(max_by(struct_pack({fields}, "
            f"score := score, _month := {month.split(' AS ')[0]}, _h := {tie}), "
            f"struct_pack(s := score, h := 18446744073709551615 - {tie}), {m_max})) AS x "
            f"FROM pool {join} GROUP BY _s)"
        ).df()
        cand = cand.sort_values(
            ["_s", "score", "_h"], ascending=[True, False, True], kind="stable"
        ).reset_index(drop=True)
        cand["_rn"] = cand.groupby("_s").cumcount() + 1
        cand = cand[cand["_rn"].to_numpy() <= m[cand["_s"].to_numpy()]]
        cand = cand.drop(columns="_h").reset_index(drop=True)
        stats["candidates"] = len(cand)
        stats["scan2_s"] = round(time.perf_counter() - clock - stats["scan1_s"], 2)
    finally:
        con.close()
    chosen = []
    if div["method"] == "kmeans" and len(cand):
        from threadpoolctl import threadpool_limits

        from activepam.core.store import PartitionedEmbeddings

        t_fetch = time.perf_counter()
        assert embeddings is not None  # kmeans without embeddings raised above
        source = PartitionedEmbeddings(embeddings)
        dev = cand["device_id"] if "device_id" in cand else pd.Series([None] * len(cand))
        matrix = source.fetch(
            cand["segment_id"].astype(str).tolist(),
            "segment_id",
            partitions=list(zip(dev, cand["_month"])),
        )
        stats["fetch_s"] = round(time.perf_counter() - t_fetch, 2)
        stats["fetch"] = source.last.as_dict()
        ok = np.isfinite(matrix).all(axis=1)
        if not ok.all():
            log.warning(
                "%s: %d of %d candidates have no embedding and leave the pool",
                embeddings,
                int((~ok).sum()),
                len(ok),
            )
            cand, matrix = cand[ok].reset_index(drop=True), matrix[ok]
        with threadpool_limits(limits=1):
            x_all = dv.prepare_embeddings(matrix, div["normalize"], div["pca"], seed)
            for s, rows in cand.groupby("_s", sort=True).indices.items():
                q = int(quota[s])
                picked = dv.kmeans_select(x_all[rows], q, div["k"], seed)
                chosen.append(
                    pd.DataFrame(
                        {
                            "_row": rows[picked.pos],
                            "cluster": picked.cluster,
                            "reason": picked.reason,
                            "_order": np.arange(len(picked.pos)),
                        }
                    )
                )
    else:
        for s, rows in cand.groupby("_s", sort=True).indices.items():
            rows = rows[: int(quota[s])]
            chosen.append(
                pd.DataFrame(
                    {
                        "_row": rows,
                        "cluster": -1,
                        "reason": f"top score ({method})",
                        "_order": np.arange(len(rows)),
                    }
                )
            )
    if not chosen:
        return pd.DataFrame(
            columns=[
                "unit_id",
                "unit_type",
                "score",
                "cluster",
                "stratum",
                "reason",
                "rank",
                "strategy",
            ]
        )
    pick = pd.concat(chosen, ignore_index=True)
    out = cand.iloc[pick["_row"].to_numpy()].reset_index(drop=True)
    out["cluster"] = pick["cluster"].to_numpy()
    s_of = out["_s"].to_numpy()
    out["stratum"] = labels[s_of]
    out["reason"] = [
        f"stratum {labels[s]} quota {quota[s]}/{sizes[s]} ({spec['allocation']}): {r}"
        if keys
        else r
        for s, r in zip(s_of, pick["reason"])
    ]
    out["_order"] = pick["_order"].to_numpy()
    out = out.sort_values(
        ["_order", "score", "_rn"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
    out.insert(0, "unit_id", out["segment_id"].astype(str))
    out.insert(1, "unit_type", "segment")
    out["rank"] = np.arange(1, len(out) + 1)
    out["strategy"] = name
    stats["seconds"] = round(time.perf_counter() - clock, 2)
    return out.drop(columns=["_s", "_rn", "_order", "_month"])


def sample_to_csv(
    segments: PathLike,
    strategy: Mapping[str, Any] | str,
    out: PathLike,
    params: Mapping[str, Any] | None = None,
    n: int | None = None,
    seed: int | None = None,
    embeddings: PathLike | None = None,
    labelled: PathLike | None = None,
    memory_limit: str = "2GB",
) -> int:
    """``activepam sample --out-of-core``: :func:`outofcore_sample` with the strategy resolved
    against ``params`` (a strategy library) and ``labelled`` read from a CSV's ``unit_id``
    column; writes ``out`` (CSV) atomically and returns the number of units chosen."""
    from activepam.core.io import write_csv
    from activepam.sampling.strategies import resolve_strategy

    spec = resolve_strategy(strategy, params)
    done: list[str] = []
    if labelled is not None:
        done = pd.read_csv(labelled, dtype={"unit_id": str})["unit_id"].dropna().tolist()
    result = outofcore_sample(
        segments,
        spec,
        n=n,
        seed=seed,
        embeddings=embeddings,
        labelled=done,
        memory_limit=memory_limit,
    )
    write_csv(result, out, stage="sample")
    return len(result)
