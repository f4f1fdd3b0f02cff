"""Foreign clusters: regions of the kNN graph whose labels look random to the probe.

A group of samples from another source (a batch of images of classes outside the label set, rows
pasted from another table) are each other's neighbours, so every per-sample distance calls them
typical. What gives them away is slice-level evidence: their given labels carry no information the
features can confirm. For each community of the kNN graph (Leiden, Traag et al. 2019, at a finer
resolution than the slice table so that a foreign group is not merged into the class it resembles)
we compare two explanations of its labels:

- *in distribution*: the labels follow the out-of-fold probe, ``log p(y_i | x_i)``;
- *foreign*: the labels were drawn at random with the dataset's class shares, ``log prior(y_i)``.

A community is foreign when the random-labels explanation wins by at least ``min_llr`` nats per
sample on average (labels are ``e`` times likelier by chance than by the probe) *and* its label
shares are compatible with the dataset's (a G-test at ``alpha`` over the number of communities tested): a confusable region of two or
three classes the probe mixes up has low probe likelihood too, but its labels concentrate on those
classes. Inside a foreign community each member's probability of being foreign is its
responsibility under the two-component mixture (share fitted by EM), so in-distribution samples
that Leiden put in the same community are not flagged with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LLR = 1.0  # nats per sample by which "random labels" must beat "the probe"
ALPHA = 0.01  # G-test level at which a community's label shares are "the dataset's"
RESOLUTION = 3.0  # Leiden resolution of the communities tested
MIN_SIZE = 10
Z_FAR = 5.0  # a community whose median member is this far out (robust z) is foreign whatever its labels


@dataclass
class ForeignClusters:
    community: np.ndarray  # int64 per graph node (Leiden at RESOLUTION)
    foreign_communities: np.ndarray  # int64 ids of the communities judged foreign
    probability: np.ndarray  # float64 per node: P(foreign) (0 outside foreign communities)
    llr: np.ndarray  # float64 per community: mean log prior(y) - log p(y|x)
    g_pvalue: np.ndarray  # float64 per community: G-test p-value of its label shares vs the dataset's


def _mixture_responsibility(p_prior: np.ndarray, p_probe: np.ndarray, iters: int = 50) -> np.ndarray:
    """EM for the share f of 'random-label' members; returns each member's responsibility."""
    f = 0.5
    for _ in range(iters):
        a, b = f * p_prior, (1.0 - f) * p_probe
        r = a / np.maximum(a + b, 1e-300)
        f_new = float(r.mean())
        if abs(f_new - f) < 1e-6:
            break
        f = f_new
    return r


def find_foreign_clusters(neighbors: np.ndarray, label_codes: np.ndarray, probs: np.ndarray,
                          seed: int = 0, resolution: float = RESOLUTION, min_llr: float = MIN_LLR,
                          alpha: float = ALPHA, communities: np.ndarray | None = None,
                          zscores: np.ndarray | None = None) -> ForeignClusters:
    """Foreign communities of a kNN graph (``neighbors``: n x k positions) from the given labels
    (codes, -1 = unlabelled) and out-of-fold ``probs`` (n x C). ``communities``: precomputed ids.

    ``zscores``: the per-sample OOD robust z (compute.ood). A community whose *median* member lies
    ``Z_FAR`` robust standard deviations out (and beyond the 99th percentile of every other sample's z) is
    foreign too, whatever its labels (a tight group all
    given one label teaches the probe that label): one far sample can be a rare in-distribution one,
    but half of a community of them is a region no class reaches. Its members' probability is the
    logistic of their own z (0.5 at compute.ood.Z_FLAG)."""
    from scipy.stats import chi2

    n = len(neighbors)
    codes = np.asarray(label_codes)
    if communities is None:
        from dqwidgets.compute.slices import _leiden, _symmetric_adjacency

        communities = _leiden(_symmetric_adjacency(neighbors), resolution, seed)
    comm = np.asarray(communities, dtype=np.int64)
    K = int(comm.max()) + 1 if n else 0
    prob = np.zeros(n)
    lab = codes >= 0
    llr = np.full(K, np.nan)
    pval = np.full(K, np.nan)
    far = []
    if zscores is not None and K:
        from dqwidgets.compute.ood import z_to_score

        z = np.nan_to_num(np.asarray(zscores, dtype=np.float64), nan=-np.inf)
        sizes = np.bincount(comm, minlength=K)
        for c in np.flatnonzero(sizes >= MIN_SIZE):
            m = comm == c
            if np.median(z[m]) < Z_FAR:
                continue
            # far = beyond Z_FAR and beyond the 99th percentile of every other sample (tables have heavy tails)
            rest = z[~m]
            rest = rest[np.isfinite(rest)]
            if not len(rest) or np.median(z[m]) >= np.quantile(rest, 0.99):
                far.append(c)
                prob[m] = np.maximum(prob[m], z_to_score(z[m]))
    if lab.sum() < 2 or probs is None:
        return ForeignClusters(comm, np.asarray(far, np.int64), prob, llr, pval)
    C = probs.shape[1]
    prior = np.bincount(codes[lab], minlength=C).astype(np.float64)
    prior = (prior + 0.5) / (prior.sum() + 0.5 * C)
    rows = np.flatnonzero(lab)
    p_prior = prior[codes[rows]]
    p_probe = np.clip(probs[rows, codes[rows]].astype(np.float64), 1e-6, 1.0)
    per = np.log(p_prior) - np.log(p_probe)
    cm = comm[rows]
    size = np.bincount(cm, minlength=K)
    llr = np.bincount(cm, per, minlength=K) / np.maximum(size, 1)
    share = np.zeros(K)
    foreign = []
    tested = np.flatnonzero((size >= MIN_SIZE) & (llr >= min_llr))
    level = alpha / max(len(tested), 1)  # Bonferroni: a foreign community is not rejected by chance among many
    for c in tested:
        m = cm == c
        r = _mixture_responsibility(p_prior[m], p_probe[m])
        share[c] = r.mean()
        # the random-looking part's label shares against the dataset's (a confusable region's
        # labels concentrate on the classes the probe mixes up)
        w = np.bincount(codes[rows[m]], r, minlength=C)
        e = r.sum() * prior
        with np.errstate(divide="ignore", invalid="ignore"):
            g_w = 2.0 * np.where(w > 0, w * np.log(np.maximum(w, 1e-300) / np.maximum(e, 1e-300)), 0.0).sum()
        pval[c] = chi2.sf(g_w, df=max(C - 1, 1))
        if share[c] >= 0.5 and pval[c] >= level:
            foreign.append(c)
            prob[rows[m]] = np.maximum(prob[rows[m]], r)
    return ForeignClusters(comm, np.asarray(sorted(set(foreign) | set(far)), np.int64), prob, llr, pval)
