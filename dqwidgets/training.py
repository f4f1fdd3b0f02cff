"""Record the user's own training run, per sample and per epoch, for training-dynamics scores.

``rec = dq.TrainingRecorder()``; in the training loop ``rec.log(ids, logits, epoch)``; then
``dq.analyze(ds, training=rec)`` adds AUM, dataset-cartography and forgetting columns to
``an.samples`` and folds AUM into the label-issue score (see :func:`training_columns`). Ready-made
callbacks: :meth:`TrainingRecorder.huggingface_callback` (a ``transformers.TrainerCallback``) and :meth:`TrainingRecorder.lightning_callback` (a
``lightning.pytorch.Callback``); those packages are imported only when the callback is asked for.

On disk, under ``<workdir>/training/<name>/`` (``workdir`` defaults to ``.dqwidgets``, as for
``dq.analyze``):

- ``meta.json``: number of outputs, storage dtype, class names, threshold samples; replaced
  atomically (written beside, then renamed), so an interrupted write leaves the previous one.
- ``ids.jsonl``: the sample ids in the order they were first logged (one JSON list per line, appended).
- ``epoch_00007.pos`` / ``epoch_00007.logits``: raw int64 positions (into ``ids.jsonl``) and raw
  logits (rows x outputs), appended and flushed on every ``log`` call; a crash mid-epoch keeps every
  batch logged before it (a torn last row is ignored). Reading memory-maps them, one epoch at a time,
  in chunks: nothing holds more than one chunk of logits in RAM (100k samples x 50 epochs x 100
  classes is 2 GB on disk, a few MB in memory).

Resuming: a new recorder on the same folder continues the run. Logging an epoch that is already on
disk overwrites it if it is the last one recorded (the run restarts the epoch it was interrupted
in); logging an earlier one is refused (it would mix two runs) unless :meth:`truncate` drops it.
Within an epoch a sample logged twice keeps its last logits. One process writes a run: with
several (distributed data parallel), give each rank its own ``name=`` or log from rank 0 only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

_EPOCH_FILE = re.compile(r"^epoch_(\d{5,})\.pos$")
_CHUNK_ROWS = 16384  # rows of logits scored at a time (bounded temporaries: ~13 MB per float64 copy at 100 classes)
DTYPES = ("float32", "float16")


class TrainingRecorder:
    """Per-sample logits of every epoch of a training run, kept on disk and memory-mapped.

    ``dataset`` (a :class:`dqwidgets.Dataset`) or ``ids`` binds the recorder to those sample ids:
    ``log`` then refuses any other id at once. ``classes``: the class names in the order of the
    model's outputs (default: the analysed dataset's class order). ``dtype="float16"`` halves the
    disk use."""

    def __init__(self, workdir=None, name: str = "run", dataset=None, ids=None, classes=None,
                 dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"TrainingRecorder: dtype must be one of {DTYPES}, got {dtype!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)) or str(name) in (".", ".."):
            raise ValueError(f"TrainingRecorder: name must be a plain folder name (letters, digits, _ . -), "
                             f"got {name!r}")
        if dataset is not None and ids is not None:
            raise ValueError("TrainingRecorder: pass dataset= or ids=, not both")
        self.path = Path(workdir if workdir is not None else Path.cwd() / ".dqwidgets") / "training" / str(name)
        self.path.mkdir(parents=True, exist_ok=True)
        self._meta = self._read_meta() or {"format": 1, "n_outputs": None, "dtype": dtype, "classes": None,
                                           "n_classes": None, "threshold_ids": None}
        if self._meta["dtype"] != dtype and (self.path / "meta.json").exists() and self.epochs:
            raise ValueError(f"TrainingRecorder: {self.path} holds {self._meta['dtype']} logits; "
                             f"open it with dtype={self._meta['dtype']!r} or record into a new name=")
        if classes is not None:
            classes = [_plain(c) for c in classes]
            if self._meta["classes"] is not None and self._meta["classes"] != classes:
                raise ValueError(f"TrainingRecorder: {self.path} was recorded with classes {self._meta['classes']}, "
                                 f"not {classes}; record into a new name=")
            self._meta["classes"] = classes
        self._ids: list = []
        self._pos: dict = {}
        self._read_ids()
        self._bound = None
        if dataset is not None:
            ids = dataset.ids
        if ids is not None:
            self._bind([_plain(i) for i in _as_list(ids)])
        self._disk_epochs = set(self.epochs)
        self._session_epochs: set[int] = set()
        self._current: int | None = None
        self._files = None
        self._write_meta()

    # ------------------------------------------------------------------ writing
    def log(self, ids, logits, epoch: int) -> None:
        """Record the logits (batch x outputs; numpy or torch) of the samples ``ids`` (the dataset's
        ids, in the batch's order) at ``epoch`` (0-based). Flushed before it returns."""
        epoch = _epoch(epoch)
        ids = [_plain(i) for i in _as_list(ids)]
        z = _as_array(logits)
        if z.ndim != 2 or z.shape[0] != len(ids):
            raise ValueError(f"TrainingRecorder.log: logits must be batch x outputs with one row per id; "
                             f"got shape {tuple(z.shape)} for {len(ids)} ids")
        n_out = self._meta["n_outputs"]
        if n_out is None:
            self._check_outputs(z.shape[1])
            self._meta["n_outputs"] = int(z.shape[1])
            self._write_meta()
        elif z.shape[1] != n_out:
            raise ValueError(f"TrainingRecorder.log: this run records {n_out} outputs per sample, got {z.shape[1]}")
        pos = self._positions(ids)
        self._enter_epoch(epoch)
        f_pos, f_log = self._files
        f_log.write(np.ascontiguousarray(z, dtype=self._meta["dtype"]).tobytes())
        f_pos.write(pos.astype("<i8").tobytes())
        f_log.flush()
        f_pos.flush()

    def assign_threshold_samples(self, ids, labels, n_classes: int | None = None, seed: int = 0) -> np.ndarray:
        """Choose AUM threshold samples (Pleiss et al. 2020) among ``ids`` and return the labels to
        train with: ``labels`` (class codes, the model's output order) with the chosen N/(C+1)
        samples moved to the extra class ``n_classes``; the model needs ``n_classes + 1`` outputs.
        The choice is kept in ``meta.json`` for ``dq.analyze``; see :mod:`dqwidgets.compute.aum`."""
        from dqwidgets.compute.aum import assign_threshold_samples

        ids = [_plain(i) for i in _as_list(ids)]
        y = np.asarray(_as_array(labels), dtype=np.int64).ravel()
        if len(y) != len(ids):
            raise ValueError(f"assign_threshold_samples: {len(ids)} ids but {len(y)} labels")
        if n_classes is None:
            n_classes = len(self._meta["classes"]) if self._meta["classes"] else int(y.max()) + 1
        if self.epochs:
            raise ValueError(f"assign_threshold_samples: {self.path} already holds epochs {self.epochs}; threshold "
                             "samples must be chosen before training (record into a new name=)")
        if (y >= n_classes).any():
            raise ValueError(f"assign_threshold_samples: labels go up to {int(y.max())} but n_classes={n_classes}")
        train, is_thr = assign_threshold_samples(y, n_classes, seed=seed)
        self._meta["n_classes"] = int(n_classes)
        self._meta["threshold_ids"] = [ids[i] for i in np.flatnonzero(is_thr)]
        self._write_meta()
        return train

    def truncate(self, epoch: int) -> None:
        """Delete the recorded epochs ``epoch`` and later (e.g. before resuming from an older checkpoint)."""
        epoch = _epoch(epoch)
        self._close_files()
        for e in self.epochs:
            if e >= epoch:
                for suffix in (".pos", ".logits"):
                    self._epoch_path(e, suffix).unlink(missing_ok=True)
        self._disk_epochs = {e for e in self._disk_epochs if e < epoch}
        self._session_epochs = {e for e in self._session_epochs if e < epoch}

    def close(self) -> None:
        """Flush and fsync the open epoch (also done when the next epoch starts)."""
        self._close_files()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ reading
    @property
    def epochs(self) -> list[int]:
        """The epochs on disk, in order."""
        return sorted(int(m.group(1)) for p in self.path.iterdir() if (m := _EPOCH_FILE.match(p.name)))

    @property
    def ids(self) -> list:
        """Every id logged so far (or bound), in first-logged order."""
        return list(self._ids)

    @property
    def n_outputs(self) -> int | None:
        return self._meta["n_outputs"]

    @property
    def classes(self) -> list | None:
        return self._meta["classes"]

    @property
    def threshold_ids(self) -> list | None:
        """The AUM threshold samples chosen by :meth:`assign_threshold_samples` (None if none)."""
        return self._meta["threshold_ids"]

    @property
    def n_classes(self) -> int | None:
        """Real classes when threshold samples were assigned (the outputs then have one more)."""
        return self._meta["n_classes"]

    def epoch_logits(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, logits)`` of one epoch, memory-mapped from disk (rows in logging order;
        ``positions`` index :attr:`ids`)."""
        epoch = _epoch(epoch)
        if self._current == epoch and self._files is not None:
            for f in self._files:
                f.flush()
        p_pos, p_log = self._epoch_path(epoch, ".pos"), self._epoch_path(epoch, ".logits")
        if not p_pos.exists():
            raise ValueError(f"TrainingRecorder: epoch {epoch} is not recorded in {self.path} (epochs: {self.epochs})")
        n_out = self._meta["n_outputs"]
        item = np.dtype(self._meta["dtype"]).itemsize
        rows = min(p_pos.stat().st_size // 8, p_log.stat().st_size // (item * n_out)) if n_out else 0
        if rows == 0:
            return np.zeros(0, np.int64), np.zeros((0, n_out or 0), self._meta["dtype"])
        pos = np.memmap(p_pos, dtype="<i8", mode="r", shape=(rows,))
        log = np.memmap(p_log, dtype=self._meta["dtype"], mode="r", shape=(rows, n_out))
        return pos, log

    def __repr__(self) -> str:
        return (f"<dq.TrainingRecorder {self.path}: {len(self._ids)} samples, epochs {self.epochs}, "
                f"{self._meta['n_outputs']} outputs>")

    # ------------------------------------------------------------------ callbacks
    def huggingface_callback(self, ids, dataset=None, batch_size: int = 64):
        """A ``transformers.TrainerCallback`` that, at the end of every epoch, runs the model (eval
        mode, no gradients) over the training set in its order and logs the logits. ``ids``: the
        dataset ids of the Trainer's ``train_dataset`` rows, in order. ``dataset``: the set to run
        over (default: the Trainer's training set, with the columns the Trainer keeps)."""
        from dqwidgets.training_callbacks import huggingface_callback

        return huggingface_callback(self, ids, dataset, batch_size)

    def lightning_callback(self, ids_key: str = "ids", logits_key: str = "logits"):
        """A ``lightning.pytorch.Callback`` that logs the training-time logits of every batch: the
        module's ``training_step`` returns ``{"loss": ..., logits_key: logits, ids_key: ids}`` (or the
        ids are ``batch[ids_key]`` of a dict batch)."""
        from dqwidgets.training_callbacks import lightning_callback

        return lightning_callback(self, ids_key, logits_key)

    # ------------------------------------------------------------------ internals
    def _epoch_path(self, epoch: int, suffix: str) -> Path:
        return self.path / f"epoch_{epoch:05d}{suffix}"

    def _read_meta(self) -> dict | None:
        p = self.path / "meta.json"
        if not p.exists():
            return None
        try:
            meta = json.loads(p.read_text())
        except ValueError as err:
            raise ValueError(f"TrainingRecorder: {p} is not valid JSON ({err}); record into a new name=") from err
        if meta.get("format") != 1:
            raise ValueError(f"TrainingRecorder: {p} has an unknown format {meta.get('format')!r}")
        return meta

    def _write_meta(self) -> None:
        p = self.path / "meta.json"
        tmp = p.with_name(f".meta.json.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(self._meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def _read_ids(self) -> None:
        p = self.path / "ids.jsonl"
        if not p.exists():
            return
        good = 0
        with open(p, "rb") as f:
            for line in f:
                try:
                    chunk = json.loads(line)
                except ValueError:  # a line torn by a crash: drop it and what follows
                    break
                if not line.endswith(b"\n"):
                    break
                good += len(line)
                for i in chunk:
                    i = tuple(i) if isinstance(i, list) else i
                    self._pos[i] = len(self._ids)
                    self._ids.append(i)
        if good != p.stat().st_size:
            with open(p, "r+b") as f:
                f.truncate(good)

    def _append_ids(self, new: list) -> None:
        line = json.dumps(new) + "\n"
        with open(self.path / "ids.jsonl", "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        for i in new:
            self._pos[i] = len(self._ids)
            self._ids.append(i)

    def _bind(self, ids: list) -> None:
        missing = [i for i in ids if i not in self._pos]
        if len(set(ids)) != len(ids):
            raise ValueError("TrainingRecorder: the dataset's ids are not unique")
        if missing:
            self._append_ids(missing)
        self._bound = set(ids)

    def _positions(self, ids: list) -> np.ndarray:
        if self._bound is not None:
            unknown = [i for i in ids if i not in self._bound]
            if unknown:
                raise ValueError(f"TrainingRecorder.log: {len(unknown)} of {len(ids)} ids are not in the bound dataset "
                                 f"(first: {unknown[:3]}); pass the dataset's ids (ds.ids) of the batch's samples, "
                                 "not their positions in the batch or loader")
        new = list(dict.fromkeys(i for i in ids if i not in self._pos))
        if new:
            self._append_ids(new)
        return np.fromiter((self._pos[i] for i in ids), dtype=np.int64, count=len(ids))

    def _check_outputs(self, n_out: int) -> None:
        k = self._meta["n_classes"]
        if k is not None and n_out != k + 1:
            raise ValueError(f"TrainingRecorder.log: threshold samples were assigned for {k} classes, so the model "
                             f"needs {k + 1} outputs (the extra one is the fake class); got {n_out}")
        c = self._meta["classes"]
        if c is not None and k is None and n_out != len(c):
            raise ValueError(f"TrainingRecorder.log: {len(c)} classes were given but the logits have {n_out} outputs")

    def _enter_epoch(self, epoch: int) -> None:
        if epoch == self._current:
            return
        if self._session_epochs and epoch < max(self._session_epochs):
            raise ValueError(f"TrainingRecorder.log: epoch {epoch} comes after epoch {max(self._session_epochs)} "
                             "in this run; log epochs in increasing order")
        mode = "ab"
        if epoch in self._disk_epochs and epoch not in self._session_epochs:
            last = max(self._disk_epochs)
            if epoch < last:
                raise ValueError(f"TrainingRecorder.log: epoch {epoch} is already recorded in {self.path} "
                                 f"(epochs {min(self._disk_epochs)}-{last}); resuming from an earlier checkpoint "
                                 f"would mix two runs: call rec.truncate({epoch}) to drop epochs {epoch} and later, "
                                 "or record into a new name=")
            mode = "wb"  # the run restarts the epoch it was interrupted in: overwrite it
        self._close_files()
        self._files = (open(self._epoch_path(epoch, ".pos"), mode), open(self._epoch_path(epoch, ".logits"), mode))
        self._current = epoch
        self._session_epochs.add(epoch)

    def _close_files(self) -> None:
        if self._files is not None:
            for f in self._files:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._files = None
        self._current = None


# ---------------------------------------------------------------------------------------------
def training_scores(rec: TrainingRecorder, ids, label_codes: np.ndarray, classes: list) -> dict:
    """The training-dynamics columns over the samples ``ids`` (the analysed dataset's ids, with
    their given label codes in ``classes`` order): ``aum``, ``is_low_aum``, ``cartography_*``,
    ``forgetting_events`` (NaN / None / False where a sample was never logged or is an AUM threshold
    sample), plus ``is_threshold_sample`` when there are threshold samples; and ``info`` (the AUM
    cut and how it was chosen). Reads one epoch at a time, in chunks."""
    import pandas as pd

    from dqwidgets.compute.aum import (FALLBACK_THRESHOLD, THRESHOLD_PERCENTILE, area_under_margin, aum_threshold,
                                       margins)
    from dqwidgets.compute.cartography import cartography, cartography_regions, label_probability
    from dqwidgets.compute.forgetting import forgetting_events

    if not isinstance(rec, TrainingRecorder):
        raise ValueError(f"analyze: training= takes a dq.TrainingRecorder, got {type(rec).__name__}")
    epochs = rec.epochs
    if not epochs or not rec.ids or rec.n_outputs is None:
        raise ValueError(f"analyze: the TrainingRecorder at {rec.path} holds no logged epochs; "
                         "call rec.log(ids, logits, epoch) during training first")
    index = pd.Index(ids)
    n = len(index)
    row_of = index.get_indexer(pd.Index(rec.ids, tupleize_cols=False))  # recorder position -> dataset row
    logged_rows = _logged_positions(rec, epochs)
    unknown = np.flatnonzero(row_of[logged_rows] < 0)
    if len(unknown):
        first = [rec.ids[logged_rows[i]] for i in unknown[:3]]
        raise ValueError(f"analyze: {len(unknown)} ids logged in the TrainingRecorder ({rec.path}) are not in the "
                         f"dataset (first: {first}); log the dataset's ids (ds.ids), or analyse the dataset "
                         "the run trained on")
    codes = _recorder_codes(rec, np.asarray(label_codes, dtype=np.int64), classes)
    n_real = rec.n_classes if rec.n_classes is not None else rec.n_outputs
    is_thr = np.zeros(n, dtype=bool)
    if rec.threshold_ids:
        thr_rows = index.get_indexer(pd.Index(rec.threshold_ids, tupleize_cols=False))
        is_thr[thr_rows[thr_rows >= 0]] = True
    train_codes = np.where(is_thr, n_real, codes)

    E = len(epochs)
    margin = np.full((E, n), np.nan, np.float32)
    prob = np.full((E, n), np.nan, np.float32)
    correct = np.zeros((E, n), bool)
    for e_i, e in enumerate(epochs):
        pos, log = rec.epoch_logits(e)
        for start in range(0, len(pos), _CHUNK_ROWS):
            rows = row_of[np.asarray(pos[start:start + _CHUNK_ROWS])]
            z = np.asarray(log[start:start + _CHUNK_ROWS], dtype=np.float32)
            margin[e_i, rows] = margins(z, train_codes[rows])  # a later row for the same id overwrites
            p, c = label_probability(z[:, :n_real], np.where(is_thr[rows], -1, codes[rows]))
            prob[e_i, rows], correct[e_i, rows] = p, c
    prob[:, is_thr] = np.nan
    aum = area_under_margin(margin)
    if is_thr.any():
        cut = aum_threshold(aum[is_thr])
        rule = f"threshold samples ({THRESHOLD_PERCENTILE:g}th percentile of their AUM)"
        percentiles = {p: aum_threshold(aum[is_thr], p) for p in (50, 75, 90, 95, 99)}
    else:
        cut, rule = FALLBACK_THRESHOLD, "fallback: AUM < 0 (no threshold samples were trained)"
        percentiles = {}
    trained = np.isfinite(prob).any(0)
    aum_out = np.where(is_thr, np.nan, aum).astype(np.float32)
    carto = cartography(prob, correct)
    events, _ = forgetting_events(correct, np.isfinite(prob))
    cols = {
        "aum": aum_out,
        "is_low_aum": np.isfinite(aum_out) & (aum_out < cut),
        "cartography_confidence": carto["confidence"],
        "cartography_variability": carto["variability"],
        "cartography_correctness": carto["correctness"],
        "cartography_region": cartography_regions(carto["confidence"], carto["variability"]),
        "forgetting_events": np.where(trained, events, np.nan).astype(np.float32),
    }
    if is_thr.any():
        cols["is_threshold_sample"] = is_thr
    info = {"aum_threshold": float(cut), "aum_rule": rule, "epochs": epochs, "n_trained": int(trained.sum()),
            "n_threshold_samples": int(is_thr.sum()), "threshold_sample_aum_percentiles": percentiles,
            "path": str(rec.path)}
    return {"columns": cols, "info": info}


def _logged_positions(rec: TrainingRecorder, epochs: list[int]) -> np.ndarray:
    seen = np.zeros(len(rec.ids), dtype=bool)
    for e in epochs:
        pos, _ = rec.epoch_logits(e)
        for start in range(0, len(pos), _CHUNK_ROWS):
            seen[np.asarray(pos[start:start + _CHUNK_ROWS])] = True
    return np.flatnonzero(seen)


def _recorder_codes(rec: TrainingRecorder, codes: np.ndarray, classes: list) -> np.ndarray:
    """The dataset's label codes as the model's output indices."""
    n_real = rec.n_classes if rec.n_classes is not None else rec.n_outputs
    if rec.classes is None:
        if n_real != len(classes):
            extra = (" (with threshold samples, the model has one more output: use "
                     "rec.assign_threshold_samples)" if rec.n_outputs == len(classes) + 1 else "")
            raise ValueError(f"analyze: the recorded logits have {n_real} classes but the dataset has {len(classes)} "
                             f"({classes[:5]}...){extra}; pass TrainingRecorder(classes=[...]) in the model's output order")
        if [_plain(c) for c in classes] != list(range(len(classes))):
            # output j is class j only for integer labels 0..C-1; for names the order is the user's choice
            raise ValueError(f"analyze: the TrainingRecorder at {rec.path} does not say which class each of the "
                             f"model's {n_real} outputs is, and the dataset's classes are names ({classes[:4]}...); "
                             "pass TrainingRecorder(classes=[...]) with the class names in the model's output order")
        return codes
    col = {c: j for j, c in enumerate(rec.classes)}
    missing = [c for c in classes if _plain(c) not in col]
    if missing:
        raise ValueError(f"analyze: the dataset's classes {missing[:5]} are not among the recorder's classes "
                         f"{rec.classes[:10]}")
    table = np.array([col[_plain(c)] for c in classes], dtype=np.int64)
    return np.where(codes >= 0, table[np.maximum(codes, 0)], -1)


def _as_list(values) -> list:
    if hasattr(values, "tolist"):
        return values.tolist()  # numpy, torch, pandas: python scalars
    return list(values)


def _as_array(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach()
        if values.is_floating_point():
            values = values.float()  # bfloat16 / float16 have no (or a lossy) numpy twin
        return values.cpu().numpy()
    return np.asarray(values)


def _plain(v):
    """A JSON-safe id: python int / float / str / bool; tuples stay tuples."""
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, (str, int, float, bool, tuple)) or v is None:
        return v
    raise ValueError(f"TrainingRecorder: ids must be ints or strings (the dataset's ids); got {type(v).__name__} {v!r}")


def _epoch(epoch) -> int:
    try:
        e = int(epoch)
    except (TypeError, ValueError):
        raise ValueError(f"TrainingRecorder: epoch must be a whole number >= 0, got {epoch!r}") from None
    if e != epoch or e < 0:
        raise ValueError(f"TrainingRecorder: epoch must be a whole number >= 0, got {epoch!r}")
    return e


LABEL_EVIDENCE_WEIGHT = 0.5  # weight of the AUM evidence in the combined label-issue score


def training_columns(rec: TrainingRecorder, ids, label_codes: np.ndarray, classes: list,
                     label_issue_score: np.ndarray) -> tuple[dict, dict]:
    """What ``dq.analyze(ds, training=rec)`` adds to ``samples``: the columns of
    :func:`training_scores`, ``aum_score`` (σ(cut − AUM) in [0, 1], 0.5 at the AUM cut, the score of
    the ``low_aum`` issue type) and ``label_issue_score`` combined with it: the mean of the
    out-of-fold score and ``aum_score`` where both exist (bench/results/bench_training.md measures
    the label-issue AUROC with and without). Returns ``(columns, info)``."""
    from dqwidgets.compute.aum import aum_label_issue_score

    out = training_scores(rec, ids, label_codes, classes)
    cols, info = dict(out["columns"]), out["info"]
    cols["aum_score"] = aum_label_issue_score(cols["aum"], info["aum_threshold"])
    base = np.asarray(label_issue_score, dtype=np.float32)
    both = np.isfinite(base) & np.isfinite(cols["aum_score"])
    w = LABEL_EVIDENCE_WEIGHT
    cols["label_issue_score"] = np.where(both, (1 - w) * base + w * cols["aum_score"], base).astype(np.float32)
    info["label_issue_combined"] = int(both.sum())
    return cols, info
