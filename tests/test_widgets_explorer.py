"""The Explorer's kernel side, driven through its comms the way ipykernel drives it (no browser).

Every message goes through ``comm.handle_msg`` with its binary buffers as ``memoryview`` objects,
which is what ipykernel hands a widget; what the Explorer sends comes back from the comm's
``publish_msg``, after ipywidgets has split the binary values out into buffers. Nothing patches
``send`` or calls a private handler.
"""

import comm as comm_module
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from comm.base_comm import BaseComm

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.widgets.explorer import Explorer
from dqwidgets.widgets.selection import Selection

N = 240


class RecordingComm(BaseComm):
    """A kernel comm that keeps every message the widget publishes (type, data, buffers as bytes)."""

    def __init__(self, *args, **kwargs):
        self.published: list[tuple[str, dict, list[bytes]]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        self.published.append((msg_type, data or {}, [bytes(b) for b in buffers or []]))


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch):
    """Widgets created in these tests get a RecordingComm (comm.create_comm is the documented hook)."""
    monkeypatch.setattr(comm_module, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))


def _pooled_pixels(n):
    images, y, classes = load_fashion_mnist("train", n=n, seed=1)
    feats = images.reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, -1).astype(np.float32)
    return feats, np.array([classes[i] for i in y], dtype=object)


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    feats, labels = _pooled_pixels(N)
    ds = dq.Dataset.from_arrays(feats, labels=labels, split=np.where(np.arange(N) % 4 == 0, "test", "train"))
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("work"), layout="pca", progress=False)


def deliver(comm, data: dict, buffers=()) -> None:
    """A comm_msg as ipykernel delivers it: JSON data, binary buffers as memoryview."""
    comm.handle_msg({"content": {"comm_id": comm.comm_id, "data": data},
                     "buffers": [memoryview(bytes(b)) for b in buffers]})


def browser_selects(selection: Selection, encoding: str, data: bytes, count: int) -> None:
    """The browser's Selection model saving a new selection (state update, `data` as a buffer)."""
    deliver(selection.comm, {"method": "update", "state": {"encoding": encoding, "count": count},
                             "buffer_paths": [["data"]]}, [data])


def sent_selection(selection: Selection) -> tuple[str, bytes]:
    """The last selection the kernel sent to the browser, re-assembled from its update messages."""
    state = {}
    for msg_type, data, buffers in selection.comm.published:
        if msg_type == "comm_open" or (msg_type == "comm_msg" and data.get("method") == "update"):
            state.update(data["state"])
            for path, buf in zip(data.get("buffer_paths", []), buffers):
                state[path[0]] = buf
    return state["encoding"], state["data"]


def js_decode(encoding: str, data: bytes, n: int) -> list[int]:
    """What js/selection/encoding.ts decodeSelection makes of the bytes (written out independently)."""
    if encoding == "indices":
        return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    return [8 * b + bit for b, v in enumerate(data) for bit in range(8) if v >> bit & 1 and 8 * b + bit < n]


class Wire:
    """The Explorer's front end as the kernel sees it: custom messages in, custom messages out."""

    def __init__(self, explorer: Explorer):
        self.explorer, self.comm, self.req = explorer, explorer.comm, 0

    def _custom(self):
        return [(d["content"], bufs) for t, d, bufs in self.comm.published
                if t == "comm_msg" and d.get("method") == "custom"]

    def ask(self, kind, buffers=(), expect_error=False, **body):
        self.req += 1
        deliver(self.comm, {"method": "custom", "content": {"kind": kind, "req": self.req, **body}}, buffers)
        reply = [m for m in self._custom() if m[0].get("req") == self.req]
        assert len(reply) == 1, f"expected one reply to {kind}, got {reply}"
        if expect_error:
            assert "error" in reply[0][0], reply[0][0]
        else:
            assert "error" not in reply[0][0], reply[0][0]["error"]
        return reply[0]

    def tell(self, kind, buffers=(), **body):
        deliver(self.comm, {"method": "custom", "content": {"kind": kind, **body}}, buffers)

    def pushed(self, kind):
        return [m for m in self._custom() if m[0].get("kind") == kind and "req" not in m[0]]

    def shown(self):
        """What the browser sends with a bulk action: its selection's bytes and the grid it shows."""
        sel = self.explorer.selection_model
        reset = self.pushed("grid_reset")[-1][0] if self.pushed("grid_reset") else \
            self.ask("init")[0]["grid"]
        return ({"encoding": sel.encoding, "selection_count": sel.count, "grid_version": reset["version"],
                 "grid_total": reset["total"]}, [sel.data])


def flag_bits(samples):
    return samples[["is_label_issue", "is_ood", "is_duplicate", "is_invalid"]].any(axis=1).to_numpy()


def test_the_explorer_is_registered_on_its_comm_and_answers_through_it(an):
    explorer = Explorer(an)
    assert isinstance(explorer.comm, RecordingComm) and explorer.comm._msg_callback is not None
    init = Wire(explorer).ask("init")[0]
    assert init["n"] == N and init["classes"] == [str(c) for c in an.classes]


def test_map_sends_positions_once_as_float32_and_colours_as_one_byte(an):
    wire = Wire(Explorer(an))
    content, buffers = wire.ask("map", color_by="issue", positions=True)
    assert [len(b) for b in buffers] == [8 * N, N, N]
    xy = np.frombuffer(buffers[0], dtype=np.float32).reshape(-1, 2)
    from dqwidgets.widgets.map import normalised_positions
    expected, _ = normalised_positions(an.samples["x"].to_numpy(), an.samples["y"].to_numpy())
    np.testing.assert_array_equal(xy.reshape(-1), expected)
    assert np.frombuffer(buffers[2], np.uint8).tolist() == flag_bits(an.samples).astype(int).tolist()
    content, buffers = wire.ask("map", color_by="label_issue_score", positions=False)
    assert content["colour"]["continuous"] and [len(b) for b in buffers] == [N]
    top = int(np.argmax(an.samples["label_issue_score"].to_numpy()))
    assert buffers[0][top] == max(buffers[0])


@pytest.mark.parametrize("encoding", ["indices", "bitmask"])
def test_a_selection_from_the_browser_arrives_as_memoryview_and_drives_the_grid(an, encoding):
    """The JupyterLab defect: ipykernel delivers the selection's bytes as memoryview."""
    explorer = Explorer(an)
    wire = Wire(explorer)
    rows = np.array([1, 5, 9, 200])
    data = rows.astype("<u4").tobytes() if encoding == "indices" else \
        np.packbits(np.isin(np.arange(N), rows), bitorder="little").tobytes()
    browser_selects(explorer.selection_model, encoding, data, len(rows))
    assert list(explorer.selection) == an.samples.index[rows].tolist()
    reset, pushed_page = wire.pushed("grid_reset")[-1]
    assert reset["total"] == 4 and reset["title"] == "4 selected samples"
    assert wire.pushed("counts")[-1][0]["counts_text"].endswith("4 selected")
    _, buffers = wire.ask("grid", offset=0, limit=50)
    page = pa.ipc.open_stream(buffers[0]).read_all().to_pandas()
    by_score = an.samples.iloc[rows].sort_values("label_issue_score", ascending=False, kind="stable")
    assert page["id"].tolist() == [str(i) for i in by_score.index]
    # the reset carried the same first page, so the browser drew it without asking
    assert reset["first_page"] == 120
    assert pa.ipc.open_stream(pushed_page[0]).read_all().to_pandas()["id"].tolist() == page["id"].tolist()
    assert not wire.pushed("error")


@pytest.mark.parametrize("selected", [1, 100_000, 1_000_000])
def test_selections_travel_both_ways_at_1_100k_and_1m(selected):
    n = 1_000_000
    rng = np.random.default_rng(selected)
    rows = np.sort(rng.choice(n, size=selected, replace=False))
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    # browser -> kernel, in both encodings (the browser picks the smaller; both must arrive)
    for encoding, data in (("indices", rows.astype("<u4").tobytes()),
                           ("bitmask", np.packbits(mask, bitorder="little").tobytes())):
        sel = Selection(n=n)
        browser_selects(sel, encoding, data, selected)
        np.testing.assert_array_equal(sel.rows, rows)
        assert sel.count == selected
    # kernel -> browser: the bytes ipywidgets sends decode (as the front end decodes them) to the rows
    sel = Selection(n=n)
    sel.rows = rows
    encoding, data = sent_selection(sel)
    assert encoding == ("indices" if selected * 4 <= n // 8 else "bitmask")
    if selected <= 100_000:
        assert js_decode(encoding, data, n) == rows.tolist()
    else:  # the pure-Python decoder is slow at 1M: check the bits directly
        assert np.array_equal(np.flatnonzero(np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[:n]), rows)


def test_python_selection_is_sent_to_the_browser_and_drives_the_grid(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    ids = an.samples.index[[5, 1, 9]]
    explorer.selection = ids
    assert list(explorer.selection) == sorted(ids)
    encoding, data = sent_selection(explorer.selection_model)
    assert js_decode(encoding, data, N) == [1, 5, 9]
    reset = wire.pushed("grid_reset")[-1][0]
    assert reset["total"] == 3 and reset["title"] == "3 selected samples"
    with pytest.raises(ValueError, match="not in an.samples"):
        explorer.selection = [10**9]
    explorer.selection = None
    assert len(explorer.selection) == 0 and js_decode(*sent_selection(explorer.selection_model), N) == []


def test_bulk_review_acts_on_exactly_the_selection_the_browser_shows(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    rows = np.arange(10, 110)  # 100 lassoed points
    browser_selects(explorer.selection_model, "indices", rows.astype("<u4").tobytes(), rows.size)
    before = len(an.review.history())
    shown, bufs = wire.shown()
    reply = wire.ask("review", buffers=bufs, action="mark_ok", scope="all", shown=shown)[0]
    history = an.review.history()
    assert len(history) == before + 1 and reply["count"] == before + 1 and reply["n"] == 100
    last = history.iloc[-1]
    assert last["action"] == "mark_ok" and sorted(last["ids"]) == an.samples.index[rows].tolist()
    assert reply["message"] == "marked 100 samples as fine"
    wire.ask("review", action="undo", scope="sample", rows=[])
    assert len(an.review.marked_ok()) == 0


def test_bulk_review_is_refused_when_browser_and_kernel_disagree(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    rows = np.arange(10, 110)
    browser_selects(explorer.selection_model, "indices", rows.astype("<u4").tobytes(), rows.size)
    before = len(an.review.history())
    shown, _ = wire.shown()
    # the browser's selection differs by one sample from the kernel's
    other = np.arange(10, 111).astype("<u4").tobytes()
    error = wire.ask("review", buffers=[other], expect_error=True, action="drop", scope="all",
                     shown={**shown, "selection_count": 101})[0]["error"]
    assert "refused" in error and "101" in error and "100" in error
    # the grid the browser shows is out of date
    error = wire.ask("review", buffers=[explorer.selection_model.data], expect_error=True, action="drop",
                     scope="all", shown={**shown, "grid_version": shown["grid_version"] - 1})[0]["error"]
    assert "refused" in error and "out of date" in error
    # no selection and no filter: "all" would mean every sample, so it is refused
    explorer.selection = None
    shown, bufs = wire.shown()
    error = wire.ask("review", buffers=bufs, expect_error=True, action="drop", scope="all", shown=shown)[0]["error"]
    assert "select samples first" in error
    # a bulk action that does not say what the browser shows is refused too
    error = wire.ask("review", expect_error=True, action="drop", scope="all")[0]["error"]
    assert "nothing was changed" in error
    assert len(an.review.history()) == before


def test_review_messages_reach_the_journal_and_update_views(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    before = len(an.review.history())
    target = an.samples.index[0]
    new = next(c for c in an.classes if c != an.review.labels()[target])
    reply = wire.ask("review", action="relabel", rows=[0], label=str(new), scope="sample")[0]
    history = an.review.history()
    assert len(history) == before + 1 and an.review.labels()[target] == new
    assert history.iloc[-1]["ids"] == [target]
    assert reply["message"] == f"relabelled sample {target} to {new}"
    flags_content, flags_buffers = wire.pushed("flags")[-1]
    assert np.frombuffer(flags_buffers[0], np.uint8).tolist() == flag_bits(an.samples).astype(int).tolist()
    assert flags_content["counts_text"] == explorer.counts_text()
    assert wire.pushed("recolour")
    wire.ask("review", action="undo", scope="sample", rows=[])
    assert an.review.labels()[target] == an.samples.loc[target, "label"]
    error = wire.ask("review", action="relabel", rows=[0], label="not-a-class", scope="sample",
                     expect_error=True)[0]["error"]
    assert "not one of the classes" in error


def test_a_kernel_error_while_handling_a_message_reaches_the_browser(an, monkeypatch):
    explorer = Explorer(an)
    wire = Wire(explorer)

    def broken(*args, **kwargs):
        raise RuntimeError("the journal is on a read-only disk\nsecond line")

    monkeypatch.setattr(an, "set_threshold", broken)
    wire.tell("threshold", column="ood_score", value=0.9)
    error = wire.pushed("error")[-1][0]
    assert error["message"] == "RuntimeError: the journal is on a read-only disk"
    assert "Traceback" in error["detail"] and "second line" in error["detail"]
    # a failure inside the Selection's own comm (an observer raising) is shown too, not only logged
    def grid_broken(*args, **kwargs):
        raise KeyError("grid column gone")

    monkeypatch.setattr(explorer, "_push_grid", grid_broken)
    errors = len(wire.pushed("error"))
    browser_selects(explorer.selection_model, "indices", np.array([3], "<u4").tobytes(), 1)
    assert [e[0]["message"] for e in wire.pushed("error")[errors:]] == ["KeyError: 'grid column gone'"]
    # a state update the Explorer itself cannot take (a wrong trait value) is shown as well
    deliver(explorer.comm, {"method": "update", "state": {"map_renderer": "gpu"}})
    assert wire.pushed("error")[-1][0]["message"].startswith("TraitError: The 'map_renderer' trait")
    # an unknown message is an error the browser hears about
    wire.tell("no_such_kind")
    assert wire.pushed("error")[-1][0]["message"] == "Explorer: unknown message 'no_such_kind'"


def test_a_selection_the_kernel_cannot_take_is_shown_not_only_logged(an):
    """What a plain traitlets.Bytes did with ipykernel's memoryview: the banner must say so."""
    explorer = Explorer(an)
    wire = Wire(explorer)
    deliver(explorer.selection_model.comm, {"method": "update", "state": {"count": "many"}})
    assert wire.pushed("error")[-1][0]["message"].startswith("TraitError: The 'count' trait of a Selection")
    assert len(explorer.selection) == 0


def test_threshold_message_reflags_and_pushes_counts(an):
    wire = Wire(Explorer(an))
    old = an.thresholds["ood_score"]
    wire.tell("threshold", column="ood_score", value=0.9)
    try:
        assert an.thresholds["ood_score"] == 0.9
        flags = wire.pushed("flags")[-1]
        hist = next(h for h in flags[0]["histograms"] if h["column"] == "ood_score")
        assert hist["flagged"] == int((an.samples["ood_score"] >= 0.9).sum())
        assert np.frombuffer(flags[1][0], np.uint8).tolist() == flag_bits(an.samples).astype(int).tolist()
    finally:
        an.set_threshold("ood_score", old)


def test_filters_narrow_grid_and_map(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    wire.tell("filters", issue="label", split="test", label="")
    keep = (an.samples["is_label_issue"] & (an.samples["split"] == "test")).to_numpy()
    assert wire.pushed("grid_reset")[-1][0]["total"] == int(keep.sum())
    mask = np.unpackbits(np.frombuffer(wire.pushed("visible")[-1][1][0], np.uint8), bitorder="little")[:N]
    assert mask.astype(bool).tolist() == keep.tolist()


def test_saved_state_holds_no_data_columns(an):
    """Notebook growth per Explorer: the saved widget state is the bundle plus a few traits."""
    explorer = Explorer(an)
    state = explorer.get_state()
    size = sum(len(v) if isinstance(v, (str, bytes)) else len(str(v)) for v in state.values())
    assert size < 1_000_000
    assert size - len(state["_esm"]) < 2_000


def test_unlabelled_data_without_layout_still_opens_and_says_why(tmp_path):
    feats, _ = _pooled_pixels(80)
    an = dq.analyze(dq.Dataset.from_arrays(feats), workdir=tmp_path, layout="pca", progress=False)
    an.samples["x"], an.samples["y"] = np.nan, np.nan
    wire = Wire(Explorer(an))
    init = wire.ask("init")[0]
    assert any("unlabelled" in n for n in init["notices"]) and any("no layout" in n for n in init["notices"])
    assert not init["can_relabel"] and "label" not in init["color_options"]
    content, buffers = wire.ask("map", color_by="issue", positions=True)
    assert "no layout" in content["notice"] and not np.frombuffer(buffers[0], np.float32).any()


def test_bad_input_is_a_clear_error(an):
    with pytest.raises(ValueError, match="Analysis that dq.analyze returns"):
        Explorer(pd.DataFrame())
    with pytest.raises(ValueError, match="map_renderer must be one of"):
        Explorer(an, map_renderer="gpu")
    assert Explorer(an, map_renderer="cpu").map_renderer == "cpu"
    with pytest.raises(ValueError, match="cannot colour by 'nope'"):
        Explorer(an, color_by="nope")


def test_unreadable_images_become_placeholders_with_the_reason(tmp_path):
    from PIL import Image

    from dqwidgets.widgets import grid

    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"path": [str(tmp_path / "good.png"), str(tmp_path / "broken.png")],
                                                 "label": ["a", "b"]}), image="path", label="label")
    blobs, errors = grid.thumbnails(ds, list(ds.ids), 64)
    assert blobs[0] is not None and grid.image_mime(blobs[0]).startswith("image/")
    assert blobs[1] is None and "broken.png" in errors[1] and "not an image" in errors[1], errors[1]


def test_labels_the_features_do_not_predict_open_with_a_notice_and_no_label_flags(tmp_path):
    feats, labels = _pooled_pixels(120)
    shuffled = feats[np.random.default_rng(0).permutation(len(feats))]  # rows in another order than the labels
    with pytest.warns(UserWarning, match="do not predict the labels"):
        an = dq.analyze(dq.Dataset.from_arrays(shuffled, labels), workdir=tmp_path, layout="pca", progress=False)
    wire = Wire(Explorer(an))
    init = wire.ask("init")[0]
    assert any("labels not scored" in n for n in init["notices"])
    assert init["can_relabel"]  # the reviewer can still relabel by hand
    assert not an.samples["is_label_issue"].any()
    content, _ = wire.ask("map", color_by="issue", positions=True)
    assert "error" not in content
    assert len(an.review_queue()) == int(an.samples["is_ood"].sum())  # no label card is queued


def test_a_grid_push_with_the_same_cards_keeps_the_cursor_and_a_new_one_resets_it(an):
    """The same selection arriving again in another encoding (a lasso's bitmask, then its indices) must
    not move the grid's cursor back to the first card under a reviewer who has just clicked one; a
    selection that changes the cards does reset it."""
    explorer = Explorer(an)
    wire = Wire(explorer)
    rows = np.arange(0, N, 3)
    mask = np.zeros(N, dtype=bool)
    mask[rows] = True
    browser_selects(explorer.selection_model, "bitmask", np.packbits(mask, bitorder="little").tobytes(), rows.size)
    first = wire.pushed("grid_reset")[-1][0]
    assert first["total"] == rows.size and first["keep_scroll"] is False
    browser_selects(explorer.selection_model, "indices", rows.astype("<u4").tobytes(), rows.size)
    again = wire.pushed("grid_reset")[-1][0]
    assert again["version"] > first["version"] and again["keep_scroll"] is True
    browser_selects(explorer.selection_model, "indices", rows[1:].astype("<u4").tobytes(), rows.size - 1)
    changed = wire.pushed("grid_reset")[-1][0]
    assert changed["total"] == rows.size - 1 and changed["keep_scroll"] is False
