"""Divergence and mutual information between strata and species labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from activepam.core.strata import pairwise_jsd


def stratum_label_distributions(codes: np.ndarray, n_strata: int, Y: np.ndarray) -> np.ndarray:
    """(n_strata x n_species) species occurrence counts per stratum (rows not normalised).

    ``Y`` is a [units x species] 0/1 (or probability) matrix; a stratum's row sums its units.
    """
    Y = np.asarray(Y, dtype=np.float64)
    out = np.zeros((n_strata, Y.shape[1]))
    np.add.at(out, np.asarray(codes, dtype=np.int64), Y)
    return out


def divergence_to_rest(counts: np.ndarray) -> np.ndarray:
    """JSD (base 2) between each stratum's species distribution and the pooled other strata."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=0)
    out = np.full(len(counts), np.nan)
    for i, row in enumerate(counts):
        rest = total - row
        if row.sum() > 0 and rest.sum() > 0:
            out[i] = pairwise_jsd(np.vstack([row, rest]))[0, 1]
    return out


def jsd_matrix(counts: np.ndarray) -> np.ndarray:
    """Pairwise JSD between strata's (normalised) species distributions."""
    return pairwise_jsd(np.asarray(counts, dtype=np.float64))


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def mutual_information(
    codes: np.ndarray, Y: np.ndarray, n_permutations: int = 20, seed: int = 0
) -> dict[str, float]:
    """I(stratum; species) in bits over the species occurrences of a labelled dataset.

    Every (unit, present species) pair is one draw of (stratum, species). Returns
    ``mi_bits``, ``species_entropy_bits`` (H(species)), ``fraction`` = MI / H(species),
    ``mi_permuted_bits`` (mean MI with the strata shuffled over units: the plug-in bias) and
    ``fraction_corrected`` = (MI - permuted) / H(species).
    """
    codes = np.asarray(codes, dtype=np.int64)
    Y = np.asarray(Y, dtype=np.float64)
    n_strata = int(codes.max()) + 1 if len(codes) else 0

    def _mi(c: np.ndarray) -> tuple[float, float]:
        joint = stratum_label_distributions(c, n_strata, Y)
        tot = joint.sum()
        if tot <= 0:
            return float("nan"), float("nan")
        p = joint / tot
        h_sp = _entropy_bits(p.sum(axis=0))
        h_st = _entropy_bits(p.sum(axis=1))
        return h_st + h_sp - _entropy_bits(p.ravel()), h_sp

    mi, h_sp = _mi(codes)
    rng = np.random.default_rng(seed)
    perm = [_mi(rng.permutation(codes))[0] for _ in range(n_permutations)] if n_permutations else []
    mi_perm = float(np.mean(perm)) if perm else float("nan")
    frac = mi / h_sp if h_sp > 0 else float("nan")
    corr = (mi - mi_perm) / h_sp if h_sp > 0 and perm else float("nan")
    return {
        "mi_bits": mi,
        "species_entropy_bits": h_sp,
        "fraction": frac,
        "mi_permuted_bits": mi_perm,
        "fraction_corrected": corr,
    }


def correlate(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (with p-values) over the finite pairs."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        nan = float("nan")
        return {"n": n, "pearson_r": nan, "pearson_p": nan, "spearman_rho": nan, "spearman_p": nan}
    pr = stats.pearsonr(x[ok], y[ok])
    sr = stats.spearmanr(x[ok], y[ok])
    return {
        "n": n,
        "pearson_r": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman_rho": float(sr.statistic),
        "spearman_p": float(sr.pvalue),
    }
