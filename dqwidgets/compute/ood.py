"""Out-of-distribution scores, and how they are combined.

- kNN distance (Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
  ICML 2022): the distance from a sample's normalised embedding to its k-th nearest neighbour.
- Class-conditional Mahalanobis distance (Lee, Lee, Lee & Shin, "A Simple Unified Framework for
  Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018): the smallest
  distance to a class mean under a shared (tied) covariance. It catches a *cluster* of foreign
  samples, which the kNN distance misses because they are each other's neighbours. The class
  statistics are refitted a few times without the farthest samples of each class, so that a
  planted cluster does not widen the covariance it is measured with (one reweighting step, as in
  the concentration steps of Rousseeuw & Van Driessen's fast minimum covariance determinant,
  Technometrics 1999).
- Energy score (Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020)
  and maximum softmax probability (Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
  Out-of-Distribution Examples in Neural Networks", ICLR 2017) when the user gives logits.

Each raw score (the log of distances) is turned into a robust z-score against a calibration set (the data itself, or the
reference analysis), the z-scores are combined by their maximum, and a logistic map puts the result
in [0, 1] with 0.5 at ``Z_FLAG`` robust standard deviations above the median. Within one analysis,
:func:`ood_with_clusters` puts these per-sample scores under the calibrated foreign-cluster probability
of :mod:`dqwidgets.compute.foreign`, which makes the default flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dqwidgets.compute.device import cpu_threads_for

Z_FLAG = 3.0  # robust z at which a sample is flagged (score 0.5)
_Z_SLOPE = 1.5


def knn_distance(distances: np.ndarray) -> np.ndarray:
    """Distance to the k-th (last) neighbour of each row of a kNN graph's distance matrix."""
    return np.asarray(distances[:, -1], dtype=np.float64)


@dataclass
class ClassGaussians:
    """Tied-covariance class Gaussians in a PCA subspace of the embeddings."""

    center: torch.Tensor  # D
    basis: torch.Tensor  # D x r (principal axes)
    means: torch.Tensor  # C x r (NaN rows for classes without samples)
    precision: torch.Tensor  # r x r

    def distance(self, X) -> np.ndarray:
        """Smallest squared Mahalanobis distance of each row to any class mean (chunked)."""
        X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.center.device)
        with cpu_threads_for(0, X.device):  # small products: one CPU thread (compute.device.cpu_threads_for)
            return self._distance(X)

    def _distance(self, X: torch.Tensor) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float64)
        ok = ~torch.isnan(self.means[:, 0])
        means = self.means[ok]
        for s in range(0, len(X), 65536):
            Z = (X[s:s + 65536] - self.center) @ self.basis
            diff = Z[:, None, :] - means[None, :, :]  # n x C x r
            d = torch.einsum("ncr,rs,ncs->nc", diff, self.precision, diff)
            out[s:s + len(Z)] = d.min(1).values.double().cpu().numpy()
        return out


def _fit_gaussians(Z: torch.Tensor, y: torch.Tensor, n_classes: int, shrink: float):
    means = torch.full((n_classes, Z.shape[1]), float("nan"), dtype=Z.dtype, device=Z.device)
    resid = torch.empty_like(Z)
    for c in range(n_classes):
        m = y == c
        if m.any():
            means[c] = Z[m].mean(0)
            resid[m] = Z[m] - means[c]
    cov = resid.T @ resid / max(len(Z) - 1, 1)
    ridge = shrink * torch.diagonal(cov).mean()
    if not bool(ridge > 0):  # no spread within any class (e.g. a table of a few distinct rows): a unit ridge
        ridge = torch.ones((), dtype=Z.dtype, device=Z.device)
    cov = cov + ridge * torch.eye(cov.shape[0], dtype=Z.dtype, device=Z.device)
    return means, torch.linalg.inv(cov)


def fit_class_gaussians(X, label_codes, n_classes: int, dims: int = 64, trim: float = 0.25,
                        shrink: float = 1e-3, steps: int = 3, device="cpu") -> ClassGaussians:
    """Class means and a shared covariance of the labelled rows of ``X`` (codes >= 0), in the top
    ``dims`` principal directions; refitted ``steps`` times, each time without each class's ``trim``
    farthest share under the previous fit (concentration steps of the minimum covariance determinant).
    On a CPU it runs on one thread: per-class gathers and 64-wide products, which two threads on a busy
    machine run slower than one (100k x 128 at load 13: 8.9 s wall / 2.9 CPU s on two, 1.5 / 0.5 on one)."""
    with cpu_threads_for(0, torch.device(device)):
        return _fit_class_gaussians(X, label_codes, n_classes, dims, trim, shrink, steps, device)


def _fit_class_gaussians(X, label_codes, n_classes, dims, trim, shrink, steps, device) -> ClassGaussians:
    X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(label_codes, dtype=np.int64), device=device)
    lab = y >= 0
    X, y = X[lab], y[lab]
    if len(X) < 3:
        raise ValueError("fit_class_gaussians: need at least three labelled samples")
    center = X.mean(0)
    Xc = X - center
    r = int(min(dims, X.shape[1], len(X) - 1))
    cov = Xc.T @ Xc / (len(X) - 1)
    _, vecs = torch.linalg.eigh(cov.double())
    basis = vecs[:, -r:].flip(1).to(X.dtype)
    Z = Xc @ basis
    means, prec = _fit_gaussians(Z, y, n_classes, shrink)
    for _ in range(steps if trim > 0 else 0):
        diff = Z - torch.nan_to_num(means)[y]
        d = torch.einsum("nr,rs,ns->n", diff, prec, diff)
        keep = torch.zeros(len(Z), dtype=torch.bool, device=Z.device)
        for c in range(n_classes):
            m = torch.nonzero(y == c).flatten()
            if len(m) >= 5:
                cut = torch.quantile(d[m], 1.0 - trim)
                keep[m[d[m] <= cut]] = True
            else:
                keep[m] = True
        means, prec = _fit_gaussians(Z[keep], y[keep], n_classes, shrink)
    return ClassGaussians(center, basis, means, prec)


def energy(logits: np.ndarray) -> np.ndarray:
    """Negative free energy -logsumexp(logits): higher = more out-of-distribution (Liu et al. 2020)."""
    return -torch.logsumexp(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()


def max_softmax_uncertainty(probs: np.ndarray) -> np.ndarray:
    """1 - max softmax probability (Hendrycks & Gimpel 2017): higher = more out-of-distribution."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(1)


@dataclass
class RobustScale:
    """Median and MAD of a calibration set; ``log=True`` works on log values (for distances, whose
    right tail is heavy: a z of 3 on log distances flags under 1% of clean Fashion-MNIST)."""

    median: float
    scale: float
    log: bool = False

    @classmethod
    def fit(cls, values: np.ndarray, log: bool = False) -> "RobustScale":
        v = _log(values) if log else np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return cls(0.0, 1.0)
        med = float(np.median(v))
        mad = float(np.median(np.abs(v - med))) * 1.4826
        if mad <= 0:
            mad = float(np.std(v)) or 1.0
        return cls(med, mad, log)

    def z(self, values: np.ndarray) -> np.ndarray:
        v = _log(values) if self.log else np.asarray(values, dtype=np.float64)
        return (v - self.median) / self.scale


def _log(values) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))


def z_to_score(z: np.ndarray) -> np.ndarray:
    """Logistic map of a robust z-score to [0, 1]; 0.5 at ``Z_FLAG``."""
    return (1.0 / (1.0 + np.exp(-_Z_SLOPE * (np.asarray(z) - Z_FLAG)))).astype(np.float32)


def combine_ood(zscores: dict[str, np.ndarray]) -> np.ndarray:
    """Combined OOD score in [0, 1]: the largest robust z of the components, through ``z_to_score``."""
    if not zscores:
        raise ValueError("combine_ood: no component scores given")
    stacked = np.vstack([np.nan_to_num(z, nan=-np.inf) for z in zscores.values()])
    return z_to_score(stacked.max(0))



SAMPLE_WEIGHT = 0.5  # the per-sample scores' share of the OOD scale: they rank, the cluster evidence flags


def ood_with_clusters(per_sample: np.ndarray, cluster_probability: np.ndarray) -> np.ndarray:
    """The OOD score when foreign-cluster evidence exists: ``max(P(foreign cluster), 0.5 x per-sample)``.

    The per-sample distances rank isolated samples, but on every planted case in bench/ their tail
    holds as many rare in-distribution samples as foreign ones (flag precision 0.1-0.3 at any
    threshold), and no null fitted to the data itself tells them apart (bench/results/bench_quality.md).
    So they fill [0, 0.5) and order the samples, and the default flags come from the calibrated
    probability of :mod:`dqwidgets.compute.foreign`, which fills [0, 1]."""
    return np.maximum(np.asarray(cluster_probability, dtype=np.float64),
                      SAMPLE_WEIGHT * np.asarray(per_sample, dtype=np.float64)).astype(np.float32)


def default_ood_threshold(score: np.ndarray, cluster_probability: np.ndarray) -> float:
    """The threshold on :func:`ood_with_clusters` that flags the expected-F1 count of the cluster
    probabilities (never below 0.5, so per-sample scores alone are not flagged by default); 1.0 when
    there is no foreign cluster."""
    from dqwidgets.compute.calibration import expected_f1_count, threshold_for_count

    count = expected_f1_count(cluster_probability)
    if count == 0:
        return 1.0
    cut = threshold_for_count(np.asarray(cluster_probability, dtype=np.float32), count)
    return float(min(1.0, max(0.5, cut)))

