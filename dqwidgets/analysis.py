"""analyze(): from a Dataset to every score, the slices, the spurious associations and a map.

The steps are plain functions in ``dqwidgets.compute``; this module validates the input, runs them
in order on one kNN graph over the valid samples, spreads their results to every sample once, and
flags each issue type of ``dqwidgets.issues`` by its one rule (see docs/internals.md).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.analysis_input import AnalysisInput, features_are_cells, prepare_input
from dqwidgets.analysis_tables import drift_tests, slice_frame, spurious_frame, summary_table
from dqwidgets.compute.device import resolve_device
from dqwidgets.compute.duplicates import near_copy_edges, typical_nn_distance
from dqwidgets.compute.knn import KnnGraph, knn_graph, knn_query
from dqwidgets.compute.foreign import RESOLUTIONS as FOREIGN_RESOLUTIONS, find_foreign_clusters
from dqwidgets.compute.label import Z_INFORMATION, find_label_issues, with_foreign
from dqwidgets.compute.layout import FINAL_LAYOUTS, final_layout, pca_layout
from dqwidgets.compute.ood import (ClassGaussians, RobustScale, combine_ood, default_ood_threshold, energy,
                                   fit_class_gaussians, knn_distance, max_softmax_uncertainty, ood_with_clusters,
                                   z_to_score)
from dqwidgets.compute.probe import L2_PATH, Probe, fit_probe, out_of_fold_probs
from dqwidgets.compute.slices import prefetch_partitions, release_graph
from dqwidgets.export import export_analysis
from dqwidgets.issues import BY_SCORE, ISSUES, IssueContext, IssueType
from dqwidgets.review import Review

EVENTS = ("layout", "flags", "review")
LAYOUTS = FINAL_LAYOUTS + ("pca",)   # compute.layout.final_layout: "umap" (umap-learn, on a GPU cuML or torch), ...


@dataclass
class Calibration:
    """What an analysis fitted that a later one scores against (``analyze(..., reference=an)``)."""

    typical_nn_distance: float  # median nearest-neighbour distance (euclidean scale), for duplicates
    ood_scales: dict[str, RobustScale] = field(default_factory=dict)  # component -> robust z scale
    gaussians: ClassGaussians | None = None  # class Gaussians of the Mahalanobis OOD score
    probe: Probe | None = None  # fitted on all labelled samples, on first use (Analysis.reference_probe)
    atc: dict = field(default_factory=dict)  # score kind -> accuracy.AtcThreshold (out-of-fold, labelled samples)
    probe_l2: float | None = None  # the out-of-fold probe's L2 penalty (compute.probe.choose_l2)


class Analysis:
    """The result of :func:`analyze`. ``samples``, ``slices`` and ``spurious`` are pandas frames;
    ``review`` is the journal of fixes; ``export`` writes cleaned splits."""

    def __init__(self, dataset, samples: pd.DataFrame, *, slices: pd.DataFrame, spurious: pd.DataFrame,
                 drift: dict, features: np.ndarray, valid: np.ndarray, graph: KnnGraph,
                 pred_probs: np.ndarray | None, classes: list, context: IssueContext, calibration: Calibration,
                 workdir: Path, info: dict):
        self.dataset = dataset
        self.samples = samples
        self.slices = slices
        self.spurious = spurious
        self.drift = drift  # {"order": (statistic, p), "split": (statistic, p)} (split when there are splits)
        self.features = features
        self.valid = valid
        self.graph = graph  # over the valid samples; positions in np.flatnonzero(valid)
        self.pred_probs = pred_probs
        # N x C calibrated P(true class | x, given label) of the label-noise model (compute.label), or None
        self.calibrated_probs: np.ndarray | None = None
        self.classes = classes
        self.context = context  # what the flag rules read (dqwidgets.issues)
        self.calibration = calibration
        self.thresholds: dict[str, float] = {}  # score column -> threshold, one per flagged issue type
        self.workdir = workdir
        self.info = info  # diagnostics: step seconds, graph method, device, k, embedder
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
        """Set the flag threshold of a score column and recompute that issue's flag columns by its
        rule in :mod:`dqwidgets.issues` (the same rule ``analyze`` used)."""
        if column not in self.thresholds:
            raise ValueError(f"Analysis.set_threshold: no threshold for {column!r}; "
                             f"choose one of {sorted(self.thresholds)}")
        self._flag(BY_SCORE[column], _threshold_value(f"Analysis.set_threshold: {column}", value))
        self._notify("flags")

    def _flag(self, issue: IssueType, threshold: float) -> None:
        self.thresholds[issue.score_column] = threshold
        for column, values in issue.flags(self.samples, threshold, self.context).items():
            self.samples[column] = values
        self._suggest()

    def _suggest(self) -> None:
        """``suggested_action``: "drop" for a sample flagged out of distribution (no class fits it: its
        ``suggested_label`` is None), "relabel" for a label issue, None otherwise; follows the flags."""
        s = self.samples
        if "suggested_label" not in s or "is_label_issue" not in s:
            return
        codes = self.context.suggested_codes
        names = np.asarray(list(self.classes) + [None], dtype=object)
        ood = s["is_ood"].to_numpy(dtype=bool) if "is_ood" in s else np.zeros(len(s), bool)
        relabel = s["is_label_issue"].to_numpy(dtype=bool) & ~ood
        s["suggested_label"] = np.where(ood, None, names[codes])
        s["suggested_action"] = np.where(ood, "drop", np.where(relabel, "relabel", None)).astype(object)

    def reference_probe(self, device="auto") -> Probe | None:
        """The probe that scores new batches against this analysis (``analyze(..., reference=an)``),
        fitted on every labelled valid sample on first use; None with fewer than two classes."""
        if self.calibration.probe is None:
            pos = np.flatnonzero(self.valid)
            codes = self.context.label_codes[pos]
            if len(np.unique(codes[codes >= 0])) < 2:
                return None
            l2 = self.calibration.probe_l2
            if l2 is None:  # no out-of-fold probe ran here (the user's probabilities, the Ray engine): choose now
                l2 = out_of_fold_probs(self.features[pos], codes, len(self.classes), device=device, penalty_only=True)
            self.calibration.probe = fit_probe(self.features[pos], codes, len(self.classes), device, l2=l2)
        return self.calibration.probe

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

    def _start_layout(self, background: bool, seed: int, device, method: str = "umap"):
        def run():
            try:
                t0 = time.perf_counter()
                pos = np.flatnonzero(self.valid)
                init = self.samples[["x", "y"]].to_numpy(np.float32)[pos]
                xy = final_layout(method, self.graph, init=init, seed=seed, features=self.features[pos],
                                  device=device)
                self.samples[["x", "y"]] = _spread(xy.astype(np.float32), pos, len(self.valid))
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
    def review(self) -> Review:
        """The review journal (``<workdir>/<fingerprint>/journal.sqlite``), opened on first use."""
        if self._review is None:
            path = self.journal_path
            if not path.exists():
                _warn_of_other_journals(self.workdir, path, self.samples.index)
            path.parent.mkdir(parents=True, exist_ok=True)
            labels = self.samples["given_label"] if "given_label" in self.samples else None
            self._review = Review(path, self.samples.index, labels, list(self.classes))
            moved = self._review.relabelled()
            if len(moved):
                current = self._review.labels()[moved]
                stale = current[~current.isin(self._review.classes)]
                if len(stale):
                    warnings.warn(f"dqwidgets: the review journal {path} relabels {len(stale)} sample(s) to classes "
                                  f"this data does not have (e.g. {stale.iloc[0]!r} for {stale.index[0]!r}; classes: "
                                  f"{list(self.classes)[:10]}): the labels were renamed since that review. Relabel "
                                  "them again (an.review.relabel) or undo those actions", stacklevel=2)
            self._apply_review()
            self._review.observe(self._on_review)
            self._review.groups = lambda: self.samples["duplicate_group"].to_numpy() \
                if "duplicate_group" in self.samples else None  # review.relabel(..., with_duplicates=True)
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
        """Write cleaned splits; see :func:`dqwidgets.export.export_analysis` for the options."""
        return export_analysis(self.dataset, self.samples, self.review, self.thresholds, path, **kw)

    # ------------------------------------------------------------------ summary
    def summary(self) -> pd.DataFrame:
        """One row per issue type: how many samples are flagged and their share, plus the split-drift
        and row-order tests (statistic, p-value) and the duplicates that cross splits."""
        return summary_table(self)

    def review_queue(self, issue: str | None = None) -> pd.DataFrame:
        """The Explorer's review order: the flagged samples, most likely first, then the unflagged ones
        while the calibrated probabilities say the next screen is still worth a look; one row per card
        (``issue``, ``row``, ``flagged``, ``p_real``, ``expected_left``, the suggestion). See
        :mod:`dqwidgets.review_queue` for the stop rule."""
        from dqwidgets.review_queue import review_queue

        return review_queue(self, issue)

    def estimate_accuracy(self, by: str = "split", score: str = "neighbour_agreement") -> pd.DataFrame:
        """Accuracy of the predictions (``samples.predicted_label``) per split or per slice, labelled
        or not, by Average Thresholded Confidence (``score``: ``"neighbour_agreement"``,
        ``"negative_entropy"`` or ``"max_softmax"``): ``n``, ``atc_accuracy``, ``average_confidence``,
        ``labelled_accuracy`` (NaN without labels), ``n_labelled``; see :mod:`dqwidgets.accuracy`."""
        from dqwidgets.accuracy import estimate_accuracy

        return estimate_accuracy(self, by, score)

    def explain(self, sample_id):
        """Why ``sample_id`` is flagged: scores, kNN neighbours, top classes, slice (:func:`dqwidgets.explain.explain`)."""
        from dqwidgets.explain import explain

        return explain(self, sample_id)

    def __repr__(self) -> str:
        s = self.samples
        flags = ", ".join(f"{i.name}={int(s[i.flag_column].sum())}" for i in ISSUES if i.flag_column in s)
        return f"<dq.Analysis: {len(s)} samples, {len(self.classes)} classes, {len(self.slices)} slices; {flags}>"


# ---------------------------------------------------------------------------------------------
def analyze(ds, embedder="auto", pred_probs=None, logits=None, device="auto", k: int = 15, workdir=None,
            reference: Analysis | None = None, layout: str = "umap", wait_layout: bool = True,
            progress: bool = True, seed: int = 0, thresholds: dict | None = None, training=None,
            engine: str = "local", engine_options: dict | None = None) -> Analysis:
    """Score every sample of ``ds`` for label issues, out-of-distribution, duplicates; find slices,
    spurious associations and drift; lay the samples out in 2-D.

    ``reference``: an earlier :class:`Analysis`; the new samples are then scored as out of
    distribution against it, and their label issues come from a probe fitted on it.
    ``thresholds``: {score column: threshold} instead of the defaults (the same flags as
    ``set_threshold`` afterwards). ``training``: a :class:`dqwidgets.TrainingRecorder` of the user's
    training run; adds AUM, cartography and forgetting columns (dqwidgets.training).
    ``wait_layout=False`` returns with the PCA layout while UMAP runs in a background thread
    (``an.layout_status``, ``an.wait_layout()``, observers get "layout"). ``layout``: ``"umap"``
    (umap-learn on a CPU; on a GPU cuML when installed, else the UMAP SGD in torch there),
    ``"umap-learn"`` (umap-learn everywhere), ``"umap-torch"`` or ``"pca"``
    (``compute.layout.final_layout``)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"analyze: k (neighbours per sample) must be a whole number >= 1, got {k!r}")
    k = int(k)
    if engine != "local":  # the same Analysis from Ray Data passes over Parquet shards (docs/scale.md)
        from dqwidgets.engine import run_engine

        return run_engine(engine, ds, engine_options, embedder=embedder, pred_probs=pred_probs, logits=logits,
                          device=device, k=k, workdir=workdir, reference=reference, layout=layout,
                          wait_layout=wait_layout, progress=progress, seed=seed, thresholds=thresholds,
                          training=training)
    from tqdm.auto import tqdm

    if layout not in LAYOUTS:
        raise ValueError(f"analyze: layout must be one of {LAYOUTS}, got {layout!r}")
    if reference is not None and not isinstance(reference, Analysis):
        raise ValueError("analyze: reference must be the Analysis returned by an earlier dq.analyze() call")
    chosen = _check_thresholds(thresholds)
    dev = resolve_device(device)
    workdir = Path(workdir) if workdir is not None else Path.cwd() / ".dqwidgets"
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}  # process CPU time per step (all threads): wall time on a busy machine is noisy
    bar = tqdm(total=8, desc="dqwidgets", disable=not progress, leave=False)

    def step(name, run, *args, **kw):
        bar.set_postfix_str(name)
        t0, c0 = time.perf_counter(), time.process_time()
        out = run(*args, **kw)
        seconds[name] = time.perf_counter() - t0
        cpu_seconds[name] = time.process_time() - c0
        bar.update(1)
        return out

    inp = step("embed" if ds.features is None else "validate", prepare_input, ds, embedder, pred_probs, logits,
               dev, k, workdir, progress, reference)
    pos = np.flatnonzero(inp.valid)
    v = _ValidRows(inp, pos)
    graph = step("knn", knn_graph, v.features, k, device=dev, seed=seed)
    # the Leiden partitions the ood (foreign regions) and slices steps read, computed meanwhile in other processes
    prefetch_partitions(graph.indices, FOREIGN_RESOLUTIONS + (1.0,) if reference is None and (v.codes >= 0).sum() >= 2
                        else (1.0,), seed)
    probs, lg, probe_l2, region_probs = step("probe", _probabilities, inp, v, dev, seed, reference)
    label = step("label", _label_step, v, probs, graph, reference)
    ood, scales, gaussians = step("ood", _ood_step, inp, v, graph, probs, lg, label, dev, k, reference, seed,
                                  region_probs)
    label = label_with_foreign(label, ood.get("ood_cluster_score"))  # a foreign sample's label is wrong too
    ood_default = ood.pop("_ood_default", None)
    agreement = _agreement(probs, v, graph, ood.pop("_reference_neighbours", None), reference)
    typical = reference.calibration.typical_nn_distance if reference is not None \
        else typical_nn_distance(graph.distances, graph.metric)
    # on each sample's own scale; for images also the pairs' perceptual signatures, for tables and
    # precomputed features the cells each pair differs in (compute.duplicates)
    edges, duplicate_default, duplicate_pairs = step("duplicates", near_copy_edges, graph.distances, graph.metric, graph.indices,
                                    None if inp.signatures is None else inp.signatures[pos],
                                    v.features if features_are_cells(ds) else None, device=dev)
    slice_id, slices, spurious, drift = step("slices", _tables, inp, v, graph, probs, label, seed)
    release_graph(graph.indices)  # the adjacency and Leiden partitions the ood and slices steps shared
    xy = step("layout_pca", pca_layout, v.features, seed)

    columns = {"label_issue_score": label.score, **ood, "duplicate_score": _best_closeness(edges, duplicate_pairs),
               "slice_id": slice_id}
    if agreement is not None:
        columns["neighbour_agreement"] = agreement
    columns = {c: _spread(x, pos, inp.n) for c, x in columns.items()}
    suggested = _spread(label.suggested, pos, inp.n)
    columns["suggested_label"] = np.asarray(list(inp.classes) + [None], dtype=object)[suggested]
    predicted = _spread(probs.argmax(1), pos, inp.n) if probs is not None else np.full(inp.n, -1)
    columns["predicted_label"] = np.asarray(list(inp.classes) + [None], dtype=object)[predicted]
    training_info = None
    if training is not None:
        from dqwidgets.training import training_columns

        trained, training_info = step("training", training_columns, training, inp.ids, inp.label_codes,
                                      inp.classes, columns["label_issue_score"])
        columns.update(trained)
    samples = _samples_frame(inp, columns, _spread(xy, pos, inp.n))
    context = IssueContext(n=inp.n, valid_pos=pos, graph=graph, label_codes=inp.label_codes,
                           suggested_codes=suggested, label_issue_count=label.count, duplicate_edges=edges,
                           content_hashes=inp.content_hashes, split_codes=inp.split_codes,
                           ood_default=ood_default, duplicate_default=duplicate_default,
                           duplicate_pairs=duplicate_pairs,
                           text_signatures=inp.text_signatures)
    an = Analysis(ds, samples, slices=slices, spurious=spurious, drift=drift, features=inp.features,
                  valid=inp.valid, graph=graph, pred_probs=None if probs is None else _spread(probs, pos, inp.n),
                  classes=list(inp.classes), context=context,
                  calibration=Calibration(typical, scales, gaussians, atc=_atc(probs, v, reference, agreement),
                                          probe_l2=probe_l2),
                  workdir=workdir,
                  info={"seconds": seconds, "cpu_seconds": cpu_seconds, "graph_method": graph.method, "device": str(dev), "k": k,
                        "embedder": inp.embedder, "n_issues_per_class": label.per_class(inp.classes),
                        "reference": reference is not None, "training": training_info, "probe_l2": probe_l2,
                        "label_information": label.information,
                        "label_information_z": label.information_z})
    if label.posterior is not None:  # what an.explain shows as the calibrated top classes
        an.calibrated_probs = _spread(label.posterior, pos, inp.n)
    _flag_all(an, chosen)
    an.slices = _with_slice_accuracy(an)
    bar.close()
    if an.journal_path.exists():  # analysed before with this workdir: show the review done so far
        an.review
    if layout != "pca":
        an._start_layout(background=not wait_layout, seed=seed, device=dev, method=layout)
    else:
        an.layout_status = "final"
    return an


# --------------------------------------------------------------------------------------------- thresholds
def _warn_of_other_journals(workdir: Path, path: Path, ids: pd.Index, most: int = 20) -> None:
    """Warn when this data has no journal yet but another journal under ``workdir`` reviewed samples that are
    here: the journal is keyed by the exact set of ids (``Dataset.fingerprint``), so adding or removing one
    row opens a new, empty journal, and without a word the review done looks lost."""
    import sqlite3

    from dqwidgets.review import EDITS, stored_actions

    here = set(map(str, ids))
    for other in sorted(Path(workdir).glob("*/journal.sqlite"))[:most]:
        if other == path:
            continue
        try:
            reviewed = {str(i) for action, _, row_ids, _ in stored_actions(other, timeout=1.0) if action in EDITS
                        for i in row_ids}
        except (sqlite3.Error, ValueError, TypeError):
            continue
        shared = len(reviewed & here)
        if reviewed and shared >= 0.5 * len(reviewed):
            warnings.warn(f"dqwidgets: this data has no review journal yet, but {other} reviewed {len(reviewed)} "
                          f"samples, {shared} of them here: it belongs to another version of this data (rows added "
                          "or removed), and its review does not carry over by itself: an.review.adopt({str(other)!r}) "
                          "carries its decisions over", stacklevel=3)
            return


def _threshold_value(where: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a threshold is a number in [0, 1]; got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where} scores lie in [0, 1]; got {value}")
    return value


def _check_thresholds(thresholds) -> dict[str, float]:
    if thresholds is None:
        return {}
    if not isinstance(thresholds, dict):
        raise ValueError(f"analyze: thresholds must be a dict {{score column: threshold}}, e.g. "
                         f"{{'ood_score': 0.6}}; got {type(thresholds).__name__}")
    unknown = [c for c in thresholds if c not in BY_SCORE]
    if unknown:
        raise ValueError(f"analyze: no issue type scores {unknown}; thresholds can be set for {sorted(BY_SCORE)}")
    return {c: _threshold_value(f"analyze: thresholds[{c!r}]", t) for c, t in thresholds.items()}


def _flag_all(an: Analysis, chosen: dict[str, float]) -> None:
    """Flag every issue type whose score exists, at the chosen or the default threshold."""
    for issue in ISSUES:
        if issue.score_column is None or issue.score_column not in an.samples:  # e.g. low_aum without training=
            continue
        scores = an.samples[issue.score_column].to_numpy(dtype=np.float64)
        if not np.isfinite(scores).any():  # e.g. label issues of unlabelled data: no threshold to set
            if issue.score_column in chosen:
                raise ValueError(f"analyze: thresholds[{issue.score_column!r}] was given, but this data has no "
                                 f"{issue.display} scores (e.g. no labels); leave it out")
            an.samples[issue.flag_column] = np.zeros(len(scores), dtype=bool)
            continue
        threshold = chosen.get(issue.score_column)
        if threshold is None:
            threshold = float(issue.default_threshold(scores, an.context))
        an._flag(issue, threshold)


# --------------------------------------------------------------------------------------------- steps
class _ValidRows:
    """The valid samples' slice of the input: what every step works on."""

    def __init__(self, inp: AnalysisInput, pos: np.ndarray):
        self.features = inp.features[pos]
        self.codes = inp.label_codes[pos]
        self.pred_probs = inp.pred_probs[pos] if inp.pred_probs is not None else None
        self.logits = inp.logits[pos] if inp.logits is not None else None
        self.split_codes = inp.split_codes[pos] if inp.split_codes is not None else None
        self.attributes = {a: (c[pos], names) for a, (c, names) in inp.attributes.items()}
        self.n_classes = len(inp.classes)
        self.text_surface = inp.text_surface[pos] if inp.text_surface is not None else None


@dataclass
class _LabelResult:
    score: np.ndarray  # label_issue_score (NaN = unlabelled)
    suggested: np.ndarray  # int64 class codes of the most likely class, -1 = none
    count: int  # how many confident learning flags
    correct: np.ndarray | None  # the probe's argmax equals the given label
    n_issues_per_class: list | None  # confident learning's count of wrong labels per given class
    posterior: np.ndarray | None = None  # calibrated P(true class | x, given label), valid rows x C
    information: float = float("nan")  # nats per labelled sample the evidence tells about the labels
    information_z: float = float("nan")  # that gain in standard errors (compute.label.label_information)

    def per_class(self, classes) -> dict | None:
        return None if self.n_issues_per_class is None else dict(zip(classes, self.n_issues_per_class))


def _probabilities(inp: AnalysisInput, v: _ValidRows, dev, seed, reference):
    """(probs, logits, the probe's L2 penalty, the foreign-region search's probabilities) over the
    valid samples: the user's, a probe fitted on the reference, or an out-of-fold probe (its penalty
    chosen by compute.probe.choose_l2 where the probe is over-parameterised); None for each without labels.

    The foreign-region search (compute.foreign) reads the out-of-fold probe at the weakest penalty of
    ``L2_PATH`` instead: its test is whether a region's labels are read by a probe fitted to them,
    and a probe that fits the random labels of a foreign region's other folds names them confidently
    and wrongly there (a mean gain far below zero), while the penalty that predicts best shrinks those
    predictions towards the class shares (gains near zero, the smaller foreign regions no longer told
    apart: notebook 01's foreign images 131 -> 67 flagged). Both are out-of-fold."""
    if v.pred_probs is not None:
        return v.pred_probs, v.logits, None, v.pred_probs
    if reference is not None:
        probe = reference.reference_probe(dev)
        return (None, None, None, None) if probe is None else (probe.predict(v.features), None, None, None)
    if (v.codes >= 0).sum() == 0:
        return None, None, None, None
    probs, l2 = out_of_fold_probs(v.features, v.codes, v.n_classes, device=dev, seed=seed, return_l2=True)
    weakest = min(L2_PATH)
    regions = probs if l2 == weakest else out_of_fold_probs(v.features, v.codes, v.n_classes, device=dev,
                                                            seed=seed, l2=weakest)
    return probs, None, l2, regions


def _label_step(v: _ValidRows, probs, graph: KnnGraph, reference) -> _LabelResult:
    n = len(v.codes)
    if probs is None or not (v.codes >= 0).any():
        return _LabelResult(np.full(n, np.nan, np.float32), np.full(n, -1, np.int64), 0, None, None)
    lab = find_label_issues(probs, graph.indices if reference is None else None, v.codes)
    if not lab.information_z > Z_INFORMATION:
        warnings.warn(
            f"dqwidgets: the features do not predict the labels ({lab.information:.4f} nats per labelled sample "
            f"beyond the class shares, {lab.information_z:.1f} standard errors): no label can be called wrong from "
            "them, so label issues are not scored. Check that the features belong to these labels (the same row "
            "order, the right embedder or columns).", stacklevel=3)
    return _LabelResult(lab.label_issue_score, lab.suggested_label, int(lab.is_label_issue.sum()),
                        probs.argmax(1) == v.codes, np.round(lab.n_issues_per_class).astype(int).tolist(),
                        lab.posterior, lab.information, lab.information_z)


def label_with_foreign(label: _LabelResult, foreign_probability) -> _LabelResult:
    """``label`` with its score made P(label wrong) over both ways a label is wrong, a wrong class or
    no class at all (``compute.label.with_foreign``, from the OOD step's foreign-region probability),
    and its flag count redone; unchanged without that probability. Both engines call it."""
    if foreign_probability is None or not np.isfinite(label.score).any():
        return label
    score, count = with_foreign(label.score, foreign_probability)
    return replace(label, score=score, count=count)


def _ood_step(inp, v: _ValidRows, graph, probs, logits, label: _LabelResult, dev, k, reference, seed=0,
              region_probs=None):
    """Component and combined OOD scores over the valid samples, the robust scales and the class
    Gaussians (fitted here, or the reference's). ``region_probs``: what the foreign-region search
    reads (``_probabilities``; ``probs`` when None)."""
    X = v.features
    if reference is not None:
        cal = reference.calibration
        scales, gauss = cal.ood_scales, cal.gaussians
        q = knn_query(X, reference.features[np.flatnonzero(reference.valid)], k, graph.metric, dev)
        raw = {"knn": knn_distance(q.distances)}
        neighbours = q.indices  # rows of the reference's valid samples, for the neighbour agreement
    else:
        raw = {"knn": knn_distance(graph.distances)}
        scales = None
        gauss = ood_gaussians(X, v.codes, label.correct, v.n_classes, dev)
    if gauss is not None:
        raw["mahalanobis"] = gauss.distance(X)
    out, scales = ood_scores(raw, v.codes, graph.indices, probs, logits, inp.pred_probs is not None, scales, seed,
                             surface=v.text_surface, k=k, device=dev, region_probs=region_probs)
    if reference is not None:
        out["_reference_neighbours"] = neighbours
    return out, scales, gauss


def ood_gaussians(X, codes: np.ndarray, correct, n_classes: int, dev) -> ClassGaussians | None:
    """The class Gaussians of the Mahalanobis OOD score, fitted on the labelled rows whose probe
    prediction is right (``correct``; all labelled rows without a probe); None when too few. The Ray
    engine calls it on its fit sample."""
    fit_codes = codes if correct is None else np.where(correct, codes, -1)
    if (fit_codes >= 0).sum() > X.shape[1] // 4 + 2 and len(np.unique(fit_codes[fit_codes >= 0])) >= 2:
        return fit_class_gaussians(X, fit_codes, n_classes, device=dev)
    return None


def ood_scores(raw: dict, codes: np.ndarray, graph_indices, probs, logits, user_probs: bool, scales, seed=0,
               surface=None, k: int = 15, device="auto", region_probs=None):
    """(OOD columns, robust scales) over the valid rows from the raw distances (``raw``: "knn" and
    "mahalanobis" where fitted; energy or max-softmax are added here from the user's logits or
    probabilities): robust z-scores, their combination and, when the scales are fitted here (no
    reference), the foreign clusters and the default threshold. ``surface``: a text dataset's
    surface counts over the valid rows (compute.text_view); the foreign-cluster search then also
    runs on their kNN graph, and a sample's cluster probability is the larger of the two graphs'
    (column ``ood_surface_cluster_score``). Both engines call it: the Ray engine computes the raw
    distances in its score pass."""
    raw = dict(raw)
    if logits is not None:
        raw["energy"] = energy(logits)
    elif probs is not None and user_probs:
        raw["msp"] = max_softmax_uncertainty(probs)
    fitted_here = scales is None
    if fitted_here:
        scales = {name: RobustScale.fit(r, log=name in ("knn", "mahalanobis")) for name, r in raw.items()}
    z = {name: scales[name].z(r) for name, r in raw.items() if name in scales}
    out = {f"ood_{name}_score": z_to_score(zz) for name, zz in z.items()}
    out["ood_score"] = combine_ood(z)
    if fitted_here and probs is not None and (codes >= 0).sum() >= 2:
        # foreign clusters: graph regions whose labels look random to the probe (compute.foreign),
        # read on ``region_probs`` where given (analysis._probabilities says why)
        probs = probs if region_probs is None else region_probs
        zmax = np.vstack([np.nan_to_num(zz, nan=-np.inf) for zz in z.values()]).max(0)
        foreign = find_foreign_clusters(graph_indices, codes, probs, seed=seed, zscores=zmax)
        cluster = foreign.probability
        if surface is not None:  # texts: also regions of texts written alike (compute.text_view)
            from dqwidgets.compute.text_view import surface_foreign_probability

            written = surface_foreign_probability(surface, codes, probs, k=min(k, len(codes) - 1), device=device,
                                                  seed=seed)
            if written is not None:
                out["ood_surface_cluster_score"] = written.astype(np.float32)
                cluster = np.maximum(cluster, written)
        # the nodes beside a foreign region: their neighbours' share as the prior, their own label as evidence
        cluster = foreign.with_label_evidence(cluster, graph_indices)
        out["ood_cluster_score"] = cluster.astype(np.float32)
        out["ood_score"] = ood_with_clusters(out["ood_score"], cluster)
        out["_ood_default"] = default_ood_threshold(out["ood_score"], cluster)
    return out, scales


def _atc(probs, v: _ValidRows, reference, agreement=None) -> dict:
    """ATC cuts: fitted on this analysis' labelled out-of-fold probabilities, or the reference's."""
    from dqwidgets.accuracy import fit_thresholds

    return dict(reference.calibration.atc) if reference is not None else fit_thresholds(probs, v.codes, agreement)


def _agreement(probs, v: _ValidRows, graph, reference_neighbours, reference):
    """Neighbour agreement over the valid samples: against their graph neighbours' labels, or the
    reference's labels of their k nearest reference samples (``reference=``)."""
    from dqwidgets.accuracy import agreement_column

    if reference is None:
        return agreement_column(probs, graph.indices, v.codes)
    codes = reference.context.label_codes[np.flatnonzero(reference.valid)]
    return agreement_column(probs, reference_neighbours, codes)


def _with_slice_accuracy(an: Analysis) -> pd.DataFrame:
    from dqwidgets.accuracy import slice_accuracy_columns

    if not len(an.slices):
        return an.slices
    extra = slice_accuracy_columns(an)
    return an.slices.drop(columns=[c for c in extra.columns if c in an.slices.columns]).join(extra)


def _tables(inp: AnalysisInput, v: _ValidRows, graph, probs, label: _LabelResult, seed):
    slice_id, slices = slice_frame(graph.indices, v.codes, probs, inp.classes, v.attributes, seed)
    spurious = spurious_frame(v.attributes, v.codes, inp.classes, label.correct)
    return slice_id, slices, spurious, drift_tests(graph.indices, v.split_codes, seed)


def _best_closeness(edges: np.ndarray, pairs) -> np.ndarray:
    """Each valid sample's highest duplicate closeness over its graph edges and its extra signature pairs."""
    best = edges.max(1) if edges.shape[1] else np.zeros(len(edges), np.float32)
    if pairs is not None:
        rows, cols, close = pairs
        np.maximum.at(best, rows, close)
        np.maximum.at(best, cols, close)
    return best


# --------------------------------------------------------------------------------------------- full length
_FILL = {"f": np.nan, "b": False, "i": -1, "u": 0, "O": None}


def _spread(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Full-length array (rows, or rows x columns) from values over the valid positions; the other
    rows get NaN, False, -1 or None by dtype."""
    values = np.asarray(values)
    out = np.full((n,) + values.shape[1:], _FILL[values.dtype.kind], dtype=values.dtype)
    out[pos] = values
    return out


def _samples_frame(inp: AnalysisInput, cols: dict, xy: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(index=inp.ids)
    if inp.labels is not None:
        frame["label"] = inp.labels
        frame["given_label"] = inp.labels
    if inp.splits is not None:
        frame["split"] = inp.splits
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    if inp.content_hashes is not None:  # an exact byte copy is a duplicate whatever its embedding
        cols["duplicate_score"] = np.where(_shared(inp.content_hashes) & np.isnan(cols["duplicate_score"]), 1.0,
                                           cols["duplicate_score"]).astype(np.float32)
    if inp.text_signatures is not None:  # the same text up to case, whitespace and punctuation
        cols["duplicate_score"] = np.where(_shared(inp.text_signatures), 1.0,
                                           cols["duplicate_score"]).astype(np.float32)
    for i in ISSUES:  # each score beside its flag (the flags are set by the issue rules, analyze's last step)
        if i.score_column in cols:
            frame[i.score_column], frame[i.flag_column] = cols.pop(i.score_column), np.zeros(inp.n, bool)
    for c in sorted(cols):
        frame[c] = cols[c]
    for c in inp.flags.columns:
        frame[c] = inp.flags[c].to_numpy()
    for c in inp.extra.columns:
        if c not in frame.columns:
            frame[c] = inp.extra[c].to_numpy()
    return frame


def _shared(hashes: np.ndarray) -> np.ndarray:
    """True where a sample's content hash is also another sample's."""
    h = pd.Series(hashes, dtype=object)
    present = h.notna() & (h.astype(str) != "")
    return (present & h.duplicated(keep=False)).to_numpy()
