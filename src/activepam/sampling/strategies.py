"""Sampling strategies as data: defaults, presets, validation and resolution.

A strategy is a mapping (a ``sampling.strategies`` entry in params.yaml, a YAML file or a dict)::

    unit: segment | recording            # what an expert annotates
    pool: {min_confidence, max_confidence, species, exclude_species, sites, countries,
           habitats, devices, date_from, date_to, months, min_segments}
    score: {method: random | lowest_confidence | max_entropy | mean_entropy | margin | ratio
                    | index, index: TFSD, direction: high | low, transform: rank | value,
            threshold: null}
    aggregation: {method: topk | mean | median | max | mean_event, k: 10,
                  event_threshold: 0.5}  # recording units only
    diversify: {method: none | kmeans | ward | farthest_first | species_balanced | typiclust,
                k: null,
                candidates: 10, pca: null, normalize: false, subsample: 2000,  # or < 1
                min_per_species: 1, seed_with_labelled: true}
    strata: [site, diel]          # keys of activepam.core.strata.STRATUM_KEYS or units columns
    strata_options: {lat_band_width, lat_band_edges, seasons, twilight_low, twilight_high,
                     diel_resolution_s, confidence_bin_width}
    allocation: equal | proportional | divergence
    n: 100
    seed: 0
    reoffer_unsure: false                # rounds: units answered only "unsure" stay samplable
                                         # and go to another annotator
    design: standard | verification      # verification: n windows per score bin of each target
    verification: {species: null, top_species: 5, n_per_bin: null,   # species (null: the
                   quantiles: [0.5, 0.75, 0.9, 0.97], strata: [site]}  # commonest top-1 ones)
    base: <preset>                       # start from this preset, then override its keys
    description: one line

:func:`resolve_strategy` deep-merges a strategy over its ``base`` (or the preset of the same
name, or the defaults) and validates it, raising :class:`StrategyError` naming the bad key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from activepam.core.strata import DEFAULT_OPTIONS, STRATUM_KEYS
from activepam.core.uncertainty import AGGREGATIONS
from activepam.sampling.scores import SCORE_METHODS

UNITS = ("segment", "recording")
DIVERSIFY_METHODS = ("none", "kmeans", "ward", "farthest_first", "species_balanced", "typiclust")
EMBEDDING_METHODS = frozenset({"kmeans", "ward", "farthest_first", "typiclust"})
ALLOCATIONS = ("equal", "proportional", "divergence")


#: a free stratum column name (any units column; its existence is checked at sampling time)
_FREE_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StrategyError(ValueError):
    """A strategy specification is invalid; the message names the strategy and the key."""


DEFAULTS: dict[str, Any] = {
    "description": "",
    "unit": "segment",
    "pool": {
        "min_confidence": None,
        "max_confidence": None,
        "species": None,
        "exclude_species": None,
        "sites": None,
        "countries": None,
        "habitats": None,
        "devices": None,
        "date_from": None,
        "date_to": None,
        "months": None,
        "min_segments": None,
    },
    "score": {
        "method": "random",
        "index": None,
        "direction": "high",
        "transform": "rank",
        "threshold": None,
        "examples": None,
    },
    "aggregation": {"method": "topk", "k": 10, "event_threshold": 0.5},
    "diversify": {
        "method": "none",
        "k": None,
        "candidates": 10,
        "pca": None,
        "normalize": False,
        "subsample": 2000,
        "min_per_species": 1,
        "seed_with_labelled": True,
    },
    "strata": [],
    "strata_options": copy.deepcopy(DEFAULT_OPTIONS),
    "allocation": "equal",
    "n": 100,
    "seed": 0,
    "reoffer_unsure": False,
    "design": "standard",
    "verification": {
        "species": None,
        "top_species": 5,
        "n_per_bin": None,
        "quantiles": [0.5, 0.75, 0.9, 0.97],
        "strata": ["site"],
    },
}

_ENTROPY = {"score": {"method": "max_entropy"}}
_SITE_DIEL = {"strata": ["site", "diel"], "allocation": "equal"}

#: built-in strategies: name -> partial strategy (merged over DEFAULTS)
PRESETS: dict[str, dict[str, Any]] = {
    "random": {"description": "uniform random segments (seeded baseline)"},
    "lowest_confidence": {
        "description": "segments with the lowest top-1 confidence",
        "score": {"method": "lowest_confidence"},
    },
    "confidence_bins": {
        "description": "verification sampling: random segments, even over 0.1-wide top-1 "
        "confidence bins per predicted species",
        "strata": ["species", "confidence_bin"],
        "allocation": "equal",
    },
    "max_entropy": {
        "description": "segments with the highest max binary entropy (TABMON)",
        **_ENTROPY,
    },
    "mean_entropy": {
        "description": "segments with the highest mean binary entropy",
        "score": {"method": "mean_entropy"},
    },
    "margin": {
        "description": "segments with the smallest top1-top2 confidence margin",
        "score": {"method": "margin"},
    },
    "ratio": {
        "description": "segments with the highest top2/top1 confidence ratio",
        "score": {"method": "ratio"},
    },
    "index_tfsd": {
        "description": "segments of recordings with the highest TFSD (rank)",
        "score": {"method": "index", "index": "TFSD", "direction": "high"},
    },
    "index_aci": {
        "description": "segments of recordings with the highest ACI (rank)",
        "score": {"method": "index", "index": "ACI", "direction": "high"},
    },
    "index_bi": {
        "description": "segments of recordings with the highest bioacoustic index",
        "score": {"method": "index", "index": "BI", "direction": "high"},
    },
    "random_files": {"description": "uniform random whole recordings", "unit": "recording"},
    "topk_entropy_files": {
        "description": "whole recordings with the highest Top-K (K=10) max-entropy mean",
        "unit": "recording",
        **_ENTROPY,
        "aggregation": {"method": "topk", "k": 10},
    },
    "mean_entropy_files": {
        "description": "whole recordings with the highest mean segment max-entropy",
        "unit": "recording",
        **_ENTROPY,
        "aggregation": {"method": "mean"},
    },
    "median_entropy_files": {
        "description": "whole recordings with the highest median segment max-entropy",
        "unit": "recording",
        **_ENTROPY,
        "aggregation": {"method": "median"},
    },
    "max_entropy_files": {
        "description": "whole recordings with the highest single-segment max-entropy",
        "unit": "recording",
        **_ENTROPY,
        "aggregation": {"method": "max"},
    },
    "mean_event_entropy_files": {
        "description": "whole recordings with the highest mean entropy over event segments "
        "(top-1 >= 0.5)",
        "unit": "recording",
        **_ENTROPY,
        "aggregation": {"method": "mean_event"},
    },
    "kmeans_entropy": {
        "description": "k-means (k = N) on embeddings of the most uncertain segments, most "
        "uncertain per cluster",
        **_ENTROPY,
        "diversify": {"method": "kmeans"},
    },
    "ward_entropy": {
        "description": "Ward clusters (k = N) of the most uncertain segments, most uncertain "
        "per cluster",
        **_ENTROPY,
        "diversify": {"method": "ward"},
    },
    "farthest_first": {
        "description": "core-set farthest-first traversal of the most uncertain segments, "
        "seeded by labelled ones",
        **_ENTROPY,
        "diversify": {"method": "farthest_first"},
    },
    "typiclust": {
        "description": "TypiClust (cold start): the most typical segment of each of the "
        "largest clusters with no labelled unit (no model scores needed)",
        "diversify": {"method": "typiclust", "candidates": 0, "pca": 64},
    },
    "species_balanced": {
        "description": "most uncertain segments, even over predicted top-1 species (>= 1 each)",
        **_ENTROPY,
        "diversify": {"method": "species_balanced", "min_per_species": 1},
    },
    "stratified_random": {
        "description": "random segments, equal per site x diel period",
        **_SITE_DIEL,
    },
    "stratified_entropy": {
        "description": "most uncertain segments, equal per site x diel period",
        **_ENTROPY,
        **_SITE_DIEL,
    },
    "stratified_kmeans_entropy": {
        "description": "equal per site x diel period, k-means diversified uncertain segments",
        **_ENTROPY,
        **_SITE_DIEL,
        "diversify": {"method": "kmeans"},
    },
    "gradient_entropy": {
        "description": "most uncertain segments, equal per latitude band x season x diel period",
        **_ENTROPY,
        "strata": ["lat_band", "season", "diel"],
        "allocation": "equal",
    },
    "divergence_entropy": {
        "description": "most uncertain segments per site, sites weighted by species-distribution "
        "divergence (JSD)",
        **_ENTROPY,
        "strata": ["site"],
        "allocation": "divergence",
    },
    "nearest_examples": {
        "description": "segments most similar (cosine on embeddings) to score.examples "
        "(segment ids or audio files): rare species the model cannot score yet",
        "score": {"method": "similarity"},
    },
    "nearest_examples_stratified": {
        "description": "nearest to score.examples, equal per site, k-means diversified",
        "score": {"method": "similarity"},
        "strata": ["site"],
        "allocation": "equal",
        "diversify": {"method": "kmeans"},
    },
    "verification": {
        "description": "verification design (Navine et al. 2024): random windows from every "
        "score bin of each target species, per site; for call density and "
        "thresholds",
        "design": "verification",
    },
    "proportional_entropy": {
        "description": "most uncertain segments per site, proportional to site size",
        **_ENTROPY,
        "strata": ["site"],
        "allocation": "proportional",
    },
}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``base`` with ``over`` merged in (nested mappings merged, the rest replaced)."""
    out = copy.deepcopy(dict(base))
    for key, val in over.items():
        if isinstance(val, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def user_strategies(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``sampling.strategies`` of a params mapping (the whole params.yaml or its ``sampling``
    section or a bare ``{strategies: ...}`` mapping); empty when absent."""
    if not params:
        return {}
    section = params.get("sampling", params)
    strategies = (section or {}).get("strategies") or {}
    if not isinstance(strategies, Mapping):
        raise StrategyError("sampling.strategies: must be a mapping of name -> strategy")
    return dict(strategies)


def resolve_strategy(
    name_or_dict: str | Mapping[str, Any], params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Full, validated strategy from a preset/user name or a (partial) strategy mapping.

    User strategies (``params['sampling']['strategies']``) override presets of the same name and
    may start from another preset with ``base``. The result has every key of :data:`DEFAULTS`
    plus ``name``.
    """
    users = user_strategies(params)
    if isinstance(name_or_dict, str):
        name = name_or_dict
        if name in users:
            spec = _from_mapping(users[name], name, users, seen=(name,))
        elif name in PRESETS:
            spec = deep_merge(DEFAULTS, PRESETS[name])
        else:
            known = sorted(set(PRESETS) | set(users))
            raise StrategyError(f"unknown strategy {name!r} (known: {', '.join(known)})")
    elif isinstance(name_or_dict, Mapping):
        name = str(name_or_dict.get("name", "custom"))
        spec = _from_mapping(name_or_dict, name, users, seen=())
    else:
        raise StrategyError(
            f"strategy must be a name or a mapping, got {type(name_or_dict).__name__}"
        )
    spec["name"] = name
    validate_strategy(spec, name)
    return spec


def _from_mapping(
    entry: Any, name: str, users: Mapping[str, Any], seen: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise StrategyError(f"strategy {name!r}: must be a mapping, got {type(entry).__name__}")
    base = entry.get("base")
    if base is None:
        base_spec = deep_merge(DEFAULTS, PRESETS.get(name, {})) if name in PRESETS else DEFAULTS
    elif not isinstance(base, str):
        raise StrategyError(f"strategy {name!r}: base: must be a strategy name")
    elif base in users and base not in seen:
        base_spec = _from_mapping(users[base], base, users, seen + (base,))
    elif base in PRESETS:
        base_spec = deep_merge(DEFAULTS, PRESETS[base])
    else:
        raise StrategyError(f"strategy {name!r}: base: unknown strategy {base!r}")
    over = {k: v for k, v in entry.items() if k not in ("base", "name")}
    return deep_merge(base_spec, over)


def list_strategies(params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Name -> one-line description of every preset and user strategy (users override)."""
    out = {name: p.get("description", "") for name, p in PRESETS.items()}
    for name, entry in user_strategies(params).items():
        desc = entry.get("description") if isinstance(entry, Mapping) else None
        if not desc and isinstance(entry, Mapping) and entry.get("base"):
            desc = f"user strategy based on {entry['base']}"
        out[name] = desc or "user strategy"
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- validation


def _err(name: str, key: str, msg: str) -> StrategyError:
    return StrategyError(f"strategy {name!r}: {key}: {msg}")


def _check_keys(name: str, section: str, value: Any, allowed: Mapping[str, Any]) -> None:
    if not isinstance(value, Mapping):
        raise _err(name, section, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _err(
            name, f"{section}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _check_enum(name: str, key: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise _err(name, key, f"{value!r} is not one of {', '.join(choices)}")


def _check_number(
    name: str,
    key: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
    optional: bool = True,
) -> None:
    if value is None and optional:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise _err(name, key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if lo is not None and value < lo:
        raise _err(name, key, f"must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise _err(name, key, f"must be <= {hi}, got {value!r}")


def _check_list(name: str, key: str, value: Any, item_type: type | tuple[type, ...] = str) -> None:
    if value is None:
        return
    tname = getattr(item_type, "__name__", "number")
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, item_type) and not isinstance(v, bool) for v in value
    ):
        raise _err(name, key, f"must be a list of {tname}, got {value!r}")


def validate_strategy(spec: Mapping[str, Any], name: str = "custom") -> None:
    """Raise :class:`StrategyError` naming the first invalid key of a resolved strategy."""
    _check_keys(name, "<strategy>", spec, {**DEFAULTS, "name": None, "base": None})
    _check_enum(name, "unit", spec["unit"], UNITS)
    pool = spec["pool"]
    _check_keys(name, "pool", pool, DEFAULTS["pool"])
    for key in ("min_confidence", "max_confidence"):
        _check_number(name, f"pool.{key}", pool[key], 0, 1)
    for key in ("species", "exclude_species", "sites", "countries", "habitats", "devices"):
        _check_list(name, f"pool.{key}", pool[key])
    _check_list(name, "pool.months", pool["months"], int)
    for key in ("date_from", "date_to"):
        if pool[key] is not None and not isinstance(pool[key], str):
            raise _err(name, f"pool.{key}", f"must be an ISO date string, got {pool[key]!r}")
    _check_number(name, "pool.min_segments", pool["min_segments"], 1, integer=True)
    score = spec["score"]
    _check_keys(name, "score", score, DEFAULTS["score"])
    _check_enum(name, "score.method", score["method"], list(SCORE_METHODS))
    _check_enum(name, "score.direction", score["direction"], ("high", "low"))
    _check_enum(name, "score.transform", score["transform"], ("rank", "value"))
    if score["method"] == "index" and not isinstance(score["index"], str):
        raise _err(
            name, "score.index", "name an acoustic index column (e.g. TFSD) for method index"
        )
    _check_number(name, "score.threshold", score["threshold"])
    _check_list(name, "score.examples", score["examples"])
    _check_enum(name, "design", spec["design"], ("standard", "verification"))
    ver = spec["verification"]
    _check_keys(name, "verification", ver, DEFAULTS["verification"])
    _check_list(name, "verification.species", ver["species"])
    _check_number(
        name, "verification.top_species", ver["top_species"], 1, integer=True, optional=False
    )
    _check_number(name, "verification.n_per_bin", ver["n_per_bin"], 1, integer=True)
    _check_list(name, "verification.quantiles", ver["quantiles"], (int, float))
    if not all(0 < q < 1 for q in ver["quantiles"]) or sorted(ver["quantiles"]) != list(
        ver["quantiles"]
    ):
        raise _err(name, "verification.quantiles", "must be increasing values in (0, 1)")
    _check_list(name, "verification.strata", ver["strata"])
    agg = spec["aggregation"]
    _check_keys(name, "aggregation", agg, DEFAULTS["aggregation"])
    _check_enum(name, "aggregation.method", agg["method"], AGGREGATIONS)
    _check_number(name, "aggregation.k", agg["k"], 1, integer=True, optional=False)
    _check_number(name, "aggregation.event_threshold", agg["event_threshold"], 0, 1, optional=False)
    div = spec["diversify"]
    _check_keys(name, "diversify", div, DEFAULTS["diversify"])
    _check_enum(name, "diversify.method", div["method"], DIVERSIFY_METHODS)
    _check_number(name, "diversify.k", div["k"], 1, integer=True)
    _check_number(name, "diversify.candidates", div["candidates"], 0)
    _check_number(name, "diversify.pca", div["pca"], 1, integer=True)
    sub = div["subsample"]  # Ward's subsample: a count >= 2, or a fraction (0, 1) of candidates
    if not (isinstance(sub, float) and 0 < sub < 1):
        _check_number(name, "diversify.subsample", sub, 2, integer=True, optional=False)
    _check_number(
        name, "diversify.min_per_species", div["min_per_species"], 0, integer=True, optional=False
    )
    for key in ("normalize", "seed_with_labelled"):
        if not isinstance(div[key], bool):
            raise _err(name, f"diversify.{key}", f"must be true or false, got {div[key]!r}")
    _check_list(name, "strata", spec["strata"])
    for key in spec["strata"]:  # a known key or a free units column (checked when sampling:
        if key not in STRATUM_KEYS and not _FREE_COLUMN.fullmatch(str(key)):  # build_strata)
            raise _err(
                name,
                "strata",
                f"{key!r} is neither one of {', '.join(STRATUM_KEYS)} "
                "nor a column name (letters, digits, _)",
            )
    if len(set(spec["strata"])) != len(spec["strata"]):
        raise _err(name, "strata", f"duplicate keys in {spec['strata']}")
    opts = spec["strata_options"]
    _check_keys(name, "strata_options", opts, DEFAULT_OPTIONS)
    _check_number(name, "strata_options.lat_band_width", opts["lat_band_width"], 1e-9)
    _check_list(name, "strata_options.lat_band_edges", opts["lat_band_edges"], (int, float))
    if not isinstance(opts["seasons"], Mapping):
        raise _err(name, "strata_options.seasons", "must be a mapping of name -> [months]")
    for season, months in opts["seasons"].items():
        _check_list(name, f"strata_options.seasons.{season}", months, int)
    for key in ("twilight_low", "twilight_high"):
        _check_number(name, f"strata_options.{key}", opts[key], -90, 90, optional=False)
    if opts["twilight_low"] > opts["twilight_high"]:
        raise _err(name, "strata_options.twilight_low", "must not exceed twilight_high")
    _check_number(
        name, "strata_options.diel_resolution_s", opts["diel_resolution_s"], 1, optional=False
    )
    _check_number(
        name,
        "strata_options.confidence_bin_width",
        opts["confidence_bin_width"],
        1e-6,
        1,
        optional=False,
    )
    _check_enum(name, "allocation", spec["allocation"], ALLOCATIONS)
    _check_number(name, "n", spec["n"], 1, integer=True, optional=False)
    _check_number(name, "seed", spec["seed"], 0, integer=True, optional=False)
    if not isinstance(spec.get("reoffer_unsure", False), bool):
        raise _err(name, "reoffer_unsure", f"must be true or false, got {spec['reoffer_unsure']!r}")
    if not isinstance(spec.get("description", ""), str):
        raise _err(name, "description", "must be a string")
