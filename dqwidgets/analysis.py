"""analyze(): from a Dataset to every score, the slices, the spurious associations and a map.

The steps are plain functions in ``dqwidgets.compute``; this module validates the input, runs them
in order on one kNN graph, and wraps the results in pandas frames (see docs/internals.md).
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.analysis_input import AnalysisInput, prepare_input
from dqwidgets.analysis_tables import (compute_drift, compute_slices, compute_spurious,
                                       summary_table)
from dqwidgets.compute.device import resolve_device
from dqwidgets.compute.duplicates import (DEFAULT_THRESHOLD, cross_split_groups, duplicate_groups,
                                          near_duplicate_score, typical_nn_distance)
from dqwidgets.compute.knn import KnnGraph, knn_graph, knn_query
from dqwidgets.compute.label import find_label_issues
from dqwidgets.compute.layout import pca_layout, umap_layout
from dqwidgets.compute.ood import (RobustScale, combine_ood, energy, fit_class_gaussians, knn_distance,
                                   max_softmax_uncertainty, z_to_score)
from dqwidgets.compute.probe import fit_softmax_regression, out_of_fold_probs

EVENTS = ("layout", "flags", "review")
OOD_THRESHOLD = 0.5
LAYOUTS = ("umap", "pca")


class Analysis:
    """The result of :func:`analyze`. ``samples``, ``slices`` and ``spurious`` are pandas frames;
    ``review`` is the journal of fixes; ``export`` writes cleaned splits."""

    def __init__(self, dataset, samples: pd.DataFrame, slices: pd.DataFrame, spurious: pd.DataFrame,
                 features: np.ndarray, valid: np.ndarray, graph: KnnGraph, pred_probs: np.ndarray | None,
                 classes: list, thresholds: dict, workdir: Path, info: dict):
        self.dataset = dataset
        self.samples = samples
        self.slices = slices
        self.spurious = spurious
        self.features = features
        self.valid = valid
        self.graph = graph  # over the valid samples; positions in np.flatnonzero(valid)
        self.pred_probs = pred_probs
        self.classes = classes
        self.thresholds = dict(thresholds)
        self.workdir = workdir
        self.info = info  # timings, drift tests, calibration for reference mode, graph method
        self.layout_status = "provisional"
        self.layout_error: BaseException | None = None
        self._observers: list = []
        self._review = None
        self._layout_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ observers
    def observe(self, callback):
        """Call ``callback(event)`` with event in {"layout", "flags", "review"}; returns ``callback``."""
        if not callable(callback):
            raise ValueError("Analysis.observe: callback must be callable, taking one argument (the event name)")
        self._observers.append(callback)
        return callback

    def unobserve(self, callback):
        self._observers = [c for c in self._observers if c is not callback]

    def _notify(self, event: str):
        for cb in list(self._observers):
            try:
                cb(event)
            except Exception as err:  # an observer must not break the analysis
                warnings.warn(f"dqwidgets: an Analysis observer failed on {event!r}: {err!r}", stacklevel=2)

    # ------------------------------------------------------------------ thresholds
    def set_threshold(self, column: str, value: float):
        """Set the flag threshold of a score column and recompute its ``is_*`` flag column."""
        if column not in self.thresholds:
            raise ValueError(f"Analysis.set_threshold: no threshold for {column!r}; "
                             f"choose one of {sorted(self.thresholds)}")
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"Analysis.set_threshold: {column} scores lie in [0, 1]; got {value}")
        self.thresholds[column] = value
        s = self.samples
        if column == "label_issue_score":
            s["is_label_issue"] = (s[column] >= value).fillna(False).astype(bool).to_numpy()
        elif column == "ood_score":
            s["is_ood"] = (s[column] >= value).fillna(False).astype(bool).to_numpy()
        elif column == "duplicate_score":
            group, is_dup = self._duplicates(value)
            s["duplicate_group"], s["is_duplicate"] = group, is_dup
        self._notify("flags")

    def _duplicates(self, threshold: float):
        pos = np.flatnonzero(self.valid)
        edge = near_duplicate_score(self.graph.distances, self.graph.metric, self.info["typical_nn_distance"])
        return duplicate_groups(self.graph.indices, edge, threshold, self.info.get("content_hashes"),
                                n_total=len(self.valid), node_ids=pos)

    # ------------------------------------------------------------------ layout
    def wait_layout(self, timeout: float | None = None) -> "Analysis":
        """Block until the background UMAP layout is in ``samples`` (no-op when it already is)."""
        t = self._layout_thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                raise TimeoutError(f"Analysis.wait_layout: the UMAP layout is still running after {timeout} s")
        if self.layout_error is not None:
            raise RuntimeError(f"the UMAP layout failed ({self.layout_error!r}); samples keep the PCA layout") \
                from self.layout_error
        return self

    def _start_layout(self, background: bool, seed: int, prefer_gpu: bool):
        def run():
            try:
                t0 = time.perf_counter()
                pos = np.flatnonzero(self.valid)
                init = self.samples[["x", "y"]].to_numpy(np.float32)[pos]
                xy = umap_layout(self.graph, init=init, seed=seed, features=self.features[pos],
                                 prefer_gpu=prefer_gpu)
                x = np.full(len(self.valid), np.nan, dtype=np.float32)
                y = x.copy()
                x[pos], y[pos] = xy[:, 0], xy[:, 1]
                self.samples["x"], self.samples["y"] = x, y
                self.layout_status = "final"
                self.info["seconds"]["layout_umap"] = time.perf_counter() - t0
            except BaseException as err:  # kept, re-raised by wait_layout
                self.layout_error = err
                if not background:
                    raise
                warnings.warn(f"dqwidgets: the UMAP layout failed ({err!r}); the map keeps the PCA layout",
                              stacklevel=1)
                return
            self._notify("layout")

        if background:
            self._layout_thread = threading.Thread(target=run, name="dqwidgets-umap", daemon=True)
            self._layout_thread.start()
        else:
            run()

    # ------------------------------------------------------------------ review / export
    @property
    def review(self):
        """The review journal (``<workdir>/<fingerprint>/journal.sqlite``), opened on first use."""
        if self._review is None:
            try:
                from dqwidgets.review import Review
            except ImportError as err:
                raise ImportError(f"Analysis.review needs dqwidgets.review, which could not be imported: {err}") from err
            path = self.journal_path
            path.parent.mkdir(parents=True, exist_ok=True)
            labels = self.samples["given_label"] if "given_label" in self.samples else None
            self._review = Review(path, self.samples.index, labels, list(self.classes))
            self._apply_review()
            self._review.observe(self._on_review)
        return self._review

    @property
    def journal_path(self) -> Path:
        return self.workdir / self.dataset.fingerprint / "journal.sqlite"

    def _on_review(self, row) -> None:
        self._apply_review()
        self._notify("review")

    def _apply_review(self) -> None:
        """Show the journal's state in ``samples``: ``current_label`` (given label with relabels applied)
        and ``review_status`` ("dropped", "ok" or None). The given ``label`` column never changes."""
        if "given_label" in self.samples:
            self.samples["current_label"] = self._review.labels().to_numpy()
        self.samples["review_status"] = self._review.status().to_numpy()

    def export(self, path, **kw):
        """Write cleaned splits; see :func:`dqwidgets.export.export_analysis`."""
        from dqwidgets.export import export_analysis

        return export_analysis(self, path, **kw)

    # ------------------------------------------------------------------ summary
    def summary(self) -> pd.DataFrame:
        """One row per issue type: how many samples are flagged and their share, plus the split-drift
        and row-order tests (statistic, p-value) and the duplicates that cross splits."""
        return summary_table(self)

    def __repr__(self) -> str:
        s = self.samples
        flags = ", ".join(f"{c[3:]}={int(s[c].sum())}" for c in ("is_label_issue", "is_ood", "is_duplicate",
                                                                   "is_invalid") if c in s)
        return f"<dq.Analysis: {len(s)} samples, {len(self.classes)} classes, {len(self.slices)} slices; {flags}>"


# ---------------------------------------------------------------------------------------------
def analyze(ds, embedder="auto", pred_probs=None, logits=None, device="auto", k: int = 15, workdir=None,
            reference: Analysis | None = None, layout: str = "umap", wait_layout: bool = True,
            progress: bool = True, seed: int = 0) -> Analysis:
    """Score every sample of ``ds`` for label issues, out-of-distribution, duplicates; find slices,
    spurious associations and drift; lay the samples out in 2-D.

    ``reference``: an earlier :class:`Analysis`; the new samples are then scored as out of
    distribution against it, and their label issues come from a probe fitted on it.
    ``wait_layout=False`` returns with the PCA layout while UMAP runs in a background thread
    (``an.layout_status``, ``an.wait_layout()``, observers get "layout")."""
    from tqdm.auto import tqdm

    if layout not in LAYOUTS:
        raise ValueError(f"analyze: layout must be one of {LAYOUTS}, got {layout!r}")
    if reference is not None and not isinstance(reference, Analysis):
        raise ValueError("analyze: reference must be the Analysis returned by an earlier dq.analyze() call")
    dev = resolve_device(device)
    workdir = Path(workdir) if workdir is not None else Path.cwd() / ".dqwidgets"
    seconds: dict[str, float] = {}
    bar = tqdm(total=8, desc="dqwidgets", disable=not progress, leave=False)

    def step(name):
        bar.set_postfix_str(name)
        return time.perf_counter()

    def done(name, t0):
        seconds[name] = time.perf_counter() - t0
        bar.update(1)

    t0 = step("embed")
    inp = prepare_input(ds, embedder=embedder, pred_probs=pred_probs, logits=logits, device=dev, k=k,
                        workdir=workdir, progress=progress, reference=reference)
    done("embed" if ds.features is None else "validate", t0)
    n, pos = inp.n, np.flatnonzero(inp.valid)
    Xv = inp.features[pos]

    t0 = step("kNN graph")
    graph = knn_graph(Xv, k, device=dev, seed=seed)
    done("knn", t0)

    t0 = step("probe")
    codes_v = inp.label_codes[pos]
    labelled = inp.label_codes >= 0
    probs_v, logits_v = _probabilities(inp, pos, codes_v, dev, seed, reference)
    done("probe", t0)

    t0 = step("label issues")
    cols: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    correct_v = None
    n_issues = None
    if probs_v is not None and (codes_v >= 0).any():
        lab = find_label_issues(probs_v, graph.indices if reference is None else None, codes_v)
        cols["label_issue_score"] = _scatter(lab["label_issue_score"], pos, n, np.nan, np.float32)
        cols["is_label_issue"] = _scatter(lab["is_label_issue"], pos, n, False, bool)
        sugg = np.asarray(inp.classes, dtype=object)[lab["suggested_label"]]
        cols["suggested_label"] = _scatter(sugg, pos, n, None, object)
        flagged = lab["label_issue_score"][lab["is_label_issue"]]
        thresholds["label_issue_score"] = float(flagged.min()) if len(flagged) else 1.0
        correct_v = probs_v.argmax(1) == codes_v
        n_issues = dict(zip(inp.classes, np.round(lab["n_issues_per_class"]).astype(int).tolist()))
    else:
        cols["label_issue_score"] = np.full(n, np.nan, np.float32)
        cols["is_label_issue"] = np.zeros(n, bool)
        cols["suggested_label"] = np.full(n, None, object)
    done("label", t0)

    t0 = step("out-of-distribution")
    ood_cols, calibration = _ood(inp, pos, Xv, graph, codes_v, probs_v, logits_v, correct_v, dev, k, reference)
    for name, v in ood_cols.items():
        cols[name] = _scatter(v, pos, n, np.nan if v.dtype.kind == "f" else False, v.dtype)
    cols["is_ood"] = cols["ood_score"] >= OOD_THRESHOLD
    thresholds["ood_score"] = OOD_THRESHOLD
    done("ood", t0)

    t0 = step("duplicates")
    typical = (reference.info["typical_nn_distance"] if reference is not None
               else typical_nn_distance(graph.distances, graph.metric))
    edge = near_duplicate_score(graph.distances, graph.metric, typical)
    group, is_dup = duplicate_groups(graph.indices, edge, DEFAULT_THRESHOLD, inp.content_hashes, n, pos)
    cols["duplicate_score"] = _scatter(edge[:, 0], pos, n, np.nan, np.float32)
    if inp.content_hashes is not None:  # an exact byte copy is a duplicate whatever its embedding
        same = (group >= 0) & is_dup
        cols["duplicate_score"] = np.where(same & np.isnan(cols["duplicate_score"]), 1.0, cols["duplicate_score"])
    cols["duplicate_group"], cols["is_duplicate"] = group, is_dup
    thresholds["duplicate_score"] = DEFAULT_THRESHOLD
    done("duplicates", t0)

    t0 = step("slices")
    attributes = inp.attributes
    slice_v, slices = compute_slices(graph.indices, codes_v, probs_v, inp.classes,
                                     {a: (c[pos], nm) for a, (c, nm) in attributes.items()}, seed)
    cols["slice_id"] = _scatter(slice_v, pos, n, -1, np.int64)
    spurious = compute_spurious({a: (c[pos], nm) for a, (c, nm) in attributes.items()}, codes_v, inp.classes,
                                correct_v)
    drift = compute_drift(graph.indices, inp.split_codes[pos] if inp.split_codes is not None else None, seed)
    done("slices", t0)

    t0 = step("layout")
    xy = np.full((n, 2), np.nan, np.float32)
    xy[pos] = pca_layout(Xv, seed)
    done("layout_pca", t0)

    samples = _samples_frame(ds, inp, cols, xy)
    info = {"seconds": seconds, "graph_method": graph.method, "device": str(dev), "k": k,
            "typical_nn_distance": typical, "content_hashes": inp.content_hashes,
            "ood_calibration": calibration, "drift": drift, "embedder": inp.embedder,
            "n_issues_per_class": n_issues, "reference": reference is not None,
            "label_codes": inp.label_codes, "split_codes": inp.split_codes, "split_names": inp.split_names}
    an = Analysis(ds, samples, slices, spurious, inp.features, inp.valid, graph,
                  _scatter_rows(probs_v, pos, n), list(inp.classes), thresholds, workdir, info)
    bar.close()
    if an.journal_path.exists():  # analysed before with this workdir: show the review done so far
        an.review
    if layout == "umap":
        an._start_layout(background=not wait_layout, seed=seed, prefer_gpu=dev.type == "cuda")
    else:
        an.layout_status = "final"
    return an


# ---------------------------------------------------------------------------------------------
def _scatter(values: np.ndarray, pos: np.ndarray, n: int, fill, dtype) -> np.ndarray:
    """Full-length column from values over the valid positions."""
    out = np.full(n, fill, dtype=dtype)
    out[pos] = values
    return out


def _scatter_rows(values: np.ndarray | None, pos: np.ndarray, n: int):
    if values is None:
        return None
    out = np.full((n, values.shape[1]), np.nan, dtype=np.float32)
    out[pos] = values
    return out


def _probabilities(inp: AnalysisInput, pos, codes_v, dev, seed, reference):
    """(probs, logits) over the valid samples: the user's, a probe fitted on the reference, or an
    out-of-fold probe; (None, None) without labels."""
    if inp.pred_probs is not None:
        return inp.pred_probs[pos], (inp.logits[pos] if inp.logits is not None else None)
    if reference is not None:
        import torch

        ref = reference
        rpos = np.flatnonzero(ref.valid)
        rcodes = ref.info["label_codes"][rpos]
        keep = rcodes >= 0
        if keep.sum() == 0 or len(np.unique(rcodes[keep])) < 2:
            return None, None
        Xr = torch.as_tensor(ref.features[rpos][keep], device=dev)
        mean, std = Xr.mean(0), Xr.std(0).clamp_min(1e-6)
        W, b = fit_softmax_regression((Xr - mean) / std, torch.as_tensor(rcodes[keep], device=dev),
                                      len(inp.classes))
        lg = ((torch.as_tensor(inp.features[pos], device=dev) - mean) / std) @ W + b
        return torch.softmax(lg, 1).cpu().numpy(), None
    if (codes_v >= 0).sum() == 0:
        return None, None
    probs, _ = out_of_fold_probs(inp.features[pos], codes_v, len(inp.classes), device=dev, seed=seed,
                                 return_logits=True)
    return probs, None


def _ood(inp, pos, Xv, graph, codes_v, probs_v, logits_v, correct_v, dev, k, reference):
    """Component and combined OOD scores over the valid samples, and the calibration kept for
    scoring later batches against this analysis."""
    z: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    if reference is not None:
        cal = reference.info["ood_calibration"]
        rpos = np.flatnonzero(reference.valid)
        q = knn_query(Xv, reference.features[rpos], k, graph.metric, dev)
        raw_knn = knn_distance(q.distances)
        gauss = cal.get("gaussians")
    else:
        raw_knn = knn_distance(graph.distances)
        cal = {"knn": RobustScale.fit(raw_knn, log=True)}
        gauss = None
        fit_codes = codes_v if correct_v is None else np.where(correct_v, codes_v, -1)
        if (fit_codes >= 0).sum() > Xv.shape[1] // 4 + 2 and len(np.unique(fit_codes[fit_codes >= 0])) >= 2:
            gauss = fit_class_gaussians(Xv, fit_codes, len(inp.classes), device=dev)
            cal["gaussians"] = gauss
    z["knn"] = cal["knn"].z(raw_knn)
    if gauss is not None:
        raw_m = gauss.distance(Xv)
        if reference is None:
            cal["mahalanobis"] = RobustScale.fit(raw_m, log=True)
        z["mahalanobis"] = cal["mahalanobis"].z(raw_m)
    if logits_v is not None:
        raw_e = energy(logits_v)
        if reference is None:
            cal["energy"] = RobustScale.fit(raw_e)
        if "energy" in cal:
            z["energy"] = cal["energy"].z(raw_e)
    elif probs_v is not None and inp.pred_probs is not None:
        raw_s = max_softmax_uncertainty(probs_v)
        if reference is None:
            cal["msp"] = RobustScale.fit(raw_s)
        if "msp" in cal:
            z["msp"] = cal["msp"].z(raw_s)
    for name, v in z.items():
        out[f"ood_{name}_score"] = z_to_score(v)
    out["ood_score"] = combine_ood(z)
    return out, cal


def _samples_frame(ds, inp: AnalysisInput, cols: dict, xy: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(index=inp.ids)
    if inp.labels is not None:
        frame["label"] = inp.labels
        frame["given_label"] = inp.labels
    if inp.splits is not None:
        frame["split"] = inp.splits
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    order = ["label_issue_score", "is_label_issue", "suggested_label", "ood_score", "is_ood",
             "duplicate_group", "is_duplicate", "duplicate_score", "slice_id"]
    for c in order + sorted(c for c in cols if c not in order):
        frame[c] = cols[c]
    for c in inp.flags.columns:
        frame[c] = inp.flags[c].to_numpy()
    for c in inp.extra.columns:
        if c not in frame.columns:
            frame[c] = inp.extra[c].to_numpy()
    return frame
