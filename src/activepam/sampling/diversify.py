"""Diversification: choose ``q`` units out of one stratum's candidates.

The embedding selectors take candidates ALREADY ORDERED by preference (score descending, ties
broken by a seeded key; see :func:`top_m`), so "first" means "most uncertain" and argmax ties
resolve to the better score. They return a :class:`Picked`: positions into the candidate
arrays, in selection order, with a cluster id (-1 when the method has none) and a
human-readable reason per pick.

* :func:`top_score` - the ``q`` best scores (no diversification);
* :func:`kmeans_select` - k-means on the embeddings (``k`` = ``q`` by default; exact Lloyd
  k-means up to :data:`SMALL_KMEANS` candidates, scikit-learn MiniBatchKMeans above), then the
  most uncertain unit per cluster (several per cluster, split evenly, when ``k < q``); a pick
  short of the quota (empty clusters, duplicate embeddings) is topped up with the next
  candidates by score (:func:`top_up`), so ``q`` asked means ``q`` returned when there are
  ``q`` candidates;
* :func:`ward_select` - Ward agglomerative clustering of a seeded subsample (``subsample`` rows),
  the other candidates join the nearest Ward centroid, then as k-means;
* :func:`farthest_first` - k-center greedy (core-set) traversal, optionally seeded by the
  embeddings of already-labelled units; without seeds it starts at the most uncertain unit;
* :func:`species_balanced` - even allocation over predicted top-1 species with at least
  ``minimum`` per species where available (water-filling), best scores within a species
  (takes unordered candidates with their scores: it needs the whole stratum, not a prefix).

Embeddings can be L2-normalised (``normalize``) and PCA-reduced (``pca`` components, randomized
SVD fitted on the candidates) before clustering; this keeps 1024-d BirdNET embeddings cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from activepam.core.strata import allocate


@dataclass
class Picked:
    """Selected candidate positions (in order) with cluster ids and reasons."""

    pos: np.ndarray
    cluster: np.ndarray
    reason: list[str] = field(default_factory=list)

    @staticmethod
    def empty() -> Picked:
        return Picked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [])


def preference_order(score: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Indices sorted by score descending (NaN last), ties by ``tiebreak`` ascending."""
    s = np.where(np.isnan(score), -np.inf, score)
    return np.lexsort((tiebreak, -s))


def top_score(n: int, q: int, label: str = "top score") -> Picked:
    """The first ``q`` of ``n`` preference-ordered candidates."""
    q = min(q, n)
    return Picked(
        np.arange(q, dtype=np.int64),
        np.full(q, -1, dtype=np.int64),
        [f"{label} (rank {i + 1})" for i in range(q)],
    )


def prepare_embeddings(
    x: np.ndarray, normalize: bool = False, pca: int | None = None, seed: int | None = 0
) -> np.ndarray:
    """float32 copy of ``x``, optionally L2-normalised and PCA-reduced to ``pca`` dimensions."""
    x = np.asarray(x, dtype=np.float32)
    if normalize:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norm, 1e-12)
    if pca and x.shape[1] > pca and x.shape[0] > pca:
        from sklearn.decomposition import PCA

        x = (
            PCA(n_components=int(pca), svd_solver="randomized", random_state=seed)
            .fit_transform(x)
            .astype(np.float32)
        )
    return x


def _per_cluster(labels: np.ndarray, k: int, q: int, method: str, seed: int | None) -> Picked:
    """Pick ``q`` candidates from cluster ``labels`` (candidates in preference order).

    With ``k >= q`` the best unit of each cluster is a representative and the ``q`` best
    representatives win; with ``k < q`` the quota is split evenly over the clusters
    (water-filling) and each cluster gives its best units.
    """
    n = len(labels)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    sizes = np.bincount(labels, minlength=k)
    if k >= q:
        reps = np.sort(first[sizes > 0])[:q]
        picked = Picked(
            reps, labels[reps], [f"{method}: cluster {labels[p]} most uncertain" for p in reps]
        )
        return top_up(picked, labels, q, method, int((sizes > 0).sum()))
    quota = allocate(sizes, q, seed=seed)
    rank_in_cluster = np.zeros(n, dtype=np.int64)
    seen = np.zeros(k, dtype=np.int64)
    for i, c in enumerate(labels):  # candidates are few (a multiple of the quota)
        rank_in_cluster[i] = seen[c]
        seen[c] += 1
    chosen = np.flatnonzero(rank_in_cluster < quota[labels])
    chosen = chosen[np.lexsort((chosen, rank_in_cluster[chosen]))]
    reasons = [
        f"{method}: cluster {labels[p]} "
        + ("most uncertain" if rank_in_cluster[p] == 0 else f"rank {rank_in_cluster[p] + 1}")
        + f" of quota {quota[labels[p]]}"
        for p in chosen
    ]
    return top_up(
        Picked(chosen, labels[chosen], reasons), labels, q, method, int((sizes > 0).sum())
    )


def top_up(picked: Picked, labels: np.ndarray, q: int, method: str, n_clusters: int) -> Picked:
    """Fill a short cluster pick up to ``min(q, candidates)`` units: empty clusters (duplicate
    or near-duplicate embeddings, a clustering that found fewer groups than asked) would
    otherwise return fewer units than the quota. The extra units are the best-scored
    candidates not yet chosen (candidates are in preference order), each with its reason."""
    n = len(labels)
    need = min(q, n) - len(picked.pos)
    if need <= 0:
        return picked
    taken = np.zeros(n, dtype=bool)
    taken[picked.pos] = True
    extra = np.flatnonzero(~taken)[:need]
    reasons = [
        f"{method}: top-up: next by score (candidate rank {p + 1}, cluster {labels[p]}; "
        f"{n_clusters} non-empty cluster(s) for a quota of {q})"
        for p in extra
    ]
    return Picked(
        np.concatenate([picked.pos, extra]).astype(np.int64),
        np.concatenate([picked.cluster, labels[extra]]).astype(np.int64),
        picked.reason + reasons,
    )


#: candidate sets up to this size are clustered with exact (Lloyd) k-means in numpy; larger
#: ones with scikit-learn's MiniBatchKMeans. Small per-stratum problems are then ~1 ms instead
#: of ~50 ms of scikit-learn set-up and thread-pool overhead per call.
SMALL_KMEANS = 4096


def lloyd_kmeans(
    x: np.ndarray, k: int, seed: int | None = 0, n_init: int = 3, max_iter: int = 100
) -> np.ndarray:
    """Exact k-means (k-means++ seeding, Lloyd iterations) for small ``x``; cluster labels.

    The best of ``n_init`` seeded runs (lowest inertia) wins; an emptied cluster is re-seeded
    with the point farthest from its centre.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    rng = np.random.default_rng(seed)
    x2 = (x * x).sum(axis=1)
    best_labels, best_inertia = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(max(1, n_init)):
        centres = np.empty((k, x.shape[1]))
        first = int(rng.integers(n))
        centres[0] = x[first]
        d2 = np.maximum(x2 + x2[first] - 2.0 * x @ x[first], 0.0)
        for j in range(1, k):
            total = d2.sum()
            pick = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
            centres[j] = x[pick]
            d2 = np.minimum(d2, np.maximum(x2 + x2[pick] - 2.0 * x @ x[pick], 0.0))
        labels = np.full(n, -1, dtype=np.int64)
        for _ in range(max_iter):
            dist = x2[:, None] + (centres * centres).sum(axis=1)[None, :] - 2.0 * x @ centres.T
            new = np.argmin(dist, axis=1)
            counts = np.bincount(new, minlength=k)
            for empty in np.flatnonzero(counts == 0):
                far = int(np.argmax(dist[np.arange(n), new]))
                new[far] = empty
                dist[far, empty] = -np.inf
                counts = np.bincount(new, minlength=k)
            if np.array_equal(new, labels):
                break
            labels = new
            sums = np.zeros_like(centres)
            np.add.at(sums, labels, x)
            centres = sums / np.maximum(counts, 1)[:, None]
        inertia = float(np.maximum(dist[np.arange(n), labels], 0).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels.copy(), inertia
    return best_labels


def _cluster_count(n: int, q: int, k: int | None, method: str) -> tuple[int, Picked | None]:
    """Number of clusters (``k``, default the quota ``q``, at most ``n``), or the pick itself
    when clustering is pointless: no more candidates than the quota, or a single cluster."""
    if n <= q:
        return 0, top_score(n, q, "all candidates (fewer than quota)")
    k = min(int(k or q), n)
    if k <= 1:
        return k, top_score(n, q, f"{method}: single cluster, top score")
    return k, None


def kmeans_select(
    x: np.ndarray,
    q: int,
    k: int | None = None,
    seed: int | None = 0,
    batch_size: int = 1024,
    n_init: int = 3,
) -> Picked:
    """k-means with ``k`` (default ``q``) clusters, then the most uncertain unit per cluster.

    Up to :data:`SMALL_KMEANS` candidates: exact Lloyd k-means (:func:`lloyd_kmeans`); above:
    scikit-learn ``MiniBatchKMeans`` (``batch_size``, ``n_init``), both seeded.
    """
    n = len(x)
    k, trivial = _cluster_count(n, q, k, "kmeans")
    if trivial is not None:
        return trivial
    if n <= SMALL_KMEANS:
        labels = lloyd_kmeans(x, k, seed, n_init)
    else:
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(
            n_clusters=k, random_state=seed, batch_size=batch_size, n_init=n_init, max_iter=100
        )
        labels = model.fit_predict(x).astype(np.int64)
    return _per_cluster(labels, k, q, "kmeans", seed)


def ward_select(
    x: np.ndarray, q: int, k: int | None = None, seed: int | None = 0, subsample: float = 2000
) -> Picked:
    """Ward clustering of a seeded subsample (``subsample`` rows, or that fraction of the
    candidates when < 1: McEwen et al. 2025 cluster 20 %), nearest-centroid assignment of the
    rest."""
    n = len(x)
    k, trivial = _cluster_count(n, q, k, "ward")
    if trivial is not None:
        return trivial
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(seed)
    size = int(np.ceil(subsample * n - 1e-9)) if subsample < 1 else int(subsample)
    m = max(min(n, size), k)
    sub = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    sub_labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x[sub])
    centroids = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(centroids, sub_labels, x[sub])
    centroids /= np.bincount(sub_labels, minlength=k)[:, None]
    labels = nearest_centroid(x, centroids)
    labels[sub] = sub_labels  # the subsample keeps its Ward clusters
    return _per_cluster(labels.astype(np.int64), k, q, "ward", seed)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of every row, in chunks."""
    c = np.asarray(centroids, dtype=np.float64)
    c2 = (c * c).sum(axis=1)
    out = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), chunk):
        xb = np.asarray(x[i : i + chunk], dtype=np.float64)
        out[i : i + chunk] = np.argmin(c2[None, :] - 2.0 * xb @ c.T, axis=1)
    return out


def farthest_first(x: np.ndarray, q: int, seeds: np.ndarray | None = None) -> Picked:
    """k-center greedy traversal: repeatedly take the candidate farthest from all chosen
    (and ``seeds``, e.g. labelled units) ones. Without seeds the first pick is candidate 0
    (the most uncertain). Ties go to the earlier (more uncertain) candidate."""
    n = len(x)
    q = min(q, n)
    if q == 0:
        return Picked.empty()
    xf = np.asarray(x, dtype=np.float64)
    x2 = (xf * xf).sum(axis=1)
    min_d2 = np.full(n, np.inf)
    if seeds is not None and len(seeds):
        s = np.asarray(seeds, dtype=np.float64)
        for i in range(0, len(s), 4096):
            sb = s[i : i + 4096]
            d2 = x2[:, None] + (sb * sb).sum(axis=1)[None, :] - 2.0 * xf @ sb.T
            min_d2 = np.minimum(min_d2, d2.min(axis=1))
    picks, reasons = [], []
    chosen = np.zeros(n, dtype=bool)
    for step in range(q):
        if step == 0 and not np.isfinite(min_d2).any():
            p = 0
            reasons.append("farthest_first: start at most uncertain")
        else:
            d = np.where(chosen, -np.inf, min_d2)
            p = int(np.argmax(d))
            dist = float(np.sqrt(max(d[p], 0.0)))
            reasons.append(
                f"farthest_first: step {step + 1}, distance {dist:.3g} to nearest chosen"
                + (" or labelled" if seeds is not None and len(seeds) else "")
            )
        picks.append(p)
        chosen[p] = True
        min_d2 = np.minimum(min_d2, x2 + x2[p] - 2.0 * (xf @ xf[p]))
        min_d2[p] = 0.0
    pos = np.asarray(picks, dtype=np.int64)
    return Picked(pos, np.full(len(pos), -1, dtype=np.int64), reasons)


def typiclust(
    x: np.ndarray,
    q: int,
    seeds: np.ndarray | None = None,
    n_neighbors: int = 20,
    seed: int | None = 0,
) -> Picked:
    """TypiClust (Hacohen, Dekel & Weinshall 2022, "Active learning on a budget"): k-means
    with k = labelled + q clusters, then from each of the ``q`` largest clusters holding no
    labelled unit (``seeds``) the most *typical* candidate: the highest inverse mean distance
    to its ``n_neighbors`` nearest neighbours within the cluster. A cold-start strategy: it
    needs no model scores. Short of clusters, the batch is topped up with the next most
    typical candidates."""
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    q = min(q, n)
    if q == 0:
        return Picked.empty()
    xf = np.asarray(x, dtype=np.float64)
    s = np.asarray(seeds, dtype=np.float64) if seeds is not None and len(seeds) else None
    k = min(n, q + (0 if s is None else len(s)))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(xf)
    labels = km.labels_
    covered = set(km.predict(s).tolist()) if s is not None else set()
    typ = np.zeros(n)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        nn = min(n_neighbors, len(members) - 1)
        if nn < 1:
            typ[members] = 0.0
            continue
        d, _ = NearestNeighbors(n_neighbors=nn + 1).fit(xf[members]).kneighbors(xf[members])
        typ[members] = 1.0 / (d[:, 1:].mean(axis=1) + 1e-12)
    sizes = np.bincount(labels, minlength=k)
    order = [c for c in np.argsort(-sizes, kind="stable") if c not in covered]
    picks, reasons, clusters = [], [], []
    for c in order[:q]:
        members = np.flatnonzero(labels == c)
        best = int(members[np.argmax(typ[members])])
        picks.append(best)
        clusters.append(int(c))
        reasons.append(
            f"typiclust: most typical of cluster {c} ({sizes[c]} candidates, no labelled unit)"
        )
    if len(picks) < q:  # every cluster covered or too few: the next most typical candidates
        rest = [i for i in np.argsort(-typ, kind="stable") if i not in set(picks)]
        for i in rest[: q - len(picks)]:
            picks.append(int(i))
            clusters.append(int(labels[i]))
            reasons.append(f"typiclust: top-up, next most typical (cluster {labels[i]})")
    return Picked(np.asarray(picks, dtype=np.int64), np.asarray(clusters, dtype=np.int64), reasons)


def top_m(score: np.ndarray, tiebreak: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` best scores (NaN last; ties at the cut by smallest ``tiebreak``),
    returned in preference order. Linear time (argpartition) plus a sort of the ``m`` winners."""
    n = len(score)
    s = np.where(np.isnan(score), -np.inf, score)
    if m >= n:
        idx = np.arange(n)
    elif m <= 0:
        return np.zeros(0, dtype=np.int64)
    else:
        part = np.argpartition(-s, m - 1)[:m]
        cut = s[part].min()
        above = np.flatnonzero(s > cut)
        ties = np.flatnonzero(s == cut)
        need = m - len(above)
        if need < len(ties):
            ties = ties[np.argpartition(tiebreak[ties], need - 1)[:need]]
        idx = np.concatenate([above, ties])
    return idx[np.lexsort((tiebreak[idx], -s[idx]))].astype(np.int64)


def species_balanced(
    species_codes: np.ndarray,
    score: np.ndarray,
    tiebreak: np.ndarray,
    q: int,
    species_labels: list[str],
    minimum: int = 1,
    seed: int | None = 0,
) -> Picked:
    """Even allocation of ``q`` over the predicted species (>= ``minimum`` each where available,
    when the quota allows it for every species; water-filling), best scores within a species.
    Missing species (code -1) form their own group. Picks are returned round by round (every
    species' best, then every species' second best, ...)."""
    codes = np.asarray(species_codes, dtype=np.int64)
    n = len(codes)
    if n == 0 or q <= 0:
        return Picked.empty()
    groups, inverse = np.unique(codes, return_inverse=True)
    inverse = inverse.ravel()
    sizes = np.bincount(inverse, minlength=len(groups))
    quota = allocate(sizes, q, minimum=minimum, seed=seed)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    pos, rank = [], []
    for g in np.flatnonzero(quota):
        members = order[bounds[g] : bounds[g + 1]]
        best = members[top_m(score[members], tiebreak[members], int(quota[g]))]
        pos.append(best)
        rank.append(np.arange(len(best)))
    p = np.concatenate(pos)
    r = np.concatenate(rank)
    sel = np.lexsort((tiebreak[p], -np.where(np.isnan(score[p]), -np.inf, score[p]), r))
    p, r = p[sel], r[sel]
    names = [species_labels[c] if c >= 0 else "unknown" for c in groups]
    reasons = [
        f"species_balanced: {names[inverse[i]]} rank {k + 1} of quota "
        f"{quota[inverse[i]]} ({sizes[inverse[i]]} available)"
        for i, k in zip(p, r)
    ]
    return Picked(p.astype(np.int64), np.full(len(p), -1, dtype=np.int64), reasons)
