"""Out-of-fold class probabilities from a linear probe on the embeddings.

A multinomial logistic regression (softmax regression with an L2 penalty) fitted full-batch with
L-BFGS in torch, one fit per fold, so that every sample's probabilities come from a model that never
saw it — the input confident learning needs (Northcutt, Jiang & Chuang, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 2021, section 3). Linear probes on frozen
embeddings follow Alain & Bengio, "Understanding intermediate layers using linear classifier
probes", ICLR workshop 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dqwidgets.compute.device import cpu_parallel_map, cpu_threads_for, resolve_device


def fold_ids(y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Stratified fold number (0..folds-1) of each sample: every class is spread evenly over folds."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        out[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return out


def fit_softmax_regression(X: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-4,
                           max_iter: int = 50, start: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (D x C) and bias (C) minimising mean cross-entropy + ``l2`` * ||W||^2 (L-BFGS),
    starting from ``start`` = (W, b) when given (a fit on rows of the same training set), else from
    zero weights and the log class priors as bias.

    The loss and its gradient (softmax minus one-hot) are written out rather than taken by autograd,
    on a classes x samples layout, in the rows' dtype (float32): an evaluation on 66k x 128 x 10 takes
    a fifth of autograd's CPU time."""
    n = X.shape[0]
    Xt = X.T.contiguous()                                   # D x N: the logits' product reads it by rows
    Wt = torch.zeros((n_classes, X.shape[1]), dtype=X.dtype, device=X.device)   # C x D
    b = torch.zeros(n_classes, dtype=X.dtype, device=X.device)
    if start is not None:
        Wt.copy_(start[0].T)
        b.copy_(start[1])
    else:
        counts = torch.bincount(y, minlength=n_classes).to(X.dtype) + 1.0
        b.copy_(torch.log(counts / counts.sum()))
    Wt.requires_grad_()
    b.requires_grad_()
    given = y * n + torch.arange(n, device=X.device)       # flat positions of (label, sample) in C x N
    opt = torch.optim.LBFGS([Wt, b], lr=1.0, max_iter=max_iter, history_size=10,
                            tolerance_grad=1e-4, tolerance_change=1e-6, line_search_fn="strong_wolfe")

    def closure():
        with torch.no_grad():
            Z = torch.addmm(b[:, None], Wt, Xt)             # C x N logits
            Z.sub_(Z.max(0).values)
            z_given = Z.view(-1)[given]
            E = Z.exp_()
            s = E.sum(0)
            loss = (torch.log(s) - z_given).mean() + l2 * (Wt * Wt).sum()
            E.div_(s)                                       # softmax
            E.view(-1)[given] -= 1.0                        # minus the one-hot labels: d loss / d logits
            Wt.grad = torch.mm(E, X).div_(n).add_(Wt, alpha=2 * l2)
            b.grad = E.sum(1).div_(n)
        return loss

    opt.step(closure)
    return Wt.detach().T.contiguous(), b.detach()


# The L2 penalties the out-of-fold probe chooses from (``out_of_fold_probs(l2="auto")``), strongest
# first: each fit starts from the previous one's solution on the same fold, so the path costs little
# more than two or three cold fits. The last, weakest one is the default the probe keeps unless a
# stronger one is measurably better (``choose_l2``): 1280-d image embeddings of 4k Fashion-MNIST
# images need 0.1 (clean accuracy 0.73 at 1e-4, 0.80 at 0.1); tables of a few dozen columns and
# 64-d pixel PCs keep 1e-4.
L2_PATH = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)

# How many standard errors a stronger penalty's held-out accuracy must beat the default's by
# (McNemar's test on the rows where exactly one of the two predicts the given label).
L2_MIN_Z = 2.0


def path_fits(X_train, y_train, X_held, y_held, n_classes: int, path=None, max_iter: int = 50):
    """``(fits, hits)`` along ``path`` (default ``L2_PATH``), strongest first with warm starts:
    ``fits[i] = (penalty, W, b)`` on the training rows, ``hits[i]`` whether that fit's most likely
    class is ``y_held`` on each held-out row."""
    path = L2_PATH if path is None else tuple(path)
    fits, hits = [], []
    start = None
    for penalty in path:
        with cpu_threads_for(X_train.shape[0] * X_train.shape[1] * n_classes, X_train.device):
            W, b = fit_softmax_regression(X_train, y_train, n_classes, float(penalty), max_iter, start=start)
        start = (W, b)
        fits.append((float(penalty), W, b))
        hits.append(((X_held @ W + b).argmax(1) == y_held).cpu() if len(y_held)
                    else torch.zeros(0, dtype=torch.bool))
    return fits, hits


def choose_l2(hits: list) -> int:
    """Index of the L2 penalty chosen from each penalty's held-out hits (``path_fits``; the last, weakest
    penalty is the default).

    The rule reads what the label flags read, which class the probe names: the penalty whose fit
    predicts the held-out rows' given labels most often among those that beat the default by
    McNemar's test (``b - c >= L2_MIN_Z * sqrt(b + c)``, b / c the held-out rows that it predicts
    right and the default wrong, and the other way round); otherwise the default. Under label noise
    that does not outweigh the true class (uniform, or any class-conditional noise whose matrix keeps
    the true class most likely), accuracy against the given labels ranks two probes as their accuracy
    against the true labels does, so the choice is the probe that names more true classes. Not the
    held-out log-likelihood, the usual ridge criterion: on noisy labels it prefers probabilities soft
    enough to absorb the noise (notebook 01's first fold: highest at 1.0, whose probe names 0.77 of
    the true classes, against 0.80 at 0.1)."""
    default = best = len(hits) - 1
    for i in range(len(hits) - 1):
        won = int((hits[i] & ~hits[default]).sum())
        lost = int((~hits[i] & hits[default]).sum())
        if won - lost >= L2_MIN_Z * np.sqrt(max(won + lost, 1)) and int(hits[i].sum()) > int(hits[best].sum()):
            best = i
    return best


def over_parameterised(n_train: int, dim: int, n_classes: int) -> bool:
    """Whether a softmax-regression probe on ``n_train`` rows of ``dim`` features has at least as many
    weights (``dim x n_classes``) as training rows: then it can fit any labelling of them (Cover,
    "Geometrical and Statistical Properties of Systems of Linear Inequalities", 1965: n points in
    general position in d dimensions are linearly separable in every dichotomy while n <= d), noisy
    labels included, and a weak penalty lets it memorise them; the penalty is then chosen
    (``choose_l2``). With more rows than weights the weakest penalty is kept: the probe is near its
    unpenalised maximum-likelihood fit, and choosing there, although it can raise the clean accuracy
    of a small table (wine with 10% flips: 0.944 -> 0.972 at 0.1), left the noise model's estimated
    precision further from the measured one (1.00 for 0.85: a confident probe's own errors read as
    label errors), which the flags' count and estimate depend on."""
    return dim * max(n_classes, 1) >= n_train


# Up to this many labelled rows, a choice that fold 0's held-out rows leave undecided is made on the
# held-out rows of every fold (a fold of a few thousand rows can hold too few discordant rows for the
# test); above it fold 0's decide.
L2_POOLED_ROWS = 20_000


def choose_on_folds(path_on, folds: int, n_labelled: int, map_folds=None) -> tuple[int, list]:
    """``(index of the chosen penalty, the folds whose path was fitted)`` by ``choose_l2``:
    ``path_on(f)`` fits the penalty path on fold ``f`` and returns its held-out hits (``path_fits``).
    Fold 0 decides, unless it keeps the default and there are at most ``L2_POOLED_ROWS`` labelled rows:
    then the other folds' paths are fitted (``map_folds(path_on, folds)``, default one after another)
    and every fold's hits are pooled. The local engine and the Ray engine's sample fit both use it."""
    hits = [path_on(0)]
    pick = choose_l2(hits[0])
    if pick == len(hits[0]) - 1 and n_labelled <= L2_POOLED_ROWS and folds > 1:
        rest = range(1, folds)
        hits += list(map_folds(path_on, rest) if map_folds is not None else (path_on(f) for f in rest))
        pick = choose_l2([torch.cat([h[i] for h in hits]) for i in range(len(hits[0]))])
    return pick, list(range(len(hits)))


def out_of_fold_probs(X, y, n_classes: int, folds: int | None = None, device="auto", l2="auto",
                      max_iter: int = 50, seed: int = 0, return_logits: bool = False, return_l2: bool = False,
                      penalty_only: bool = False):
    """N x C out-of-fold probabilities of a standardised softmax-regression probe.

    ``folds``: 5 below 20k labelled samples, 3 above (each fold then still trains on 13k+).
    ``y`` holds class codes 0..C-1; rows with ``y < 0`` (unlabelled) get probabilities from a model
    fitted on all labelled rows. Each fold standardises with its own training statistics.

    ``l2="auto"``: where the probe has at least as many weights as training rows
    (``over_parameterised``), the penalty of ``L2_PATH`` chosen by ``choose_l2`` (the weakest
    unless a stronger one predicts the held-out rows' given labels measurably more often) on fold 0's
    held-out rows, or, when they leave it undecided and there are at most ``L2_POOLED_ROWS`` labelled
    rows, on every fold's; the folds not on the path are fitted at the chosen penalty. Otherwise the
    weakest penalty. A number: that penalty only.
    ``return_l2``: also return the penalty used (after the logits when both are asked for).
    ``penalty_only``: return only the penalty ``l2="auto"`` chooses, fitting no more than the choice
    needs (nothing where the probe is not over-parameterised, the path's folds where it is)."""
    y = np.asarray(y, dtype=np.int64)
    X = np.asarray(X, dtype=np.float32)
    if len(X) != len(y):
        raise ValueError(f"out_of_fold_probs: {len(X)} feature rows but {len(y)} labels")
    labelled = y >= 0
    present = np.unique(y[labelled])
    if len(present) < 2:
        raise ValueError("out_of_fold_probs: need at least two classes with labelled samples to fit a probe")
    counts = np.bincount(y[labelled], minlength=n_classes)
    if folds is None:
        folds = 5 if labelled.sum() < 20_000 else 3
    folds = int(max(2, min(folds, counts[counts > 0].min())))
    if isinstance(l2, str) and l2 != "auto":
        raise ValueError(f"out_of_fold_probs: l2 must be 'auto' or a number, got {l2!r}")
    n_train = int(labelled.sum()) * (folds - 1) // folds
    if isinstance(l2, str):
        path = L2_PATH if over_parameterised(n_train, X.shape[1], n_classes) else (min(L2_PATH),)
    else:
        path = (float(l2),)
    if penalty_only and len(path) == 1:
        return path[0]
    dev = resolve_device(device)
    Xt = torch.as_tensor(X, device=dev)
    yt = torch.as_tensor(y, device=dev)
    logits = torch.empty((len(X), n_classes), dtype=torch.float32, device=dev)
    assign = np.full(len(y), -1, dtype=np.int64)
    assign[labelled] = fold_ids(y[labelled], folds, seed)
    assign_t = torch.as_tensor(assign, device=dev)
    torch.manual_seed(seed)
    # every fold starts from zero: a warm start from another fold's solution would carry that fold's
    # fit of the held-out rows' labels into their "out-of-fold" probabilities (high-dimensional
    # embeddings are separable, and L-BFGS stops near the start)

    def fold_rows(f):
        train = (assign_t != f) & (assign_t >= 0)
        test = assign_t == f
        if f == 0:
            test = test | (assign_t < 0)  # unlabelled rows: predicted by the first fold's model
        Xf = Xt[train]
        mean = Xf.mean(0)
        std = Xf.std(0).clamp_min(1e-6)
        return Xf.sub_(mean).div_(std), yt[train], (Xt[test] - mean) / std, test

    chosen = path[0]
    rest = range(folds)
    if len(path) > 1:  # the penalty (choose_on_folds): first on fold 0's held-out rows, pooled with
        # the other folds' only when no stronger penalty is significantly better there and the
        # data hold at most L2_POOLED_ROWS labelled rows (a clear difference costs one path, not one per fold)
        per_fold = {}

        def fit_path(f):
            Xf, yf, Xtest, test = fold_rows(f)
            scored = (assign_t >= 0)[test]
            fits, hits = path_fits(Xf, yf, Xtest[scored], yt[test][scored], n_classes, path, max_iter)
            per_fold[f] = (Xtest, test, fits)
            return hits

        pick, pooled = choose_on_folds(fit_path, folds, int(labelled.sum()),
                                       lambda fn, items: cpu_parallel_map(fn, items, dev))
        chosen = path[pick]
        if penalty_only:
            return chosen
        for f in pooled:
            Xtest, test, fits = per_fold.pop(f)
            _, W, b = fits[pick]
            logits[test] = Xtest @ W + b
        rest = range(len(pooled), folds)

    def fit_fold(f):
        Xf, yf, Xtest, test = fold_rows(f)
        W, b = fit_softmax_regression(Xf, yf, n_classes, chosen, max_iter)
        logits[test] = Xtest @ W + b

    cpu_parallel_map(fit_fold, rest, dev)  # folds side by side, one torch thread each
    probs = torch.softmax(logits, dim=1).cpu().numpy()
    out = (probs,)
    if return_logits:
        out += (logits.cpu().numpy(),)
    if return_l2:
        out += (chosen,)
    return out[0] if len(out) == 1 else out


@dataclass
class Probe:
    """A standardised softmax-regression probe fitted on all labelled rows (``fit_probe``)."""

    mean: torch.Tensor  # D
    std: torch.Tensor  # D
    weights: torch.Tensor  # D x C
    bias: torch.Tensor  # C

    def logits(self, X) -> np.ndarray:
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.mean.device)
        return (((Xt - self.mean) / self.std) @ self.weights + self.bias).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """N x C class probabilities of the rows of ``X``."""
        return torch.softmax(torch.as_tensor(self.logits(X)), dim=1).numpy()


def fit_probe(X, y, n_classes: int, device="auto", l2: float = 1e-4, max_iter: int = 50) -> Probe:
    """Fit the probe on the rows of ``X`` with a label (``y >= 0``); used to score new samples
    against a reference analysis, where no out-of-fold split is needed (the new rows were never seen)."""
    y = np.asarray(y, dtype=np.int64)
    keep = y >= 0
    if len(np.unique(y[keep])) < 2:
        raise ValueError("fit_probe: need at least two classes with labelled samples to fit a probe")
    dev = resolve_device(device)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32)[keep], device=dev)
    mean, std = Xt.mean(0), Xt.std(0).clamp_min(1e-6)
    with cpu_threads_for(int(keep.sum()) * Xt.shape[1] * n_classes, dev):
        W, b = fit_softmax_regression((Xt - mean) / std, torch.as_tensor(y[keep], device=dev), n_classes, l2, max_iter)
    return Probe(mean, std, W, b)
