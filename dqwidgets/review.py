"""The review journal: every relabel, drop and mark-ok a user makes, durable in SQLite.

The journal is an append-only table with one row per action (``relabel``, ``drop``, ``mark_ok``,
``undo``, ``redo``). Each row holds the ids it touched (JSON, so ints stay ints and strings stay
strings), every id's value before the action and the value after. The current state (labels and
each sample's review status) lives in memory and is rebuilt by replaying the rows when the
journal is opened, so an action on 100k ids is one ``INSERT`` of two JSON blobs.

Durability: the database runs in WAL mode with ``synchronous=FULL`` and every action is one
transaction, committed before the call returns; a kernel that is killed keeps every action whose
call had returned.

Several notebooks may share one journal. Each ``Review`` remembers the last row it has seen.
A write takes SQLite's write lock (``BEGIN IMMEDIATE``) and first reads the rows other sessions
appended since then. **A conflict** is an action whose ids intersect the ids touched by those
unseen rows (or an undo/redo whose target another session already undid, redid or superseded):
it raises :class:`ReviewConflictError` and writes nothing; the unseen rows are applied, so the
next call acts on the fresh state. Otherwise the unseen rows are applied and the action is
written. Reads (``labels()``, ``dropped()``, ...) also pick up other sessions' rows first.

Undo and redo walk one linear history shared by everyone who writes to the journal: ``undo()``
reverts the latest action that is still in effect (as this session last saw the journal) and
``redo()`` re-applies the most recently undone one until a new action clears the redo history.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT_VERSION = "1"
EDITS = ("relabel", "drop", "mark_ok")
STATUS_OF = {"drop": "dropped", "mark_ok": "ok"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    seq       INTEGER PRIMARY KEY,
    at        REAL    NOT NULL,          -- unix time of the commit
    action    TEXT    NOT NULL,          -- relabel | drop | mark_ok | undo | redo
    field     TEXT    NOT NULL,          -- label | status
    ids       TEXT    NOT NULL,          -- JSON list of sample ids
    old       TEXT    NOT NULL,          -- JSON list: each id's value before the action
    new       TEXT    NOT NULL,          -- JSON: one value for all ids, or a list (undo)
    target    INTEGER,                   -- undo / redo: seq of the action undone or redone
    new_label INTEGER NOT NULL DEFAULT 0, -- relabel that added a class
    note      TEXT,
    session   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ReviewConflictError(RuntimeError):
    """Another notebook changed the same samples since this one last looked at the journal."""


def _plain(value):
    """A JSON-safe Python scalar: numpy scalars unwrapped, every kind of missing value as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT:
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise ValueError(f"review: {value!r} ({type(value).__name__}) cannot be stored in the journal; "
                     "sample ids and labels must be strings or numbers")


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def stored_actions(path, timeout: float = 30.0) -> list[tuple]:
    """``(action, field, ids, new)`` of every row of the journal at ``path``, in order, ``ids`` and ``new``
    decoded from JSON; the file opened read-only (another session's or version's journal is never written).
    Raises ``sqlite3.Error`` where it is no readable journal, ``ValueError`` where a row does not decode."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        rows = con.execute("SELECT action, field, ids, new FROM actions ORDER BY seq").fetchall()
    finally:
        con.close()
    return [(action, field, json.loads(ids), json.loads(new)) for action, field, ids, new in rows]


def _object_array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Review:
    """The review journal of one dataset (see the module docstring for the guarantees).

    ``path``: the SQLite file (created with its folder; a folder means ``folder/journal.sqlite``);
    ``ids``: the dataset's sample ids; ``labels``: the given labels (a Series indexed by the ids,
    or None for unlabelled data); ``classes``: the known label values.
    """

    def __init__(self, path, ids: pd.Index, labels: pd.Series | None = None, classes=None):
        path = Path(path)
        if path.is_dir():
            path = path / "journal.sqlite"
        self.path = path
        self._ids = pd.Index(ids)
        if self._ids.has_duplicates:
            dup = self._ids[self._ids.duplicated()].unique()[:5].tolist()
            raise ValueError(f"Review: sample ids must be unique; repeated: {dup}")
        n = len(self._ids)
        if labels is None:
            given = _object_array([None] * n)
        else:
            if not isinstance(labels, pd.Series):          # an array: one label per id, in the ids' order
                values = list(labels)
                if len(values) != n:
                    raise ValueError(f"Review: {len(values)} labels for {n} ids")
                labels = pd.Series(_object_array(values), index=self._ids)
            if not labels.index.equals(self._ids):
                if len(labels) != n or not labels.index.isin(self._ids).all():
                    raise ValueError("Review: labels must be a Series indexed by the same ids as the dataset "
                                     f"({len(labels)} labels for {n} ids)")
                labels = labels.reindex(self._ids)
            given = _object_array([_plain(v) for v in labels.tolist()])
        self._given = given
        self._label = given.copy()
        self._status = _object_array([None] * n)
        self._classes = [_plain(c) for c in (classes if classes is not None else [])]
        self._undo_stack: list[int] = []   # seqs of edits in effect, oldest first
        self._redo_stack: list[int] = []   # seqs of undone edits, most recently undone last
        self._seen = 0
        self._callbacks = []
        # duplicate groups for with_duplicates=: a callable giving one int64 group code per id (-1 = in
        # none); Analysis.review sets it from samples["duplicate_group"]
        self.groups = None
        self._lock = threading.RLock()
        self.session = uuid.uuid4().hex[:12]
        self._con = self._connect()
        pending = self._read_rows_after(0)
        self._apply_rows(pending)

    # ------------------------------------------------------------------ storage
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
        except sqlite3.DatabaseError as e:
            if "locked" in str(e):
                raise
            if "not a database" in str(e) or "malformed" in str(e):
                raise ValueError(f"Review: {self.path} is not a dqwidgets review journal ({e}); "
                                 "pass another path or move that file away") from None
            raise ValueError(f"Review: cannot open the journal {self.path} ({e}); "
                             "pass a workdir/path in a writable folder") from None
        try:
            row = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT_VERSION,))
                con.execute("INSERT INTO meta VALUES ('created', ?)", (repr(time.time()),))
            elif row[0] != FORMAT_VERSION:
                raise ValueError(f"Review: {self.path} has journal format {row[0]}, this dqwidgets reads "
                                 f"format {FORMAT_VERSION}; upgrade dqwidgets")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            con.close()
            raise
        return con

    def _read_rows_after(self, seq: int) -> list[tuple]:
        return self._con.execute(
            "SELECT seq, action, field, ids, old, new, target, new_label FROM actions "
            "WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def close(self) -> None:
        """Close the database connection (the journal stays on disk)."""
        with self._lock:
            self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ replay
    def _positions_of_stored(self, ids_json: str, seq: int) -> np.ndarray:
        ids = json.loads(ids_json)
        pos = self._ids.get_indexer(_object_array(ids))
        if (pos < 0).any():
            missing = [i for i, p in zip(ids, pos) if p < 0][:5]
            raise ValueError(f"Review: the journal {self.path} (action {seq}) names ids that are not in this "
                             f"dataset, e.g. {missing}; it belongs to another dataset: use another workdir/path")
        return pos

    def _apply_rows(self, rows) -> tuple[np.ndarray, list[dict]]:
        """Apply stored rows to the in-memory state; return the positions they touched and their events."""
        touched, events = [], []
        for seq, action, field, ids_json, _old, new_json, target, new_label in rows:
            pos = self._positions_of_stored(ids_json, seq)
            events.append(self._apply(seq, action, field, pos, json.loads(new_json), target, new_label))
            touched.append(pos)
        return (np.concatenate(touched) if touched else np.empty(0, np.int64)), events

    def _apply(self, seq, action, field, pos, new, target, new_label) -> dict:
        """Apply one action to the in-memory state and the undo/redo stacks; return its event."""
        values = self._label if field == "label" else self._status
        values[pos] = _object_array(new) if isinstance(new, list) else new
        if new_label and new not in self._classes:
            self._classes.append(new)
        if action in EDITS:
            self._undo_stack.append(seq)
            self._redo_stack.clear()
        elif action == "undo":
            self._undo_stack.remove(target)
            self._redo_stack.append(target)
        elif action == "redo":
            self._redo_stack.remove(target)
            self._undo_stack.append(target)
        self._seen = seq
        return {"seq": seq, "action": action, "field": field, "n": len(pos), "target": target,
                "ids": self._ids[pos]}

    def refresh(self) -> None:
        """Pick up actions other notebooks wrote to the same journal."""
        with self._lock:
            _, events = self._apply_rows(self._read_rows_after(self._seen))
        self._notify(events)

    # ------------------------------------------------------------------ writing
    def _positions(self, ids, where: str) -> np.ndarray:
        if isinstance(ids, pd.Series) and ids.dtype == bool:
            ids = ids.index[ids.to_numpy()]
        elif isinstance(ids, np.ndarray) and ids.dtype == bool:
            if len(ids) != len(self._ids):
                raise ValueError(f"{where}: a boolean mask needs one value per sample "
                                 f"({len(ids)} given, {len(self._ids)} samples)")
            return np.flatnonzero(ids)
        if isinstance(ids, (str, bytes)) or np.isscalar(ids):
            ids = [ids]
        if isinstance(ids, pd.Series):
            ids = ids.to_numpy()
        if not isinstance(ids, (pd.Index, np.ndarray)):
            ids = _object_array(list(ids))
        if len(ids) == 0:
            raise ValueError(f"{where}: no ids given")
        pos = np.arange(len(self._ids)) if ids is self._ids else self._ids.get_indexer(ids)
        if (pos < 0).any():
            bad = [i for i, p in zip(ids, pos) if p < 0]
            raise ValueError(f"{where}: {len(bad)} id(s) are not in the dataset, e.g. {bad[:5]}; "
                             "ids are the dataset's sample ids (an.samples.index)")
        hit = np.zeros(len(self._ids), dtype=bool)
        hit[pos] = True
        if np.count_nonzero(hit) == len(pos):
            return pos
        _, first = np.unique(pos, return_index=True)     # repeated ids: keep each once, in the given order
        return pos[np.sort(first)]

    def _write(self, action: str, field: str, pos: np.ndarray, new, *, target=None,
               new_label=False, note=None, check=None) -> None:
        """One action = one committed transaction (see the module docstring for conflicts)."""
        if note is not None and not isinstance(note, str):
            raise ValueError(f"{action}: note must be a string, got {type(note).__name__}")
        events: list[dict] = []
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                touched, events = self._apply_rows(self._read_rows_after(self._seen))
                clash = self._shared(pos, touched)
                if len(clash):
                    raise ReviewConflictError(
                        f"{action}: another notebook changed {len(clash)} of these samples since this one last "
                        f"read the journal, e.g. {self._ids[clash[:5]].tolist()}; nothing was written. "
                        "Their changes are now loaded here: look at them and repeat the action if it still applies")
                if check is not None:  # may refuse the action, or settle its value now that the state is fresh
                    overrides = check() or {}
                    new = overrides.get("new", new)
                    new_label = overrides.get("new_label", new_label)
                values = self._label if field == "label" else self._status
                ids_json = _dumps(self._ids[pos].tolist())
                new_json = _dumps(new.tolist() if isinstance(new, np.ndarray) else new)
                cur = con.execute(
                    "INSERT INTO actions (at, action, field, ids, old, new, target, new_label, note, session) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), action, field, ids_json, _dumps(values[pos].tolist()), new_json, target,
                     int(new_label), note, self.session))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                self._notify(events)
                raise
            mine = [self._apply(cur.lastrowid, action, field, pos, new.tolist() if isinstance(new, np.ndarray) else new,
                                target, new_label)]
        self._notify(events + mine)

    def _shared(self, pos: np.ndarray, touched: np.ndarray) -> np.ndarray:
        if not len(touched):
            return touched
        hit = np.zeros(len(self._ids), dtype=bool)
        hit[touched] = True
        return pos[hit[pos]]

    def _with_duplicates(self, pos: np.ndarray, where: str) -> np.ndarray:
        """``pos`` and every other member of their duplicate groups (kept in order, the others after)."""
        codes = self.groups() if callable(self.groups) else None
        if codes is None:
            raise ValueError(f"{where}: with_duplicates=True needs the duplicate groups of an analysis; "
                             "use an.review (dq.analyze's journal), not a bare Review")
        codes = np.asarray(codes, dtype=np.int64)
        groups = np.unique(codes[pos])
        groups = groups[groups >= 0]
        if not len(groups):
            return pos
        extra = np.flatnonzero(np.isin(codes, groups))
        return np.concatenate([pos, extra[~np.isin(extra, pos)]])

    def _labels_with_duplicates(self, pos: np.ndarray, values: list, where: str) -> tuple[np.ndarray, list]:
        """``pos`` and ``values`` extended by the other members of their duplicate groups, each member
        with the label of the first of ``pos`` in its group; members already in ``pos`` keep theirs."""
        every = self._with_duplicates(pos, where)
        if len(every) == len(pos):
            return pos, values
        codes = np.asarray(self.groups(), dtype=np.int64)
        first: dict[int, object] = {}
        for p, v in zip(pos.tolist(), values):
            if codes[p] >= 0:
                first.setdefault(int(codes[p]), v)
        extra = every[len(pos):]
        return every, list(values) + [first[int(codes[p])] for p in extra]

    def relabel(self, ids, label, new_label: bool = False, note: str | None = None,
                with_duplicates: bool = False) -> None:
        """Give ``ids`` the label ``label``; a label that is not a known class needs ``new_label=True``.
        ``with_duplicates=True``: also every other member of their duplicate groups, in the same action."""
        if isinstance(label, (list, tuple, set, dict, np.ndarray, pd.Series)):
            raise ValueError("relabel: label must be one value (string or number); "
                             "relabel each group of ids with its own call")
        label = _plain(label)
        if label is None:
            raise ValueError("relabel: label must not be missing; to take samples out use drop(ids)")
        _dumps(label)
        pos = self._positions(ids, "relabel")
        if with_duplicates:
            pos = self._with_duplicates(pos, "relabel")

        def check_class():  # runs after other sessions' rows are loaded, so their new classes count
            if label not in self._classes and not new_label:
                raise ValueError(f"relabel: {label!r} is not one of the classes {self._classes[:20]}; "
                                 "pass new_label=True to add it as a new class")
            if label in self._classes:
                return {"new": self._classes[self._classes.index(label)], "new_label": False}
            return {"new": label, "new_label": True}

        self._write("relabel", "label", pos, label, note=note, check=check_class)

    def relabel_many(self, labels, note: str | None = None, with_duplicates: bool = False) -> None:
        """Give each id its own label in ONE action: one journal row (``new`` holds one label per id,
        in the order of ``ids``) and one ``undo()`` that restores them all. ``labels``: a dict or a
        Series {id: label}; every label must be a known class (add a new one with ``relabel(...,
        new_label=True)`` first). ``with_duplicates=True``: every other member of an id's duplicate
        group gets that id's label too, in the same row (a member named in ``labels`` keeps its own;
        a group whose named ids carry different labels gives its other members the first one's)."""
        if isinstance(labels, pd.Series):
            if labels.index.has_duplicates:
                raise ValueError("relabel_many: an id appears twice in labels; give each id one label")
            ids, values = labels.index.tolist(), labels.tolist()
        elif isinstance(labels, dict):
            ids, values = list(labels), list(labels.values())
        else:
            raise ValueError(f"relabel_many: labels must be a dict or a Series {{id: label}}, "
                             f"not {type(labels).__name__}")
        values = [_plain(v) for v in values]
        missing = [i for i, v in zip(ids, values) if v is None]
        if missing:
            raise ValueError(f"relabel_many: {len(missing)} id(s) have no label, e.g. {missing[:5]}; "
                             "to take samples out use drop(ids)")
        pos = self._positions(ids, "relabel_many")
        if with_duplicates:
            pos, values = self._labels_with_duplicates(pos, values, "relabel_many")
        for v in values:
            _dumps(v)

        def check_classes():  # after other sessions' rows are loaded, so their new classes count
            unknown = sorted({str(v) for v in values if v not in self._classes})
            if unknown:
                raise ValueError(f"relabel_many: {unknown[:10]} are not among the classes {self._classes[:20]}; "
                                 "add a new class with relabel(ids, label, new_label=True) first")
            return {"new": _object_array([self._classes[self._classes.index(v)] for v in values])}

        self._write("relabel", "label", pos, _object_array(values), note=note, check=check_classes)

    def drop(self, ids, note: str | None = None, with_duplicates: bool = False) -> None:
        """Mark ``ids`` as dropped: export leaves them out. ``with_duplicates=True``: their duplicate
        groups too, in the same action."""
        pos = self._positions(ids, "drop")
        if with_duplicates:
            pos = self._with_duplicates(pos, "drop")
        self._write("drop", "status", pos, "dropped", note=note)

    def mark_ok(self, ids, note: str | None = None, with_duplicates: bool = False) -> None:
        """Mark ``ids`` as reviewed and fine: export keeps them even when a flag would drop them
        (this also takes back an earlier drop). ``with_duplicates=True``: their duplicate groups too."""
        pos = self._positions(ids, "mark_ok")
        if with_duplicates:
            pos = self._with_duplicates(pos, "mark_ok")
        self._write("mark_ok", "status", pos, "ok", note=note)

    def adopt(self, path, note: str | None = None) -> dict:
        """Carry over the decisions of another journal, e.g. of another version of this data (rows added
        or removed: the journal is keyed by the exact set of ids): each of its samples that is here gets the
        label and review status it ended with there (undone actions stay undone), as at most one journal
        entry per kind (one ``relabel_many``, one ``relabel(..., new_label=True)`` per class that is new here,
        one ``drop``, one ``mark_ok``), each undone by one ``undo()``. Samples whose state here is already
        that state are left alone. Returns the counts: relabelled, dropped, marked_ok, not_here (samples it
        decided on that this data lacks)."""
        src = Path(path)
        if src.is_dir():
            src = src / "journal.sqlite"
        if not src.is_file():
            raise ValueError(f"Review.adopt: no journal at {str(src)!r}; pass the journal.sqlite (or its folder) "
                             "named in the warning")
        if src.resolve() == self.path.resolve():
            raise ValueError("Review.adopt: that is this review's own journal")
        try:
            rows = stored_actions(src)
        except (sqlite3.Error, ValueError) as e:
            raise ValueError(f"Review.adopt: {src} is not a readable dqwidgets review journal ({e})") from None
        final = {"label": {}, "status": {}}  # the journal's replay: undo and redo rows carry the values they restore
        for _, field, ids, new in rows:
            for i, v in zip(ids, new if isinstance(new, list) else [new] * len(ids)):
                final[field][tuple(i) if isinstance(i, list) else _plain(i)] = v  # a tuple id is stored as a list

        def here(field):  # (id here, its final value there, its position here) of the ids this data has
            ids = list(final[field])
            pos = self._ids.get_indexer(_object_array(ids)) if ids else np.empty(0, np.int64)
            return [(self._ids[p], final[field][i], p) for i, p in zip(ids, pos) if p >= 0]

        with self._lock:
            self._apply_rows(self._read_rows_after(self._seen))  # other sessions' actions first
            labels = {i: v for i, v, p in here("label") if v is not None and v != self._label[p]}
            status = [(i, v) for i, v, p in here("status") if v != self._status[p]]
            decided = list(set(final["label"]) | set(final["status"]))
            not_here = int((self._ids.get_indexer(_object_array(decided)) < 0).sum()) if decided else 0
        drop = [i for i, v in status if v == "dropped"]
        ok = [i for i, v in status if v == "ok"]
        note = note or f"adopted from {src}"
        known = {i: v for i, v in labels.items() if v in self._classes}
        if known:
            self.relabel_many(known, note=note)
        for v in sorted({v for v in labels.values() if v not in self._classes}, key=str):
            self.relabel([i for i, w in labels.items() if w == v], v, new_label=True, note=note)
        if drop:
            self.drop(drop, note=note)
        if ok:
            self.mark_ok(ok, note=note)
        return {"relabelled": len(labels), "dropped": len(drop), "marked_ok": len(ok), "not_here": not_here}

    def undo(self, note: str | None = None) -> None:
        """Revert the latest action still in effect. Raises ValueError when there is nothing to undo."""
        self._revisit("undo", self._undo_stack, "nothing to undo", "already undid it", note)

    def redo(self, note: str | None = None) -> None:
        """Re-apply the most recently undone action. Raises ValueError when there is nothing to redo."""
        self._revisit("redo", self._redo_stack, "nothing to redo (a new action clears what could be redone)",
                      "wrote new actions since, so it can no longer be redone", note)

    def _revisit(self, kind: str, stack: list, empty: str, gone: str, note=None) -> None:
        """Undo (write back the target's old values) or redo (its new value) the action on top of ``stack``."""
        with self._lock:
            if not stack:
                raise ValueError(f"{kind}: {empty}")
            target = stack[-1]
            action, field, ids_json, old_json, new_json = self._con.execute(
                "SELECT action, field, ids, old, new FROM actions WHERE seq=?", (target,)).fetchone()
            pos = self._positions_of_stored(ids_json, target)
            value = _object_array(json.loads(old_json)) if kind == "undo" else json.loads(new_json)

            def still_there():
                if target not in stack:
                    raise ReviewConflictError(f"{kind}: another notebook {gone} (action {target}, {action})")

            self._write(kind, field, pos, value, target=target, note=note, check=still_there)

    # ------------------------------------------------------------------ reading
    @property
    def can_undo(self) -> bool:
        return bool(self._undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo_stack)

    @property
    def seq(self) -> int:
        """Number of the last journal row this session has seen (0 = empty journal)."""
        return self._seen

    @property
    def classes(self) -> list:
        """The known classes, including those added by ``relabel(..., new_label=True)``."""
        self.refresh()
        return list(self._classes)

    def labels(self) -> pd.Series:
        """Current labels: the given labels with the relabels in effect, indexed by sample id."""
        self.refresh()
        return pd.Series(self._label.copy(), index=self._ids, name="label").infer_objects()

    def given_labels(self) -> pd.Series:
        return pd.Series(self._given.copy(), index=self._ids, name="label").infer_objects()

    def relabelled(self) -> pd.Index:
        """Ids whose current label differs from the given one."""
        self.refresh()
        return self._ids[self._label != self._given]

    def status(self) -> pd.Series:
        """Each sample's review status: ``"dropped"``, ``"ok"`` or None (not reviewed)."""
        self.refresh()
        return pd.Series(self._status.copy(), index=self._ids, name="review_status")

    def dropped(self) -> pd.Index:
        """Ids currently dropped."""
        self.refresh()
        return self._ids[self._status == "dropped"]

    def marked_ok(self) -> pd.Index:
        """Ids currently marked as reviewed and fine."""
        self.refresh()
        return self._ids[self._status == "ok"]

    def history(self) -> pd.DataFrame:
        """Every action, oldest first: when, action, ids, old values, new value(s), note, and for undo/redo
        the action it reverted or re-applied (``target``)."""
        self.refresh()
        with self._lock:
            rows = self._con.execute(
                "SELECT seq, at, action, ids, old, new, target, note, session FROM actions ORDER BY seq").fetchall()
        frame = pd.DataFrame(rows, columns=["seq", "when", "action", "ids", "old", "new", "target", "note",
                                            "session"])
        frame["when"] = pd.to_datetime(frame["when"], unit="s", utc=True)
        for col in ("ids", "old", "new"):
            frame[col] = [json.loads(v) for v in frame[col]]
        frame.insert(3, "n", [len(v) for v in frame["ids"]])
        frame["target"] = frame["target"].astype("Int64")
        frame["note"] = pd.Series([row[7] for row in rows], dtype=object)      # None stays None
        return frame.set_index("seq")

    def provenance(self) -> pd.DataFrame:
        """For every sample, the action (seq and note) that set its current label and status (0 = as given)."""
        self.refresh()
        with self._lock:
            rows = self._con.execute("SELECT seq, action, field, ids, target, note FROM actions ORDER BY seq").fetchall()
        n = len(self._ids)
        source = {"label": np.zeros(n, np.int64), "status": np.zeros(n, np.int64)}
        before: dict[int, np.ndarray] = {}
        notes: dict[int, str | None] = {0: None}
        for seq, action, field, ids_json, target, note in rows:
            pos = self._positions_of_stored(ids_json, seq)
            src = source[field]
            notes[seq] = note
            if action == "undo":
                src[pos] = before[target]
            else:
                edit = target if action == "redo" else seq
                before[edit] = src[pos].copy()
                src[pos] = edit
        out = pd.DataFrame({"label_action": source["label"], "status_action": source["status"]}, index=self._ids)
        out["label_note"] = [notes[s] for s in out["label_action"]]
        out["status_note"] = [notes[s] for s in out["status_action"]]
        return out

    # ------------------------------------------------------------------ observers
    def observe(self, callback) -> None:
        """Call ``callback(action: dict)`` after every committed action, this session's or another's
        (keys: seq, action, field ("label" | "status"), n, ids (a pd.Index), target (undo/redo: the action
        reverted or re-applied))."""
        self._callbacks.append(callback)

    def unobserve(self, callback) -> None:
        self._callbacks.remove(callback)

    def _notify(self, events) -> None:
        for event in events:
            for callback in list(self._callbacks):
                try:
                    callback(dict(event))
                except Exception as e:  # the action is committed; a broken observer must not look like a failed action
                    warnings.warn(f"Review observer {callback!r} raised {type(e).__name__}: {e}", stacklevel=2)

    def __repr__(self) -> str:
        return (f"Review({str(self.path)!r}: {self._seen} actions, {int((self._label != self._given).sum())} "
                f"relabelled, {int((self._status == 'dropped').sum())} dropped, "
                f"{int((self._status == 'ok').sum())} marked ok)")
