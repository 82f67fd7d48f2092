"""The README strategy table (:func:`strategy_table`) from ``claims.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(float(v), spec)


def _fmt_interval(t: Sequence[Any] | None, spec: str = ".3f", scale: float = 1.0) -> str:
    if not t or t[0] is None or not np.isfinite(t[0]):
        return "n/a"
    m, lo, hi = (float(x) * scale if x is not None else float("nan") for x in t)
    return f"{m:{spec}} [{_fmt(lo, spec)}, {_fmt(hi, spec)}]"


def _verdict(d: Mapping[str, Any]) -> str:
    lo, hi = d.get("low"), d.get("high")
    if lo is None or hi is None:
        return "untested"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no difference shown"


def strategy_table(claims: Mapping[str, Any], divergence: Mapping[str, Any] | None = None) -> str:
    """The README strategy table (Markdown) and the claim sentences, from ``claims.json`` (and
    the divergence sweep's ``summary.json``): listening seconds as the cost axis, intervals =
    percentile bootstrap over replicates."""
    metric = claims["metric"]
    frac = claims["target_fraction"]
    full = claims["full_supervision_interval"]
    rep = claims.get("replicates", {})
    lo, hi = claims["window"]
    lines = [
        (
            f"Cost axis: listening time ({claims.get('budget_note', '')}). "
            f"{rep.get('n', claims['n_seeds'])} replicates; split {rep.get('split', '?')}; data "
            f"{rep.get('data', '?')}. Intervals: {claims.get('interval', '')}. Full supervision "
            f"(probe on the replicate's whole pool): {metric} {_fmt_interval(full)}; "
            f"\"{frac:.0%} of full supervision\" is each run's ratio to its own replicate's "
            f"reference. AULC over the listening window every run covers, "
            f"{lo / 60:.1f}-{hi / 60:.1f} min."
        ),
        "",
        (
            f"| strategy | unit | AULC ({metric}) | AULC % of full | final {metric} | final % of "
            f"full | listening at the end (min) | listening to reach {frac:.0%} (min) | runs "
            f"reaching | units / segments / recordings to reach |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(
        claims["strategies"].items(),
        key=lambda kv: -(kv[1]["aulc"][0] if kv[1]["aulc"][0] is not None else -1),
    )
    for name, e in order:
        n = e["n_seeds"]
        reached = e["reached_target_runs"]
        to = e["to_target_audio_seconds"]
        if reached > 1:
            to_s = _fmt_interval(to, ".1f", 1 / 60)
        elif reached == 1:
            to_s = f"{_fmt(to[0] / 60, '.1f')} (one run)"
        else:
            to_s = "not reached"
        units = (
            " / ".join(
                _fmt(e[f"to_target_{c}"][0], ".0f")
                for c in ("n_units", "n_segments", "n_recordings")
            )
            if reached
            else "-"
        )
        lines.append(
            f"| {name} | {e['unit']} | {_fmt_interval(e['aulc'])} | "
            f"{_fmt_interval(e['aulc_ratio'], '.0f', 100)}% | {_fmt_interval(e['final'])} | "
            f"{_fmt_interval(e['final_ratio'], '.0f', 100)}% | "
            f"{_fmt(e['final_budget'][0] / 60, '.1f')} | {to_s} | {reached}/{n} | {units} |"
        )
    lines += [
        "",
        (
            "Ratios are uncapped: above 100 % means the labelled subset's probe beat the probe "
            "trained on the whole pool (one L2-regularised fit at the same C - a reference, not "
            "a ceiling)."
        ),
        "",
    ]
    claim = claims.get("claim")
    if claim:
        d = claim["aulc_difference_paired"]
        cross = claim["mean_curve_reaches_target_at"]
        cross_s = (
            f"its mean curve reaches it at {_fmt(cross, '.1%')} of the pool's audio"
            if cross is not None
            else "its mean curve never reaches it"
        )
        lines.append(
            f"- Claim {claim['strategy']} vs {claim['baseline']}: reaches {frac:.0%} of full "
            f"supervision within {claim['max_budget']:.0%} of the pool's audio in "
            f"{claim['reaches_target_within_max_budget_runs']}/{claim['runs']} replicates "
            f"({cross_s}); paired AULC difference {_fmt(d['mean'], '+.3f')} "
            f"[{_fmt(d['low'], '+.3f')}, {_fmt(d['high'], '+.3f')}] (n={d['n']}): "
            f"{_verdict(d)}."
        )
    for pair, c in (claims.get("comparisons") or {}).items():
        d = c["aulc"]
        f = c["final"]
        lines.append(
            f"- {pair}: paired AULC difference {_fmt(d['mean'], '+.3f')} "
            f"[{_fmt(d['low'], '+.3f')}, {_fmt(d['high'], '+.3f')}], final "
            f"{_fmt(f['mean'], '+.3f')} [{_fmt(f['low'], '+.3f')}, {_fmt(f['high'], '+.3f')}] "
            f"(n={d['n']}): {_verdict(d)}."
        )
    for name, c in ((divergence or {}).get("correlation") or {}).items():
        if "n_settings" in c and name.endswith("drop_ap~jsd_label") and ":rel_" not in name:
            lines.append(
                f"- LOSO {name}: per-setting Pearson r median {_fmt(c['median_r'], '.2f')} "
                f"(mean {_fmt(c['mean_r'], '.2f')}, {c['positive_settings']}/{c['n_settings']} "
                f"settings > 0; t-test of Fisher z across settings p = {_fmt(c['t_p'], '.2g')}, "
                f"Wilcoxon p = {_fmt(c['wilcoxon_p'], '.2g')}; pooled strata r = "
                f"{_fmt(c['pooled_strata_r_descriptive'], '.2f')}, descriptive only)."
            )
        elif name.endswith("(per setting)"):
            lines.append(
                f"- LOSO {name}: Pearson r = {_fmt(c['pearson_r'], '.2f')} "
                f"(p = {_fmt(c['pearson_p'], '.2g')}), Spearman {_fmt(c['spearman_rho'], '.2f')} "
                f"(p = {_fmt(c['spearman_p'], '.2g')}), n = {c['n']} settings."
            )
    return "\n".join(lines) + "\n"


def table_to_file(claims_path: str, out: str, divergence_path: str | None = None) -> str:
    """Write (and return) :func:`strategy_table` of a ``claims.json`` to ``out`` (Markdown)."""
    import json
    from pathlib import Path

    from activepam.core.io import atomic_path

    claims = json.loads(Path(claims_path).read_text())
    div = json.loads(Path(divergence_path).read_text()) if divergence_path else None
    text = strategy_table(claims, div)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    return text
