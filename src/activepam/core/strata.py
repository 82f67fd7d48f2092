"""Ecological-gradient strata and stratified allocation.

Strata are built from unit metadata, all vectorised so 10 million rows take seconds:

* ``site``, ``country``, ``habitat``, ``device`` (``device_id``), ``species`` (predicted top-1
  species), ``recording`` — categorical columns as they are;
* ``lat_band`` — latitude bands of a fixed ``lat_band_width`` (degrees, default 5) or explicit
  ``lat_band_edges``; labels like ``"45-50"``;
* ``season`` — month bins (default meteorological seasons, configurable ``seasons`` mapping of
  name -> months); the month is taken in UTC;
* ``month`` and ``hour`` (UTC);
* ``diel`` — dawn / day / dusk / night from the geometric solar elevation at the unit's
  coordinates and time (vectorised NOAA solar-position formulas, :func:`solar_elevation`):
  ``night`` below ``twilight_low`` (default -6 deg, the civil-twilight limit), ``day`` above
  ``twilight_high`` (default +6 deg), and in between ``dawn`` before solar noon (negative hour
  angle) or ``dusk`` after it. Elevation is computed once per unique (lat, lon, time rounded to
  ``diel_resolution_s``) triple, so cost grows with the number of sites x time steps, not rows;
* ``confidence_bin`` — ``confidence_bin_width``-wide bins of top-1 confidence (``"0.3-0.4"``).

Any combination is a stratum: ``"site=A|diel=dawn"``. Units with missing metadata fall into an
``=unknown`` stratum rather than being dropped.

Allocation of a batch over strata (:func:`allocate`) is equal, proportional to stratum size or
divergence-weighted (:func:`divergence_allocation`): stratum size x (1 + the stratum's mean
Jensen-Shannon divergence to the other strata, :func:`divergence_weights`), so identical strata
get proportional quotas and a stratum whose species differ from the rest gets up to twice its
proportional share. A stratum's species distribution (``strata_options.divergence``, the two
definitions of the stratified active-learning preprint, McEwen, Bernard & Stowell 2025):

* ``probability`` (default): the mean predicted probability vector of its units
  (:func:`probability_distributions`; per-species ``prob:<species>`` columns of the units).
  Without those columns, the top-1 truncation of that vector: each unit's top-1 species
  weighted by its top-1 confidence, so near-empty (background) segments barely count;
* ``labels``: the distribution of present labels of its labelled units
  (:func:`label_distributions`; ``label:<species>`` columns, 1 / 0 / NaN, on the labelled rows
  of the units table); a stratum without labelled units gets the pooled distribution.

Quotas are capped at stratum sizes and the remainder is water-filled into the strata that still
have units, so the batch size is always met when enough units exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: stratum keys understood by :func:`build_strata`
STRATUM_KEYS: tuple[str, ...] = (
    "site",
    "country",
    "habitat",
    "device",
    "species",
    "recording",
    "lat_band",
    "season",
    "month",
    "hour",
    "diel",
    "confidence_bin",
)

#: columns read by each key (besides the time column for season/month/hour/diel)
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "site": ("site",),
    "country": ("country",),
    "habitat": ("habitat",),
    "device": ("device_id",),
    "species": ("top1_species",),
    "recording": ("recording_id",),
    "lat_band": ("lat",),
    "season": (),
    "month": (),
    "hour": (),
    "diel": ("lat", "lon"),
    "confidence_bin": ("top1_confidence",),
}
TIME_KEYS = frozenset({"season", "month", "hour", "diel"})

DEFAULT_SEASONS: dict[str, list[int]] = {
    "winter": [12, 1, 2],
    "spring": [3, 4, 5],
    "summer": [6, 7, 8],
    "autumn": [9, 10, 11],
}

#: defaults of the ``strata_options`` mapping of a strategy
DEFAULT_OPTIONS: dict[str, Any] = {
    "lat_band_width": 5.0,
    "lat_band_edges": None,
    "seasons": DEFAULT_SEASONS,
    "twilight_low": -6.0,
    "twilight_high": 6.0,
    "diel_resolution_s": 600,
    "confidence_bin_width": 0.1,
    # allocation: divergence compares the strata's species distributions, defined as
    # "probability" (mean predicted probability vector) or "labels" (label distribution)
    "divergence": "probability",
}

#: definitions of a stratum's species distribution for ``allocation: divergence``
DIVERGENCE_DEFINITIONS: tuple[str, ...] = ("probability", "labels")
#: per-species probability columns of a units table (``prob:<species>``, one per species)
PROB_PREFIX = "prob:"
#: per-species label columns of a units table (``label:<species>``: 1, 0, NaN = not labelled)
LABEL_PREFIX = "label:"

#: pairwise JSD is quadratic in the number of strata
MAX_DIVERGENCE_STRATA = 2000
UNKNOWN = "unknown"
ALL = "all"
DIEL_LABELS = ("night", "dawn", "day", "dusk")


class StrataError(ValueError):
    """A stratum key or option is invalid or its columns are missing."""


# --------------------------------------------------------------------------- solar position


def solar_position(
    lat: np.ndarray, lon: np.ndarray, unix_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Geometric solar elevation and hour angle (degrees) by the NOAA solar calculator formulas.

    ``lat``/``lon`` in degrees (east positive), ``unix_s`` seconds since 1970-01-01 UTC; all
    broadcastable numpy arrays. Accuracy is about 0.01 deg for 1900-2100 (no refraction).
    The hour angle is negative before local solar noon and positive after it.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    t = np.asarray(unix_s, dtype=np.float64)
    jc = (t / 86400.0 + 2440587.5 - 2451545.0) / 36525.0
    mean_long = np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0)
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m = np.radians(mean_anom)
    centre = (
        np.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = mean_long + centre - 0.00569 - 0.00478 * np.sin(omega)
    seconds = 21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))
    mean_obliq = 23.0 + (26.0 + seconds / 60.0) / 60.0
    obliq = np.radians(mean_obliq + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(np.radians(app_long)))
    y = np.tan(obliq / 2.0) ** 2
    l0 = np.radians(mean_long)
    eq_time = 4.0 * np.degrees(
        y * np.sin(2 * l0)
        - 2 * ecc * np.sin(m)
        + 4 * ecc * y * np.sin(m) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * ecc * ecc * np.sin(2 * m)
    )
    minutes_utc = np.mod(t, 86400.0) / 60.0
    true_solar = np.mod(minutes_utc + eq_time + 4.0 * lon, 1440.0)
    hour_angle = true_solar / 4.0 - 180.0
    phi = np.radians(lat)
    cos_zen = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(
        np.radians(hour_angle)
    )
    elevation = 90.0 - np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))
    return elevation, hour_angle


def solar_elevation(lat: np.ndarray, lon: np.ndarray, unix_s: np.ndarray) -> np.ndarray:
    """Geometric solar elevation in degrees (see :func:`solar_position`)."""
    return solar_position(lat, lon, unix_s)[0]


def diel_period(
    lat: np.ndarray,
    lon: np.ndarray,
    unix_s: np.ndarray,
    twilight_low: float = -6.0,
    twilight_high: float = 6.0,
    resolution_s: float = 600.0,
) -> pd.Categorical:
    """Diel period of each (lat, lon, time): night / dawn / day / dusk (categorical).

    * ``night``: solar elevation < ``twilight_low`` (default -6 deg, end of civil twilight);
    * ``day``: elevation > ``twilight_high`` (default +6 deg);
    * ``dawn`` / ``dusk``: in between, before / after local solar noon.

    Times are rounded to ``resolution_s`` and the elevation is computed once per unique
    (lat, lon, rounded time); rows with a missing coordinate or time get NaN (no category).
    """
    if twilight_low > twilight_high:
        raise StrataError(
            f"twilight_low ({twilight_low}) must not exceed twilight_high ({twilight_high})"
        )
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    t = np.asarray(unix_s, dtype=np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(t)
    codes = np.full(len(lat), -1, dtype=np.int8)
    if ok.any():
        res = max(float(resolution_s), 1.0)
        tb = np.round(t[ok] / res).astype(np.int64)
        key_codes, (ulat, ulon, utb) = _factorize_columns([lat[ok], lon[ok], tb])
        elev, ha = solar_position(ulat, ulon, utb * res)
        ucode = np.where(
            elev < twilight_low, 0, np.where(elev > twilight_high, 2, np.where(ha < 0, 1, 3))
        ).astype(np.int8)
        codes[ok] = ucode[key_codes]
    return pd.Categorical.from_codes(codes, categories=list(DIEL_LABELS))


def _factorize_columns(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes of the unique rows of the aligned ``columns`` and the unique values per column."""
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        c, u = pd.factorize(col, sort=False)
        codes, _ = pd.factorize(codes * (len(u) + 1) + c, sort=False)
    n_unique = int(codes.max()) + 1 if len(codes) else 0
    uniques = []
    for col in columns:
        u = np.empty(n_unique, dtype=np.asarray(col).dtype)
        u[codes] = col  # every row of a group holds the same value
        uniques.append(u)
    return codes, uniques


# --------------------------------------------------------------------------- time helpers


def to_unix_seconds(values: Any) -> np.ndarray:
    """Seconds since the epoch (float64, NaN for missing) of datetimes (naive = UTC)."""
    s = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, utc=True, errors="coerce")
    elif s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    out = s.dt.as_unit("s").astype("int64").to_numpy().astype(np.float64)
    out[s.isna().to_numpy()] = np.nan
    return out


def unit_times(units: pd.DataFrame) -> np.ndarray:
    """Unix seconds of each unit's time: ``segment_time`` for segments, else the midpoint of a
    recording (``start_time`` + ``duration_s``/2) or ``start_time`` + ``start_s``."""
    if "segment_time" in units:
        return to_unix_seconds(units["segment_time"])
    if "start_time" not in units:
        raise StrataError("time strata need a 'segment_time' or 'start_time' column")
    t = to_unix_seconds(units["start_time"])
    if "duration_s" in units and "segment_id" not in units:
        return t + units["duration_s"].to_numpy(dtype=np.float64) / 2.0
    if "start_s" in units:
        return t + units["start_s"].to_numpy(dtype=np.float64)
    return t


def _months_hours(unix_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(unix_s)
    dt = np.where(ok, unix_s, 0).astype("datetime64[s]")
    months = (dt.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.int16)
    hours = (unix_s % 86400) // 3600
    months = np.where(ok, months, -1)
    hours = np.where(ok, hours, -1).astype(np.int16)
    return months, hours


# --------------------------------------------------------------------------- per-key labels


def _categorical(values: Any) -> pd.Categorical:
    """Categorical of ``values`` (kept as is when already categorical), categories as strings."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
    else:
        cat = pd.Categorical(values)
    return cat


def lat_band(
    lat: np.ndarray, width: float = 5.0, edges: Sequence[float] | None = None
) -> pd.Categorical:
    """Latitude band labels (``"45-50"``) from a band ``width`` or explicit sorted ``edges``."""
    lat = np.asarray(lat, dtype=np.float64)
    ok = np.isfinite(lat)
    if edges is not None:
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
            raise StrataError("strata_options.lat_band_edges: need >= 2 increasing edges")
        idx = np.searchsorted(e, np.where(ok, lat, e[0]), side="right") - 1
        inside = ok & (idx >= 0) & (idx < len(e) - 1) | (ok & (lat == e[-1]))
        idx = np.clip(idx, 0, len(e) - 2)
        labels = [f"{_fmt(e[i])}-{_fmt(e[i + 1])}" for i in range(len(e) - 1)]
        codes = np.where(inside, idx, -1)
        return pd.Categorical.from_codes(codes, categories=labels)
    if not width or width <= 0:
        raise StrataError("strata_options.lat_band_width must be > 0")
    lo = np.floor(np.where(ok, lat, 0) / width).astype(np.int64)
    uniq = np.unique(lo[ok]) if ok.any() else np.zeros(0, dtype=np.int64)
    labels = [f"{_fmt(b * width)}-{_fmt((b + 1) * width)}" for b in uniq]
    codes = np.where(ok, np.searchsorted(uniq, lo), -1)
    return pd.Categorical.from_codes(codes, categories=labels)


def _fmt(x: float) -> str:
    return f"{x:g}"


def season(
    months: np.ndarray, seasons: Mapping[str, Sequence[int]] | None = None
) -> pd.Categorical:
    """Season label of each month number (1-12) from a ``{name: [months]}`` mapping."""
    seasons = dict(seasons or DEFAULT_SEASONS)
    lookup = np.full(13, -1, dtype=np.int64)
    for i, (name, ms) in enumerate(seasons.items()):
        for mth in ms:
            if not 1 <= int(mth) <= 12:
                raise StrataError(f"strata_options.seasons.{name}: month {mth} not in 1..12")
            if lookup[int(mth)] != -1:
                raise StrataError(f"strata_options.seasons: month {mth} in more than one season")
            lookup[int(mth)] = i
    months = np.asarray(months)
    codes = np.where((months >= 1) & (months <= 12), lookup[np.clip(months, 0, 12)], -1)
    return pd.Categorical.from_codes(codes, categories=list(seasons))


def confidence_bin(conf: np.ndarray, width: float = 0.1) -> pd.Categorical:
    """``width``-wide bins of a confidence in [0, 1] (1.0 falls in the top bin)."""
    if not 0 < width <= 1:
        raise StrataError("strata_options.confidence_bin_width must be in (0, 1]")
    conf = np.asarray(conf, dtype=np.float64)
    nb = int(np.ceil(1.0 / width - 1e-9))
    ok = np.isfinite(conf)
    idx = np.clip(np.floor(np.where(ok, conf, 0) / width + 1e-9).astype(np.int64), 0, nb - 1)
    labels = [f"{i * width:.2g}-{min((i + 1) * width, 1.0):.2g}" for i in range(nb)]
    return pd.Categorical.from_codes(np.where(ok, idx, -1), categories=labels)


def free_column_values(values: pd.Series) -> pd.Categorical:
    """A free metadata column as a categorical stratum: its values as strings, missing values
    (NaN, None, empty) as -1 codes (the ``unknown`` stratum of :func:`build_strata`)."""
    missing = np.array(values.isna().to_numpy(), dtype=bool)
    text = values.astype(str).to_numpy(dtype=object)
    missing |= text == ""
    cats = sorted(set(text[~missing].tolist()))
    codes = pd.Index(cats).get_indexer(text)
    codes[missing] = -1
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=cats)


def stratum_key_values(
    units: pd.DataFrame,
    key: str,
    options: Mapping[str, Any] | None = None,
    times: np.ndarray | None = None,
) -> pd.Categorical:
    """Categorical labels of one stratum ``key`` for every unit."""
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    if key not in STRATUM_KEYS:
        if key in units.columns:  # a free column (year, period, ...): its values, as categories
            return free_column_values(units[key])
        raise StrataError(
            f"strata: unknown key {key!r}: neither a known key "
            f"({', '.join(STRATUM_KEYS)}) nor a column of the units table"
        )
    missing = [c for c in KEY_COLUMNS[key] if c not in units]
    if missing:
        raise StrataError(f"strata: key {key!r} needs column(s) {missing} in the units table")
    if key in TIME_KEYS and times is None:
        times = unit_times(units)
    if key == "lat_band":
        return lat_band(
            units["lat"].to_numpy(dtype=np.float64), opts["lat_band_width"], opts["lat_band_edges"]
        )
    if key == "diel":
        assert times is not None  # set above for every key in TIME_KEYS
        return diel_period(
            units["lat"].to_numpy(dtype=np.float64),
            units["lon"].to_numpy(dtype=np.float64),
            times,
            opts["twilight_low"],
            opts["twilight_high"],
            opts["diel_resolution_s"],
        )
    if key in ("season", "month", "hour"):
        assert times is not None  # set above for every key in TIME_KEYS
        months, hours = _months_hours(times)
        if key == "season":
            return season(months, opts["seasons"])
        vals, n = (months, 13) if key == "month" else (hours, 24)
        labels = [f"{i:02d}" for i in range(n)]
        codes = np.where(vals >= 0, vals, -1).astype(np.int64)
        return pd.Categorical.from_codes(codes, categories=labels)
    if key == "confidence_bin":
        return confidence_bin(
            units["top1_confidence"].to_numpy(dtype=np.float64), opts["confidence_bin_width"]
        )
    return _categorical(units[KEY_COLUMNS[key][0]])


@dataclass(frozen=True)
class Strata:
    """Stratum of every unit: integer ``codes`` (0..n-1) and their ``labels``."""

    codes: np.ndarray
    labels: list[str]

    @property
    def n(self) -> int:
        return len(self.labels)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.n)

    def as_categorical(self) -> pd.Categorical:
        return pd.Categorical.from_codes(self.codes, categories=self.labels)


def build_strata(
    units: pd.DataFrame, keys: Sequence[str], options: Mapping[str, Any] | None = None
) -> Strata:
    """Combine stratum ``keys`` into one stratum per unit, labelled ``"site=A|diel=dawn"``.

    With no keys every unit is in the single stratum ``"all"``. Only strata that contain at
    least one unit are kept; codes are ordered by label.
    """
    n = len(units)
    if not keys:
        return Strata(np.zeros(n, dtype=np.int64), [ALL])
    if len(set(keys)) != len(keys):
        raise StrataError(f"strata: duplicate keys in {list(keys)}")
    times = unit_times(units) if TIME_KEYS.intersection(keys) else None
    combined = np.zeros(n, dtype=np.int64)
    parts: list[list[str]] = []
    radix: list[int] = []
    for key in keys:
        cat = stratum_key_values(units, key, options, times)
        cats = [str(c) for c in cat.categories] + [UNKNOWN]
        codes = np.asarray(cat.codes, dtype=np.int64)
        codes = np.where(codes < 0, len(cats) - 1, codes)
        combined = combined * len(cats) + codes
        parts.append(cats)
        radix.append(len(cats))
    uniq, inverse = np.unique(combined, return_inverse=True)
    labels = []
    for u in uniq:
        digits = []
        for r in reversed(radix):
            digits.append(int(u % r))
            u //= r
        digits.reverse()
        labels.append("|".join(f"{k}={parts[i][d]}" for i, (k, d) in enumerate(zip(keys, digits))))
    order = np.argsort(labels, kind="stable")
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return Strata(remap[inverse.ravel()], [labels[i] for i in order])


# --------------------------------------------------------------------------- divergence


def species_distributions(
    strata_codes: np.ndarray, n_strata: int, species: Any, weights: np.ndarray | None = None
) -> np.ndarray:
    """Row-normalised (n_strata x n_species) distribution of predicted top-1 species per stratum.

    ``weights`` (e.g. top-1 confidences) weight each unit's vote; missing species are ignored.
    """
    cat = _categorical(species)
    sp = np.asarray(cat.codes, dtype=np.int64)
    n_sp = max(len(cat.categories), 1)
    ok = sp >= 0
    flat = strata_codes[ok] * n_sp + sp[ok]
    w = None if weights is None else np.nan_to_num(np.asarray(weights, dtype=np.float64)[ok])
    counts = np.bincount(flat, weights=w, minlength=n_strata * n_sp).reshape(n_strata, n_sp)
    tot = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, tot, out=np.zeros_like(counts, dtype=np.float64), where=tot > 0)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two distributions."""
    return float(pairwise_jsd(np.vstack([p, q]))[0, 1])


def pairwise_jsd(dists: np.ndarray) -> np.ndarray:
    """Symmetric matrix of Jensen-Shannon divergences (base 2) between the rows of ``dists``."""
    p = np.asarray(dists, dtype=np.float64)
    s = p.sum(axis=1, keepdims=True)
    p = np.divide(p, s, out=np.zeros_like(p), where=s > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
        out = np.zeros((len(p), len(p)))
        for i in range(len(p)):
            m = 0.5 * (p[i] + p)
            mlogm = np.where(m > 0, m * np.log2(m), 0.0).sum(axis=1)
            out[i] = 0.5 * (plogp[i] + plogp) - mlogm
    return np.clip(out, 0.0, 1.0)


def divergence_weights(dists: np.ndarray) -> np.ndarray:
    """Weight of each stratum: its mean JSD to the other strata (1 for a single stratum)."""
    k = len(dists)
    if k <= 1:
        return np.ones(k)
    if k > MAX_DIVERGENCE_STRATA:
        raise StrataError(
            f"allocation divergence: {k} strata (at most {MAX_DIVERGENCE_STRATA}); "
            "use coarser strata or allocation equal/proportional"
        )
    jsd = pairwise_jsd(dists)
    return jsd.sum(axis=1) / (k - 1)


def species_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    """Columns of ``frame`` named ``<prefix><species>`` (in table order)."""
    return [c for c in frame.columns if isinstance(c, str) and c.startswith(prefix)]


def probability_distributions(strata_codes: np.ndarray, n_strata: int, P: np.ndarray) -> np.ndarray:
    """Mean predicted probability vector of every stratum (rows = strata, NaN cells ignored),
    row-normalised to a distribution over species (an all-zero row stays zero)."""
    P = np.asarray(P, dtype=np.float64)
    codes = np.asarray(strata_codes, dtype=np.int64)
    ok = np.isfinite(P)
    sums = np.zeros((n_strata, P.shape[1]))
    cnt = np.zeros((n_strata, P.shape[1]))
    np.add.at(sums, codes, np.where(ok, P, 0.0))
    np.add.at(cnt, codes, ok.astype(np.float64))
    mean = np.divide(sums, cnt, out=np.zeros_like(sums), where=cnt > 0)
    tot = mean.sum(axis=1, keepdims=True)
    return np.divide(mean, tot, out=np.zeros_like(mean), where=tot > 0)


def label_distributions(strata_codes: np.ndarray, n_strata: int, Y: np.ndarray) -> np.ndarray:
    """Distribution of present labels (``Y == 1``; 0 and NaN count nothing) per stratum,
    row-normalised; strata without any present label get the pooled distribution."""
    Y = np.asarray(Y, dtype=np.float64)
    present = (Y == 1).astype(np.float64)
    counts = np.zeros((n_strata, Y.shape[1]))
    np.add.at(counts, np.asarray(strata_codes, dtype=np.int64), present)
    pooled = counts.sum(axis=0)
    empty = counts.sum(axis=1) == 0
    counts[empty] = pooled
    tot = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)


def divergence_allocation(sizes: np.ndarray, dists: np.ndarray) -> np.ndarray:
    """Allocation weights of ``allocation: divergence``: size x (1 + mean JSD to the others).

    Identical distributions give proportional allocation; a stratum fully disjoint from all the
    others gets twice its proportional weight.
    """
    return np.asarray(sizes, dtype=np.float64) * (1.0 + divergence_weights(dists))


def stratum_distributions(
    frame: pd.DataFrame,
    strata: Strata,
    keys: Sequence[str],
    options: Mapping[str, Any] | None = None,
    units: pd.DataFrame | None = None,
) -> tuple[np.ndarray, str]:
    """Species distribution of every stratum of ``frame`` (the pool, stratified as ``strata``)
    under ``strata_options.divergence``, and a note saying which definition was used.

    ``probability``: ``prob:<species>`` columns of ``frame`` (or the confidence-weighted
    top-1). ``labels``: ``label:<species>`` columns of the labelled rows of ``units`` (the
    table given to the sampler, labelled units included), placed in the pool's strata by
    ``keys``.
    """
    how = {**DEFAULT_OPTIONS, **(options or {})}["divergence"]
    if how not in DIVERGENCE_DEFINITIONS:
        raise StrataError(
            f"strata_options.divergence: {how!r} is not one of {', '.join(DIVERGENCE_DEFINITIONS)}"
        )
    if how == "probability":
        cols = species_columns(frame, PROB_PREFIX)
        if cols:
            P = frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)
            return (
                probability_distributions(strata.codes, strata.n, P),
                f"mean predicted probability over {len(cols)} species",
            )
        missing = [c for c in ("top1_species", "top1_confidence") if c not in frame]
        if missing:
            raise StrataError(
                "strata_options.divergence: probability needs prob:<species> "
                f"columns or {missing} in the units"
            )
        return (
            species_distributions(
                strata.codes,
                strata.n,
                frame["top1_species"],
                frame["top1_confidence"].to_numpy(dtype=np.float64),
            ),
            "top-1 species weighted by top-1 confidence (no prob:<species> columns)",
        )
    cols = species_columns(units if units is not None else frame, LABEL_PREFIX)
    if not cols:
        raise StrataError(
            "strata_options.divergence: labels needs label:<species> columns "
            "(1 present, 0 absent, empty = not labelled) on the labelled units"
        )
    lab = units[cols].to_numpy(dtype=np.float64, na_value=np.nan)  # type: ignore[index]
    rows = np.isfinite(lab).any(axis=1)
    codes = np.zeros(0, dtype=np.int64)
    Y = np.zeros((0, len(cols)))
    if rows.any():
        labelled = units[rows]  # type: ignore[index]
        lab_strata = build_strata(labelled, keys, options)
        index = {label: i for i, label in enumerate(strata.labels)}
        mapped = np.array(
            [index.get(lab_strata.labels[c], -1) for c in lab_strata.codes], dtype=np.int64
        )
        codes, Y = mapped[mapped >= 0], lab[rows][mapped >= 0]
    return (
        label_distributions(codes, strata.n, Y),
        f"label distribution of {len(codes)} labelled units over {len(cols)} species",
    )


# --------------------------------------------------------------------------- allocation


def allocate(
    capacity: Sequence[int] | np.ndarray,
    n: int,
    weights: np.ndarray | None = None,
    minimum: int = 0,
    seed: int | None = 0,
) -> np.ndarray:
    """Split ``n`` units over strata with ``capacity`` units each (iterative water-filling).

    ``weights`` None = equal allocation; otherwise quotas proportional to ``weights``
    (largest-remainder rounding). Each stratum first gets ``min(minimum, capacity)`` (only when
    the budget allows it for every stratum; otherwise the budget goes equally). Quotas above a
    stratum's capacity are capped and the remainder is redistributed over the strata that still
    have units until the budget or the units run out, so ``sum == min(n, sum(capacity))``.
    Ties in rounding are broken by a permutation seeded with ``seed``. Strata with zero weight
    only receive units once every positive-weight stratum is full.
    """
    cap = np.asarray(capacity, dtype=np.int64)
    k = len(cap)
    if np.any(cap < 0):
        raise ValueError("allocate: negative capacity")
    if n < 0:
        raise ValueError("allocate: n must be >= 0")
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != k or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("allocate: weights must be finite, >= 0 and one per stratum")
    tiebreak = np.random.default_rng(seed).permutation(k) if k else np.zeros(0, dtype=np.int64)
    alloc = np.zeros(k, dtype=np.int64)
    budget = int(min(n, cap.sum()))
    if minimum > 0 and k:
        base = np.minimum(cap, minimum)
        if base.sum() <= budget:
            alloc += base
    while True:
        remaining = budget - int(alloc.sum())
        free = cap - alloc
        active = free > 0
        if remaining <= 0 or not active.any():
            break
        wa = np.where(active, w, 0.0)
        if wa.sum() <= 0:
            wa = active.astype(np.float64)
        share = remaining * wa / wa.sum()
        add = np.floor(share + 1e-9).astype(np.int64)
        left = remaining - int(add.sum())
        if left > 0:
            frac = share - add
            # largest fractional part first, ties by the seeded permutation
            cand = np.flatnonzero(active)
            order = cand[np.lexsort((tiebreak[cand], -frac[cand]))]
            add[order[:left]] += 1
        alloc += np.minimum(add, free)
    return alloc


def stratum_column(
    units: pd.DataFrame, key: str, options: Mapping[str, Any] | None = None
) -> pd.Series:
    """One stratum key's level per unit as a plain column (``"spring"``, ``"dawn"``, ...):
    the units' own column when they have it, else :func:`build_strata` of that key (season,
    diel, lat_band, ... computed from time and position)."""
    if key in units.columns:
        return units[key].astype(str).where(units[key].notna(), "unknown")
    cat = build_strata(units, [key], options).as_categorical()
    prefix = f"{key}="
    return pd.Series(
        [str(v)[len(prefix) :] if str(v).startswith(prefix) else str(v) for v in cat],
        index=units.index,
        name=key,
    )
