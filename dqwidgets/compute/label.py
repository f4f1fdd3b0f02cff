"""Label issues: the calibrated probability that each given label is wrong, and the flags that follow.

- The evidence: out-of-fold probe probabilities averaged with the labels of each sample's nearest
  neighbours (kNN label agreement, Zhu, Dong & Liu, "Detecting Corrupted Labels Without Training a
  Model to Predict", ICML 2022): the probe sees the global linear structure, the neighbours the
  local one.
- The probability: a class-conditional noise model fitted by EM (Dawid & Skene 1979): the evidence
  calibrated by a temperature and a bias per class (bias-corrected temperature scaling, Alexandari et
  al., ICML 2020: the bias undoes the boundary shift that one-sided noise puts into evidence fitted to
  the noisy labels, see :func:`fit_noise_model`) is the clean posterior ``pi(x)``, a noise matrix
  ``T[j, y]`` maps it to the given labels, and ``P(true = j | x, given y) ∝ pi_j(x) T[j, y]``. ``label_issue_score`` is
  ``1 - P(true = given | x, given)``. Plain temperature scaling on noisy labels calibrates the
  *noisy* posterior, whose ``1 - p(y)`` counts hard samples as errors (it estimated 2-6x too many
  errors on every planted case); confident learning's count (Northcutt, Jiang & Chuang, JAIR 2021,
  kept below for the Ray engine) counts the probe's own mistakes as label errors when the probe is weak.
- Foreign samples: a sample that no class fits (from another source) has a wrong label too, whatever
  class it was given. Where the OOD step found foreign regions (compute.foreign, whose membership
  probability is calibrated), :func:`with_foreign` makes the score ``P(label wrong) = P(foreign) +
  (1 - P(foreign)) P(wrong class | in distribution)``, so one calibrated probability covers both ways a
  label is wrong, and the flag count and the estimated precision follow from it; such a sample's
  suggested action is "drop", not a relabel (``Analysis._suggest``).
- The flags: the expected-F1 count of these probabilities (compute.calibration), highest first; the
  suggested label is the most likely true class other than the given one.
- No information, no score: where the temperature-scaled evidence does not predict the given labels
  better than the class shares by ``Z_INFORMATION`` standard errors of its mean gain
  (``label_information``: features in another row order than the labels, a constant or random
  embedding, one class per sample), the score is NaN and nothing is flagged, with a warning: otherwise
  an uninformative probe, read as the clean posterior, made every label outside the largest class
  "wrong" (constant features: 183 of 300 flagged), or the noise model read an out-of-fold probe's
  anti-correlation with random labels as labels all wrong (random binary features: 1,864 of 2,000;
  bench/results/bench_label_information.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPERATURE_ROWS = 100_000  # labelled rows the noise model's calibration fit reads (fit_noise_model)
BIAS_SD = 2.0  # s.d. of the Gaussian prior on the noise model's class biases (fit_noise_model)
_BLOCK = 1 << 17  # rows per block of the label step's N x C work arrays (the noise model's among them)
# the evidence's gain over the class shares must be this many standard errors above 0 to score labels (label_information;
# the foreign search's Z_SE), read on at most INFORMATION_ROWS labelled rows
Z_INFORMATION = 3.0
INFORMATION_ROWS = 100_000


def knn_label_distribution(neighbors: np.ndarray, label_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """N x C share of each sample's neighbours carrying each label (unlabelled neighbours, code < 0,
    are ignored; a sample with no labelled neighbour gets the uniform distribution). ``_BLOCK`` rows at
    a time: the neighbours' labels and their counts stay ``_BLOCK`` x k (whole-N int64 copies held
    ~440 MB at 1M x 15); counts are exact, so the result is the one a single pass gives."""
    n = len(neighbors)
    Q = np.empty((n, n_classes), dtype=np.float32)
    for s in range(0, n, _BLOCK):
        nb_labels = np.asarray(label_codes)[neighbors[s:s + _BLOCK]]  # block x k
        m = len(nb_labels)
        ok = nb_labels >= 0
        at = (np.broadcast_to(np.arange(m)[:, None], nb_labels.shape) * n_classes + nb_labels)[ok]
        counts = np.bincount(at, minlength=m * n_classes).reshape(m, n_classes).astype(np.float32)
        total = counts.sum(1, keepdims=True)
        Q[s:s + m] = np.where(total > 0, counts / np.maximum(total, 1), 1.0 / n_classes)
    return Q


def per_class_thresholds(probs: np.ndarray, label_codes: np.ndarray) -> np.ndarray:
    """t_j = mean of p(j | x) over the samples labelled j (confident learning, eq. 2)."""
    n_classes = probs.shape[1]
    lab = label_codes >= 0
    sums = np.zeros(n_classes)
    np.add.at(sums, label_codes[lab], probs[lab, label_codes[lab]])
    counts = np.bincount(label_codes[lab], minlength=n_classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(probs: np.ndarray, label_codes: np.ndarray) -> np.ndarray:
    """C x C calibrated confident joint: entry [y, j] estimates how many samples labelled y truly
    belong to j; rows sum to the class counts (confident learning, eqs. 1-3)."""
    n_classes = probs.shape[1]
    t = per_class_thresholds(probs, label_codes)
    rows = np.flatnonzero(label_codes >= 0)
    y = label_codes[rows]
    guess, confident = np.empty(len(rows), np.int64), np.empty(len(rows), bool)
    for s in range(0, len(rows), _BLOCK):  # row blocks: the masked copy stays _BLOCK x C
        P = probs[rows[s:s + _BLOCK]]
        above = P >= t[None, :]
        guess[s:s + _BLOCK] = np.where(above, P, -np.inf).argmax(1)
        confident[s:s + _BLOCK] = above.any(1)
    C = np.zeros((n_classes, n_classes))
    np.add.at(C, (y[confident], guess[confident]), 1.0)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    row = C.sum(1, keepdims=True)
    return np.where(row > 0, C / np.maximum(row, 1e-12) * counts[:, None], np.diag(counts))


def label_issue_score(probs: np.ndarray, knn_dist: np.ndarray | None, label_codes: np.ndarray,
                      knn_weight: float = 0.5) -> np.ndarray:
    """1 - (combined self-confidence) in [0, 1]: (1 - w) p(y|x) from the probe + w × the share of
    neighbours labelled y. NaN for unlabelled samples (code < 0)."""
    combined = combined_probs(probs, knn_dist, knn_weight)
    score = np.full(len(label_codes), np.nan, dtype=np.float32)
    lab = label_codes >= 0
    score[lab] = 1.0 - combined[lab, label_codes[lab]]
    return np.clip(score, 0.0, 1.0)


def combined_probs(probs: np.ndarray, knn_dist: np.ndarray | None, knn_weight: float = 0.5) -> np.ndarray:
    """``(1 - w) probs + w knn_dist``, ``_BLOCK`` rows at a time into the result (no whole-N temporaries)."""
    if knn_dist is None or knn_weight == 0:
        return probs
    out = np.empty(np.broadcast_shapes(np.shape(probs), np.shape(knn_dist)),
                   dtype=np.result_type(np.asarray(probs[:0]), np.asarray(knn_dist[:0]), 1.0 - knn_weight))
    for s in range(0, len(out), _BLOCK):
        out[s:s + _BLOCK] = (1.0 - knn_weight) * probs[s:s + _BLOCK] + knn_weight * knn_dist[s:s + _BLOCK]
    return out


def flag_label_issues(score: np.ndarray, label_codes: np.ndarray, n_issues_per_class: np.ndarray) -> np.ndarray:
    """Flag, within each given class y, the ``n_issues_per_class[y]`` samples with the highest score."""
    flags = np.zeros(len(score), dtype=bool)
    for c, n_c in enumerate(np.round(n_issues_per_class).astype(int)):
        members = np.flatnonzero(label_codes == c)
        if n_c <= 0 or len(members) == 0:
            continue
        top = members[np.argsort(-score[members], kind="stable")[:n_c]]
        flags[top] = True
    return flags


@dataclass
class LabelIssues:
    """What :func:`find_label_issues` returns, one entry per sample unless said otherwise."""

    label_issue_score: np.ndarray  # float32: P(the given label is wrong | x, label), NaN for unlabelled samples
    is_label_issue: np.ndarray  # bool: the expected-F1 count of the highest scores
    suggested_label: np.ndarray  # int64: the most likely true class other than the given one (-1 = none)
    n_issues_per_class: np.ndarray  # float C: expected wrong labels per given class (sum of the score)
    combined_probs: np.ndarray  # float32 N x C: probe and neighbour labels, averaged
    posterior: np.ndarray | None = None  # float32 N x C: P(true class | x, given label)
    noise_matrix: np.ndarray | None = None  # C x C: P(given label = column | true class = row)
    temperature: float = 1.0
    count: int = 0  # how many are flagged by default
    information: float = float("nan")  # nats per labelled sample the evidence tells about the labels (label_information)
    information_z: float = float("nan")  # that gain in standard errors: not above Z_INFORMATION = not scored
    bias: np.ndarray | None = None  # float C: the noise model's class biases (fit_noise_model)


def _row_sample(rows: np.ndarray, max_rows: int, seed: int = 0) -> np.ndarray:
    """``rows``, or a seeded sample of ``max_rows`` of them in their order when there are more."""
    if len(rows) <= max_rows:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))


def _calibrated(logits: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    """float64 ``softmax(logits / temperature + bias)`` of a block of rows: the noise model's clean posterior."""
    s = np.asarray(logits, dtype=np.float64) / temperature + bias
    s -= s.max(1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(1, keepdims=True)
    return s


def fit_noise_model(combined: np.ndarray, label_codes: np.ndarray, init_noise: float | None = None,
                    iters: int = 60) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """``(posterior N x C, noise matrix C x C, temperature, class biases C)`` of the class-conditional
    noise model ``p(given = y | x) = sum_j pi_j(x) T[j, y]`` with ``pi = softmax(log combined /
    temperature + bias)`` the clean posterior. Fitted by EM on the labelled rows (Dawid & Skene, "Maximum
    Likelihood Estimation of Observer Error-Rates Using the EM Algorithm", Applied Statistics 1979); the
    calibration of the evidence, refitted each step by maximum likelihood through the noise matrix, is
    bias-corrected temperature scaling (one temperature, Guo et al. 2017, and a bias per class: Alexandari,
    Kundaje & Shrikumar, "Maximum Likelihood with Bias-Corrected Calibration is Hard-To-Beat at Label Shift
    Adaptation", ICML 2020), with a Gaussian prior of s.d. ``BIAS_SD`` on each bias so that a small class
    cannot pull its own.

    Why the biases. The evidence is fitted to the noisy labels, so where one class sends a share of its
    samples to another (asymmetric noise: 30% of benign tumours labelled malignant), the evidence's
    boundary moves into the sending class: its samples near the boundary read "malignant" at 0.7. A
    temperature alone is symmetric in the log-odds, so reading the sending class's core as clean (sharp)
    also read those boundary samples as confidently of the other class, and the likelihood preferred the
    evidence as it is, soft, with almost no noise: 42 flags for 107 wrong labels on breast_cancer (F1 0.56
    of its best), 5 for 21 on wine. The class bias moves the boundary back, and the noise is found
    (110 flags at precision 0.94; F1 0.99-1.00 of the best; bench_generalisation's neighbour30 cases);
    on symmetric noise the biases stay near 0 and the flags are those of the temperature alone.

    EM starts from confident learning's noise matrix (the calibrated confident joint), or from a
    symmetric ``init_noise`` when given. Where the likelihood identifies the noise (a probe that
    separates the classes), every start ends at the same point; where it barely does (a weak binary
    probe: the likelihood is flat along "more noise, sharper posterior"), EM stops on that ridge
    near confident learning's estimate instead of drifting to "no noise at all"."""
    from scipy.optimize import minimize

    from dqwidgets.compute.calibration import probs_to_logits

    n, C = combined.shape

    def logits(rows):  # float64 log combined of these rows, per block (a whole-N copy is 160 MB at 1M x 20)
        return probs_to_logits(combined[rows])

    codes = np.asarray(label_codes)
    lab = np.flatnonzero(codes >= 0)
    y = codes[lab]
    # The labelled rows' log combined, taken once: EM reads it ~20 times an iteration (the calibration's fit),
    # and a gather + log per block each time cost +13% at 300k x 20. One pass stays float64 (<= one block);
    # more rows are kept float32 (80 MB at 1M x 20 instead of 160) and widened a block at a time.
    lab_logits = np.empty((len(lab), C), dtype=np.float64 if len(lab) <= _BLOCK else np.float32)
    for s0 in range(0, len(lab), _BLOCK):
        lab_logits[s0:s0 + _BLOCK] = logits(lab[s0:s0 + _BLOCK])
    if init_noise is None:
        cj = confident_joint(combined, codes)  # [given y, true j]
        T = cj.T / np.maximum(cj.T.sum(1, keepdims=True), 1e-12)  # [true j, given y]
        T = 0.98 * T + 0.02 * (np.eye(C) if C > 1 else 1.0)
        T /= T.sum(1, keepdims=True)
    else:
        T = np.full((C, C), init_noise / max(C - 1, 1))
        np.fill_diagonal(T, 1.0 - init_noise if C > 1 else 1.0)
    blocks = [slice(s, s + _BLOCK) for s in range(0, len(lab), _BLOCK)]  # of the labelled rows
    # the calibration (C + 1 numbers) is fitted on at most TEMPERATURE_ROWS labelled rows drawn once
    # (seeded): each EM step evaluates its likelihood ~10 times, which over every row of 1M was most of
    # the label step; the noise matrix and the posteriors use every row
    fit = _row_sample(np.arange(len(lab)), TEMPERATURE_ROWS)
    fit_logits, fit_y = (lab_logits, y) if len(fit) == len(lab) else (lab_logits[fit], y[fit])
    fit_blocks = [slice(s, s + _BLOCK) for s in range(0, len(fit_y), _BLOCK)]
    m_fit = max(len(fit_y), 1)
    prior = 0.5 / BIAS_SD ** 2  # the biases' Gaussian prior, as a penalty on the total negative log-likelihood
    theta = np.zeros(C + 1)  # log temperature, then the class biases
    for _ in range(iters):
        def nll(th, T=T):
            t, b = float(np.exp(th[0])), th[1:]
            total, g_t, g_b = 0.0, 0.0, np.zeros(C)
            for blk in fit_blocks:  # row blocks: the temporaries stay _BLOCK x C (a 1M-row run held ~1.4 GB)
                z = np.asarray(fit_logits[blk], dtype=np.float64)
                pi = _calibrated(z, t, b)
                a = T[:, fit_y[blk]].T
                m = (pi * a).sum(1) + 1e-300
                total += float(np.log(m).sum())
                d = pi * a / m[:, None] - pi  # d log m / d logit
                g_b -= d.sum(0)
                g_t += float((d * z).sum()) / t
            return ((-total + prior * float(b @ b)) / m_fit,
                    np.r_[g_t, g_b + 2.0 * prior * b] / m_fit)

        theta = minimize(nll, theta, jac=True, method="L-BFGS-B",
                         bounds=[(-3.0, 3.0)] + [(None, None)] * C).x
        temp, bias = float(np.exp(theta[0])), theta[1:]
        M = np.zeros((C, C))
        for b in blocks:
            R = _calibrated(lab_logits[b], temp, bias) * T[:, y[b]].T
            R /= np.maximum(R.sum(1, keepdims=True), 1e-300)
            np.add.at(M.T, y[b], R)  # M[j, y] += R[i, j]
        T_new = M / np.maximum(M.sum(1, keepdims=True), 1e-12)
        empty = M.sum(1) <= 0
        T_new[empty] = T[empty]
        done = np.abs(T_new - T).max() < 1e-4
        T = T_new
        if done:
            break
    temp, bias = float(np.exp(theta[0])), theta[1:]
    post = np.empty((n, C), dtype=np.float32)
    for s0 in range(0, n, _BLOCK):
        post[s0:s0 + _BLOCK] = _calibrated(logits(slice(s0, s0 + _BLOCK)), temp, bias)
    for b in blocks:  # labelled rows: P(true = j | x, given y)
        rows = lab[b]
        R = post[rows].astype(np.float64) * T[:, y[b]].T
        post[rows] = R / np.maximum(R.sum(1, keepdims=True), 1e-300)
    return post, T, temp, bias


def label_information(combined: np.ndarray, label_codes: np.ndarray, max_rows: int = INFORMATION_ROWS,
                      seed: int = 0) -> tuple[float, float]:
    """``(gain, z)``: how much the evidence tells about the given labels. ``gain`` is the mean over the
    labelled samples of ``log p(y | x) - log share(y)`` (nats), ``p`` the evidence temperature-scaled to
    the given labels (Guo et al. 2017) and ``share`` the class shares: the log-loss improvement over a
    model that ignores the features, the foreign search's ``g_all`` on this evidence. ``z``: the gain in
    standard errors of its mean. Where it is not ``Z_INFORMATION`` s.e. above 0 the features do not
    predict the labels (features in another row order than the labels, a constant or random embedding,
    a label that names each sample), and a noise model fitted there reads an out-of-fold probe's
    anti-correlation with random labels (a held-out sample's own class is short in its training folds)
    as labels all wrong (random binary features: 1,864 of 2,000 flagged; bench_label_information). Read on a random
    ``max_rows`` of the labelled rows at most (the test needs no more; it keeps the cost flat in N)."""
    from dqwidgets.compute.calibration import _log_softmax, fit_temperature, probs_to_logits

    codes = np.asarray(label_codes)
    lab = np.flatnonzero(codes >= 0)
    if len(lab) < 3:
        return float("nan"), float("nan")
    lab = _row_sample(lab, max_rows, seed)
    y = codes[lab]
    C = combined.shape[1]
    counts = np.bincount(y, minlength=C).astype(np.float64)
    log_share = np.log(np.maximum(counts, 0.5) / len(y))
    part = np.asarray(combined[lab])
    t = fit_temperature(part, y, floor=1e-6)
    gain = np.empty(len(y))
    for s in range(0, len(y), _BLOCK):
        logp = _log_softmax(probs_to_logits(part[s:s + _BLOCK]) / t)
        gain[s:s + _BLOCK] = logp[np.arange(len(logp)), y[s:s + _BLOCK]] - log_share[y[s:s + _BLOCK]]
    mean = float(gain.mean())
    se = float(gain.std(ddof=1) / np.sqrt(len(gain)))
    return mean, (mean / se if se > 0 else (np.inf if mean > 0 else -np.inf))


def with_foreign(score: np.ndarray, foreign_probability: np.ndarray | None) -> tuple[np.ndarray, int]:
    """``(P(label wrong), expected-F1 count)`` when a sample may also be foreign: ``1 - (1 - P(foreign))
    (1 - score)``, NaN where ``score`` is (unlabelled). Without foreign probabilities the score is kept."""
    from dqwidgets.compute.calibration import expected_f1_count

    score = np.asarray(score, dtype=np.float32)
    if foreign_probability is not None:
        pf = np.clip(np.nan_to_num(np.asarray(foreign_probability, dtype=np.float64), nan=0.0), 0.0, 1.0)
        score = (1.0 - (1.0 - pf) * (1.0 - score.astype(np.float64))).astype(np.float32)
    lab = np.isfinite(score)
    return score, expected_f1_count(score[lab])


def find_label_issues(probs: np.ndarray, neighbors: np.ndarray | None, label_codes: np.ndarray,
                      knn_weight: float = 0.5) -> LabelIssues:
    """Score and flag label issues.

    The score is the calibrated probability that the given label is wrong, ``1 - P(true = given | x,
    given)`` under the noise model of :func:`fit_noise_model` on the averaged probe and neighbour-label
    probabilities. The flags are the highest scores, as many as maximise the expected F1
    (``compute.calibration.expected_f1_count``): the right number follows from the probabilities, not from
    one dataset's tuning. ``suggested_label`` is the most likely true class other than the given one."""
    from dqwidgets.compute.calibration import expected_f1_count

    n_classes = probs.shape[1]
    codes = np.asarray(label_codes)
    Q = knn_label_distribution(neighbors, codes, n_classes) if neighbors is not None else None
    combined = combined_probs(probs, Q, knn_weight)
    del Q  # N x C float32, in combined now
    gain, z = label_information(combined, codes)
    lab = codes >= 0
    if not z > Z_INFORMATION:  # the evidence does not predict the labels: nothing to score
        n = len(codes)
        return LabelIssues(np.full(n, np.nan, np.float32), np.zeros(n, bool), np.full(n, -1, np.int64),
                           np.zeros(n_classes), combined.astype(np.float32, copy=False), None, None, 1.0, 0, gain, z)
    post, T, temp, bias = fit_noise_model(combined, codes)
    score = np.full(len(codes), np.nan, dtype=np.float32)
    score[lab] = np.clip(1.0 - post[lab, codes[lab]], 0.0, 1.0)
    suggested = np.full(len(codes), -1, np.int64)
    for s in range(0, len(codes) if n_classes > 1 else 0, _BLOCK):  # the posterior without the given class
        others = post[s:s + _BLOCK].copy()
        given = np.flatnonzero(lab[s:s + _BLOCK])
        others[given, codes[s + given]] = -1.0
        suggested[s:s + _BLOCK] = others.argmax(1)
    count = expected_f1_count(score[lab])
    flags = np.zeros(len(codes), dtype=bool)
    if count > 0:
        order = np.flatnonzero(lab)[np.argsort(-score[lab], kind="stable")[:count]]
        flags[order] = True
    per_class = np.bincount(codes[lab], weights=score[lab].astype(np.float64), minlength=n_classes)
    return LabelIssues(score, flags, suggested, per_class, combined.astype(np.float32, copy=False), post, T, temp,
                       count, gain, z, bias)
