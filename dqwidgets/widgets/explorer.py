"""Explorer: the linked map, slice table, sample grid, review panel and threshold charts.

One anywidget whose view (``static/explorer.js``, built from ``js/`` by ``npm run build``) holds
every panel; they share one :class:`Selection` model. Columns travel as binary buffers in custom
messages answered on request, so they are never part of the saved widget state: a saved notebook
grows by the bundle and a few traits per Explorer, not by the data.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import anywidget
import ipywidgets
import numpy as np
import pandas as pd
import traitlets

from dqwidgets.analysis import Analysis
from dqwidgets import review_queue
from dqwidgets.issues import ISSUES
from dqwidgets.widgets import charts, evidence, grid, group_actions, map as map_columns, review_panel, table
from dqwidgets.widgets.arrow_pages import frame_to_ipc
from dqwidgets.widgets.selection import Selection, buffer_bytes, decode_rows, encode_rows

BUNDLE = Path(__file__).parent / "static" / "explorer.js"
GRID_FIRST_PAGE = 120  # rows pushed with each grid reset: one page of js/grid/view.ts (PAGE)
log = logging.getLogger(__name__)


def _bundle() -> Path:
    if not BUNDLE.exists():
        raise FileNotFoundError(
            f"the Explorer's front end {BUNDLE} is missing: build it with `make js` "
            "(npm install && npm run build) in the dqwidgets source folder, or install a built wheel")
    return BUNDLE


class Explorer(anywidget.AnyWidget):
    """``dq.Explorer(an)``: find and fix problems in ``an`` (a :class:`dqwidgets.Analysis`)."""

    _esm = traitlets.Unicode().tag(sync=True)
    selection_model = traitlets.Instance(Selection).tag(sync=True, **ipywidgets.widget_serialization)
    color_by = traitlets.Unicode("issue").tag(sync=True)
    grid_score = traitlets.Unicode("").tag(sync=True)
    filters = traitlets.Dict({"issue": "", "split": "", "label": ""}).tag(sync=True)
    # "auto": WebGL2 on a GPU, a CPU rasteriser where WebGL is software (SwiftShader, llvmpipe) or missing
    map_renderer = traitlets.Enum(("auto", "webgl", "cpu"), "auto").tag(sync=True)

    def __init__(self, an: Analysis, color_by: str = "issue", map_renderer: str = "auto",
                 map_max_points: int = map_columns.MAP_MAX_POINTS, **kwargs):
        if not isinstance(an, Analysis):
            raise ValueError(f"Explorer(an): an must be the Analysis that dq.analyze returns, not a {type(an).__name__}")
        samples = an.samples
        renderers = type(self).map_renderer.values
        if map_renderer not in renderers:
            raise ValueError(f"Explorer: map_renderer must be one of {list(renderers)} "
                             f"(\"auto\" picks WebGL2 on a GPU, the CPU rasteriser otherwise), not {map_renderer!r}")
        self._an = an
        self.map_max_points = int(map_max_points)  # above it the map draws map_rows (see map_rows)
        n = len(samples)
        super().__init__(_esm=_bundle().read_text(encoding="utf-8"), selection_model=Selection(n=n),
                         grid_score=grid.default_score(samples) or "", map_renderer=map_renderer, **kwargs)
        options = map_columns.colour_options(samples, self._labels() is not None)
        if color_by not in options:
            raise ValueError(f"Explorer: cannot colour by {color_by!r}; choose one of {options}")
        self.color_by = color_by
        self._grid_rows = np.arange(0)
        self._grid_version = 0
        self._visible: np.ndarray | None = None
        self._drawn: np.ndarray | None = None  # rows the browser's map draws when it is sampled (map_rows)
        self.on_msg(self._on_message)
        self.selection_model.observe(lambda _: self._selection_changed(), names="data")
        self.selection_model.on_error(self._report_error)
        if hasattr(an, "observe"):
            an.observe(self._analysis_event)
        self._recompute_grid()

    # ------------------------------------------------------------------ the user's handle
    @property
    def analysis(self):
        return self._an

    @property
    def selection(self) -> pd.Index:
        """Ids (of ``an.samples``) selected in the browser; assign ids to select them there."""
        return self._an.samples.index[self.selection_model.rows]

    @selection.setter
    def selection(self, ids) -> None:
        if ids is None:
            ids = []
        if isinstance(ids, (str, bytes)) or np.isscalar(ids):
            ids = [ids]
        index = self._an.samples.index
        wanted = pd.Index(list(ids))
        rows = index.get_indexer(wanted)
        if (rows < 0).any():
            missing = wanted[rows < 0][:5].tolist()
            raise ValueError(f"Explorer.selection: {int((rows < 0).sum())} ids are not in an.samples "
                             f"(first: {missing}); use ids from an.samples.index")
        self.selection_model.rows = rows

    @property
    def map_rows(self) -> np.ndarray:
        """Rows the map draws: all of them up to ``map_max_points`` samples, else every flagged sample
        and a density-first sample of the rest (``widgets.map.density_first_sample``). A lasso still
        selects every sample inside it (:meth:`select_polygon`), drawn or not."""
        return self._map_rows(self._positions()[0])

    def _map_rows(self, xy) -> np.ndarray:
        xy = xy.reshape(-1, 2)
        return map_columns.density_first_sample(xy[:, 0], xy[:, 1], map_columns.flag_mask(self._an.samples),
                                                self.map_max_points)

    def select_polygon(self, polygon, mode: str = "replace") -> pd.Index:
        """Select every sample inside ``polygon`` (flat [x0, y0, x1, y1, ...] in the map's coordinates,
        each in [-1, 1], the browser's lasso): the exact ids over all samples, also those a sampled map
        does not draw. ``mode``: "replace", "merge" (add) or "remove". Returns the selected ids."""
        if mode not in ("replace", "merge", "remove"):
            raise ValueError(f"Explorer.select_polygon: mode must be 'replace', 'merge' or 'remove', not {mode!r}")
        xy, _ = self._positions()
        xy = xy.reshape(-1, 2)
        hit = map_columns.rows_in_polygon(xy[:, 0], xy[:, 1], polygon)
        if self._visible is not None:  # the grid's filters hide points from the lasso, as in the browser
            hit = hit[self._visible[hit]]
        if mode != "replace":
            current = self.selection_model.rows
            hit = np.union1d(current, hit) if mode == "merge" else np.setdiff1d(current, hit)
        self.selection_model.rows = hit
        return self.selection

    def _msg_lasso(self, content, _buffers=()):
        """A lasso polygon from the browser, resolved over every sample here (a sampled map)."""
        self.select_polygon(content.get("polygon", []), content.get("mode", "replace"))
        return {"count": self.selection_model.count}

    def charts(self) -> list:
        """Plotly versions of the summary charts (see :mod:`dqwidgets.widgets.charts`)."""
        return charts.summary_figures(self._an)

    def data_map(self, max_points: int = 50_000):
        """The data map of the training run (``dq.analyze(ds, training=rec)``): a plotly FigureWidget of
        variability vs confidence linked to this Explorer's selection; see :mod:`dqwidgets.widgets.datamap`."""
        from dqwidgets.widgets.datamap import data_map

        return data_map(self, max_points)

    # ------------------------------------------------------------------ state the views read
    def _labels(self) -> pd.Series | None:
        review = getattr(self._an, "review", None)
        if review is not None:
            labels = review.labels()
            if labels is not None and labels.notna().any():
                return labels
        samples = self._an.samples
        if "label" in samples.columns and samples["label"].notna().any():
            return samples["label"]
        return None

    def _classes(self) -> list[str]:
        classes = getattr(self._an, "classes", None)
        if classes is None:
            labels = self._labels()
            classes = sorted(labels.dropna().unique().tolist(), key=str) if labels is not None else []
        return [str(c) for c in classes]

    def _dropped(self) -> set:
        review = getattr(self._an, "review", None)
        return set(review.dropped()) if review is not None else set()

    def _dropped_mask(self) -> np.ndarray:
        dropped = self._dropped()
        if not dropped:
            return np.zeros(len(self._an.samples), dtype=bool)
        return self._an.samples.index.isin(list(dropped))

    def notices(self) -> list[str]:
        """What is missing or provisional, in words (shown above the map)."""
        an, samples, out = self._an, self._an.samples, []
        if "x" not in samples.columns or "y" not in samples.columns or not np.isfinite(
                samples[["x", "y"]].to_numpy(dtype=np.float64)).any():
            out.append("no layout yet: the map shows every point at the centre until the layout arrives")
        elif getattr(an, "layout_status", "final") == "provisional":
            out.append("provisional layout: the points move to the final layout when UMAP finishes")
        labels = self._labels()
        if labels is None:
            out.append("unlabelled data: there are no label issues to find and relabelling is off")
        elif labels.dropna().nunique() < 2:
            out.append("a single class: label issues need at least two classes")
        elif "label_issue_score" in samples.columns and not samples["label_issue_score"].notna().any():
            out.append("labels not scored: the features do not predict them (an.info['label_information']); "
                       "check that the features belong to these labels")
        for col, what in (("is_unreadable", "could not be loaded (shown as placeholders with the reason)"),
                          ("is_invalid", "were left out of the analysis (see an.samples.invalid_reason)")):
            if col in samples.columns and samples[col].fillna(False).astype(bool).any():
                out.append(f"{int(samples[col].fillna(False).astype(bool).sum()):,} samples {what}")
                break
        return out

    def counts_text(self) -> str:
        samples = self._an.samples
        parts = [f"{len(samples):,} samples"]
        for issue in ISSUES:
            if issue.count_text and issue.flag_column in samples.columns:
                flags = samples[issue.flag_column].fillna(False).astype(bool)
                text = f"{int(flags.sum()):,} {issue.count_text}"
                if issue.calibrated and issue.score_column in samples.columns:
                    notes = []
                    if flags.any():
                        real = float(samples.loc[flags, issue.score_column].fillna(0).sum())  # summary()'s estimated_real
                        notes.append(f"~{real:,.0f} likely real")
                    if issue.name in review_queue.PAST_THE_FLAGS:  # summary()'s estimated_left
                        left = review_queue.expected_left(self._an, issue.name)
                        if round(left) >= 1:
                            notes.append(f"~{left:,.0f} likely wrong left below the flags")
                    if notes:
                        text += f" ({', '.join(notes)})"
                parts.append(text)
        parts.append(f"{self.selection_model.count:,} selected")
        dropped = len(self._dropped())
        if dropped:
            parts.append(f"{dropped:,} dropped")
        return " · ".join(parts)

    # ------------------------------------------------------------------ grid
    def _recompute_grid(self, keep_scroll: bool = False) -> None:
        samples = self._an.samples
        f = self.filters
        queue = f.get("issue", "") == grid.QUEUE_FILTER
        mask = grid.filter_mask(samples, self._labels(), "" if queue else f.get("issue", ""), f.get("split", ""),
                                f.get("label", ""))
        selected = self.selection_model.rows if self.selection_model.count else None
        if queue:  # the review queue's own order (an.review_queue()), narrowed by the other filters
            rows = self._an.review_queue()["row"].to_numpy(np.int64)
            member = np.zeros(len(samples), dtype=bool)
            member[rows] = True
            if selected is not None:
                rows = rows[np.isin(rows, selected)]
            if mask is not None:
                rows = rows[mask[rows]]
            mask = member if mask is None else mask & member
            self._grid_rows = rows
        else:
            self._grid_rows = grid.order_rows(samples, selected, mask, self.grid_score or None)
        self._grid_version += 1
        if selected is not None:
            title = f"{len(self._grid_rows):,} selected samples"
        elif queue:
            title = f"review queue: {len(self._grid_rows):,} samples, the flags first, then past them while likely wrong"
        else:
            title = f"worst {len(self._grid_rows):,} samples by {self.grid_score}" if self.grid_score \
                else f"{len(self._grid_rows):,} samples"
        self._grid_title = title + (" (filtered)" if mask is not None else "")
        self._visible = mask

    def _grid_reset_message(self, keep_scroll=False) -> dict:
        return {"kind": "grid_reset", "version": self._grid_version, "total": int(len(self._grid_rows)),
                "title": self._grid_title, "keep_scroll": keep_scroll}

    def _push_grid(self, keep_scroll=False) -> None:
        # the first page goes with the reset, so a new selection draws without another round trip
        before = getattr(self, "_grid_rows", None)
        self._recompute_grid()
        # the same cards in the same order (a filter or selection set again to what it was): the grid keeps its
        # scroll and its cursor, so a key pressed after a click acts on the clicked card, not on the first one
        keep_scroll = keep_scroll or (before is not None and np.array_equal(before, self._grid_rows))
        self.send({**self._grid_reset_message(keep_scroll), "first_page": GRID_FIRST_PAGE},
                  [self._grid_page(0, GRID_FIRST_PAGE)])
        self.send({"kind": "counts", "counts_text": self.counts_text()})

    def _grid_page(self, offset: int, limit: int) -> bytes:
        rows = self._grid_rows[offset: offset + limit]
        frame = grid.page_frame(self._an, rows, self._labels(), self._dropped(),
                                map_columns.flag_mask(self._an.samples))
        return frame_to_ipc(frame)

    def _selection_changed(self) -> None:
        self._push_grid()

    @traitlets.observe("filters", "grid_score")
    def _filters_changed(self, change) -> None:
        if not hasattr(self, "_grid_rows"):
            return
        self._push_grid()
        self._push_visible()

    def _push_visible(self) -> None:
        if self._visible is None:
            self.send({"kind": "visible", "all": True})
        else:
            self.send({"kind": "visible", "all": False},
                      [np.packbits(self._visible, bitorder="little").tobytes()])

    # ------------------------------------------------------------------ analysis events
    def _analysis_event(self, event: str) -> None:
        try:
            if event == "layout" and self._drawn is not None:  # a sampled map draws other rows now
                self.send({"kind": "positions", "reload": True,
                           "layout_status": getattr(self._an, "layout_status", "final")})
            elif event == "layout":
                xy, notice = self._positions()
                self.send({"kind": "positions", "notice": notice,
                           "layout_status": getattr(self._an, "layout_status", "final")}, [xy.tobytes()])
            elif event in ("flags", "review"):
                self.send({"kind": "flags", "histograms": charts.score_histograms(self._an),
                           "counts_text": self.counts_text(), "map_reload": self._drawn is not None},
                          [map_columns.flag_mask(self._an.samples).astype(np.uint8).tobytes()])
                if self.color_by in ("issue", "label") or event == "flags":
                    self.send({"kind": "recolour"})
                self._push_grid(keep_scroll=True)
        except Exception as e:  # a failing push must not break the analysis that notified us
            self._report_error(e)

    # ------------------------------------------------------------------ errors the user must see
    def _report_error(self, error: BaseException) -> None:
        """Show a kernel-side failure in the Explorer (a banner, and console.error in the browser)."""
        message = _first_line(error)
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        try:
            self.send({"kind": "error", "message": message, "detail": detail[-4000:]})
        except Exception:  # no front end to tell: the log below is all there is
            log.exception("Explorer: could not show an error in the browser")
        log.error("Explorer: %s", message, exc_info=error)

    def set_state(self, sync_data):
        # ipywidgets' comm handler swallows what a state update from the browser raises (the
        # server's log, which the user never sees): show it in the Explorer's banner first
        try:
            super().set_state(sync_data)
        except Exception as e:
            self._report_error(e)
            raise

    def _positions(self) -> tuple[np.ndarray, str]:
        samples = self._an.samples
        if "x" not in samples.columns or "y" not in samples.columns:
            return map_columns.normalised_positions(np.full(len(samples), np.nan), np.full(len(samples), np.nan))
        return map_columns.normalised_positions(samples["x"].to_numpy(), samples["y"].to_numpy())

    # ------------------------------------------------------------------ messages from the browser
    def _on_message(self, _widget, content: dict, buffers) -> None:
        kind = content.get("kind")
        req = content.get("req")
        try:
            handler = getattr(self, f"_msg_{kind}", None)
            if handler is None:
                raise ValueError(f"Explorer: unknown message {kind!r}")
            reply = handler(content, [buffer_bytes(b) for b in (buffers or [])])
            if req is not None:
                body, bufs = reply if isinstance(reply, tuple) else (reply or {}, [])
                self.send({"kind": kind, "req": req, **body}, bufs)
        except Exception as e:
            log.debug("Explorer message %r failed", kind, exc_info=True)
            if req is not None:  # the view that asked says it; the front end's banner shows every one
                self.send({"kind": kind, "req": req, "error": _first_line(e),
                           "unexpected": not isinstance(e, ValueError)})
            else:
                self._report_error(e)

    def _msg_init(self, _content, _buffers=()):
        samples = self._an.samples
        labels = self._labels()
        return {
            "n": len(samples),
            "modality": getattr(self._an.dataset, "modality", "embedding") if hasattr(self._an, "dataset") else "embedding",
            "classes": self._classes(),
            "can_relabel": labels is not None and len(self._classes()) > 0,
            "splits": sorted(samples["split"].dropna().astype(str).unique().tolist()) if "split" in samples.columns else [],
            "issues": [[k, v[1]] for k, v in grid.ISSUE_FILTERS.items() if v[0] in samples.columns]
            + ([[grid.QUEUE_FILTER, grid.QUEUE_TEXT]] if any(i.flag_column in samples.columns for i in ISSUES
                                                               if i.name in review_queue.QUEUED_ISSUES) else []),
            "color_options": map_columns.colour_options(samples, labels is not None),
            "color_by": self.color_by,
            "scores": map_columns.score_columns(samples),
            "histograms": charts.score_histograms(self._an),
            "notices": self.notices(),
            "counts_text": self.counts_text(),
            "grid": self._grid_reset_message(),
        }

    def _colour(self):
        return map_columns.colour_column(self._an.samples, self.color_by, self._labels(), self._dropped_mask())

    def _msg_map(self, content, _buffers=()):
        if content.get("color_by"):
            self.color_by = content["color_by"]
        colour = self._colour()
        flags = map_columns.flag_mask(self._an.samples).astype(np.uint8)
        if content.get("positions"):
            xy, notice = self._positions()
            n = len(flags)
            rows = self._map_rows(xy)
            if len(rows) < n:  # above map_max_points: the drawn rows' columns, and which rows they are
                self._drawn = rows
                notice = "; ".join(t for t in (notice, f"the map draws {len(rows):,} of {n:,} samples (every flagged "
                                                       "one and a density-first sample of the rest); a lasso "
                                                       "selects every sample inside it") if t)
                return ({"n": n, "drawn": len(rows), "sampled": True, "colour": colour.info(), "notice": notice},
                        [xy.reshape(-1, 2)[rows].tobytes(), colour.codes[rows].tobytes(), flags[rows].tobytes(),
                         rows.astype("<u4").tobytes()])
            self._drawn = None
            return ({"n": n, "colour": colour.info(), "notice": notice},
                    [xy.tobytes(), colour.codes.tobytes(), flags.tobytes()])
        codes = colour.codes if self._drawn is None else colour.codes[self._drawn]
        return {"colour": colour.info()}, [codes.tobytes()]

    def _msg_color_by(self, content, _buffers=()):
        options = map_columns.colour_options(self._an.samples, self._labels() is not None)
        if content.get("value") not in options:
            raise ValueError(f"Explorer: cannot colour by {content.get('value')!r}; choose one of {options}")
        self.color_by = content["value"]

    def _msg_grid(self, content, _buffers=()):
        offset, limit = int(content.get("offset", 0)), int(content.get("limit", 100))
        return {"version": self._grid_version, "offset": offset}, [self._grid_page(offset, limit)]

    def _msg_thumbs(self, content, _buffers=()):
        rows = [int(r) for r in content.get("rows", [])]
        ids = review_panel.ids_of_rows(self._an, rows)
        blobs, errors = grid.thumbnails(self._an.dataset, ids, int(content.get("size", 96)))
        ok = [k for k, b in enumerate(blobs) if b is not None]
        mime = grid.image_mime(blobs[ok[0]]) if ok else "image/jpeg"
        return ({"rows": [rows[k] for k in ok], "mime": mime, "errors": {str(rows[k]): e for k, e in errors.items()}},
                [blobs[k] for k in ok])

    def _msg_hover(self, content, _buffers=()):
        row = int(content["row"])
        sample_id = review_panel.ids_of_rows(self._an, [row])[0]
        samples = self._an.samples
        labels = self._labels()
        lines = [f"id {sample_id}"]
        if labels is not None:
            lines.append(f"label {labels.get(sample_id)}")
        if "suggested_label" in samples.columns:
            lines.append(f"suggested {samples['suggested_label'].iloc[row]}")
        for c in map_columns.score_columns(samples):
            lines.append(f"{c} {float(samples[c].iloc[row]):.3f}")
        modality = getattr(self._an.dataset, "modality", "embedding")
        if modality == "text":
            lines.insert(1, grid._snippet(self._an.dataset, sample_id))
        if modality == "image":
            blobs, errors = grid.thumbnails(self._an.dataset, [sample_id], 96)
            if blobs[0] is not None:
                return {"lines": lines, "mime": grid.image_mime(blobs[0])}, [blobs[0]]
            lines.append(f"no image: {errors[0]}")
        return {"lines": lines}, []

    def _msg_table(self, content, _buffers=()):
        page, sort = table.table_page(self._an, content.get("table", "slices"), content.get("sort", ""),
                                      bool(content.get("descending", True)), int(content.get("offset", 0)),
                                      int(content.get("limit", 500)))
        empty = "no slices found" if content.get("table") == "slices" else "no spurious correlations found"
        return {"sort": sort, "empty": empty}, [frame_to_ipc(page)]

    def _msg_select_table_row(self, content, _buffers=()):
        self.selection_model.rows = table.rows_of_table_row(self._an, content.get("table", "slices"), int(content["key"]))

    def _msg_threshold(self, content, _buffers=()):
        column, value = content["column"], float(content["value"])
        if not hasattr(self._an, "set_threshold"):
            raise ValueError("Explorer: this analysis cannot change thresholds (no set_threshold)")
        self._an.set_threshold(column, value)

    def _msg_filters(self, content, _buffers=()):
        self.filters = {k: str(content.get(k, "") or "") for k in ("issue", "split", "label")}

    def _msg_review(self, content, buffers=()):
        """One review action. "all" acts on what the grid shows: the selection (narrowed by the
        filters) or, with no selection, the filtered samples. The browser says what it shows (its
        selection's bytes and the grid's version); if that is not what the kernel holds, nothing
        is changed and the user is told why."""
        action = content.get("action")
        scope = content.get("scope", "sample")
        if action == "undo":
            ids = []
        elif scope == "all":
            self._check_browser_matches(content, buffers)
            ids = review_panel.ids_of_rows(self._an, self._grid_rows)
        elif scope == "sample":
            ids = review_panel.ids_of_rows(self._an, content.get("rows", []))
        else:
            raise ValueError(f"Explorer: unknown review scope {scope!r}; expected 'sample' or 'all'")
        message = group_actions.apply_review(self._an, action, ids, content.get("label"),  # accept (key a),
                                             bool(content.get("with_duplicates")),  # duplicate groups,
                                             bulk=scope == "all")  # bulk accept/drop: the undecided ones
        history = self._an.review.history()
        return {"message": message, "count": int(len(history)), "n": len(ids)}

    def _msg_explain(self, content, _buffers=()):
        """The evidence panel of a clicked card: ``an.explain`` (dqwidgets.widgets.evidence)."""
        return evidence.evidence_message(self._an, int(content["row"]))

    def _msg_slice_review(self, content, _buffers=()):
        """Drop or relabel a whole slice from its row; refused unless the row shows the kernel's slice."""
        message, n = group_actions.slice_review(self._an, int(content["slice_id"]), content.get("action"),
                                                int(content.get("size", -1)), content.get("label"))
        return {"message": message, "count": int(len(self._an.review.history())), "n": n}

    def _check_browser_matches(self, content, buffers) -> None:
        """Refuse a bulk action unless the browser shows the selection and grid the kernel holds."""
        shown = content.get("shown") or {}
        if "selection_count" not in shown or "grid_version" not in shown:
            raise ValueError("Explorer: a bulk action must say what the browser shows; nothing was changed")
        n = self.selection_model.n
        theirs = decode_rows(str(shown.get("encoding", "indices")), buffers[0] if buffers else b"", n)
        ours = self.selection_model.rows
        if int(shown["selection_count"]) != theirs.size or not np.array_equal(theirs, ours):
            raise ValueError(f"Explorer: refused: the map shows {theirs.size:,} selected samples but the kernel "
                             f"holds {ours.size:,}; nothing was changed. Select again and repeat the action.")
        if int(shown["grid_version"]) != self._grid_version or int(shown.get("grid_total", -1)) != len(self._grid_rows):
            raise ValueError(f"Explorer: refused: the grid on screen is out of date (it shows "
                             f"{int(shown.get('grid_total', -1)):,} samples, the kernel {len(self._grid_rows):,}); "
                             "nothing was changed. Wait for the grid to refresh and repeat the action.")
        if not ours.size and self._visible is None:
            raise ValueError("Explorer: 'all' acts on the selection: select samples first (lasso, box or a "
                             "slice row), or narrow the grid with a filter; nothing was changed")


def _first_line(error: BaseException) -> str:
    """What the banner shows: the error's first line (ValueErrors here are written for the user)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, ValueError) and first:
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__

__all__ = ["Explorer", "Selection", "encode_rows"]
