"""The Explorer above ``map_max_points``: the map draws a density-first sample plus every flagged
sample, while a lasso polygon resolves to the exact ids of every sample inside it in Python (the cap
is a parameter, so a few thousand points stand for millions)."""

import comm as comm_module
import numpy as np
import pytest
from comm.base_comm import BaseComm
from matplotlib.path import Path as MplPath

import dqwidgets as dq
from dqwidgets.widgets import map as map_columns
from dqwidgets.widgets.explorer import Explorer


class QuietComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        pass


@pytest.fixture(autouse=True)
def quiet_comms(monkeypatch):
    monkeypatch.setattr(comm_module, "create_comm", lambda *a, **kw: QuietComm(*a, **kw))


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    """A dense blob per class and 30 far samples around them, each out along its own class's direction (a
    sparse ring of real samples; far samples in random directions have labels the features do not
    predict, and are flagged as foreign: compute.foreign._flagged_tail)."""
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 3, n)
    X = (np.eye(3, 8)[y] * 6 + rng.normal(size=(n, 8))).astype(np.float32)
    X[:30] = np.eye(3, 8)[y[:30]] * rng.uniform(15, 40, (30, 1)) + rng.normal(size=(30, 8)) * 6
    given = y.copy()
    given[100:160] = (y[100:160] + 1) % 3  # 60 wrong labels inside the blobs: flagged samples the map must keep
    ds = dq.Dataset.from_arrays(X, np.array(["a", "b", "c"], dtype=object)[given])
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("w"), layout="pca", progress=False)


def positions(ex):
    xy, _ = ex._positions()
    return xy.reshape(-1, 2)


def test_small_maps_draw_every_point(an):
    ex = Explorer(an)
    assert np.array_equal(ex.map_rows, np.arange(len(an.samples)))


def test_sampled_map_keeps_every_flagged_sample_and_thins_dense_regions_only(an):
    cap = 800
    ex = Explorer(an, map_max_points=cap)
    rows = ex.map_rows
    flagged = np.flatnonzero(map_columns.flag_mask(an.samples))
    assert len(flagged) >= 50
    assert len(rows) <= max(cap, len(flagged)) and len(rows) >= 0.9 * cap
    assert np.isin(flagged, rows).all()
    assert len(np.unique(rows)) == len(rows)
    # density first: of the unflagged samples, those in sparse cells of the grid are all drawn, those
    # in the densest cells least often
    xy = positions(ex)
    bins = int(np.clip((cap / 4) ** 0.5, 16, 512))
    rest = ~map_columns.flag_mask(an.samples)
    cells = map_columns._grid_cells(xy[:, 0].astype(float), xy[:, 1].astype(float), bins)
    per_cell = np.bincount(cells[rest], minlength=bins * bins + 1)[cells]
    drawn = np.isin(np.arange(len(xy)), rows)
    sparse, dense = rest & (per_cell <= 3), rest & (per_cell >= 40)
    assert sparse.sum() >= 10 and drawn[sparse].all()
    assert drawn[dense].mean() < 0.5 < drawn[rest & (per_cell <= 20)].mean()


def test_lasso_resolves_to_the_exact_ids_of_all_samples_not_only_the_drawn_ones(an):
    ex = Explorer(an, map_max_points=500)
    xy = positions(ex)
    drawn = set(ex.map_rows.tolist())
    # a concave polygon (an L) over part of the map, in the map's [-1, 1] coordinates
    poly = [-0.9, -0.9, 0.2, -0.9, 0.2, -0.2, -0.3, -0.2, -0.3, 0.6, -0.9, 0.6]
    ids = ex.select_polygon(poly)
    truth = np.flatnonzero(MplPath(np.reshape(poly, (-1, 2))).contains_points(xy))
    assert len(truth) > 100 and len(set(truth.tolist()) - drawn) > 0  # undrawn samples inside
    assert list(ids) == list(an.samples.index[truth])
    assert ex.selection_model.count == len(truth)
    # merge and remove, as the browser's shift / alt lasso
    box = [0.0, 0.0, 0.9, 0.0, 0.9, 0.9, 0.0, 0.9]
    in_box = np.flatnonzero((xy[:, 0] > 0) & (xy[:, 0] < 0.9) & (xy[:, 1] > 0) & (xy[:, 1] < 0.9))
    ex.select_polygon(box, mode="merge")
    assert np.array_equal(ex.selection_model.rows, np.union1d(truth, in_box))
    ex.select_polygon(box, mode="remove")
    assert np.array_equal(ex.selection_model.rows, np.setdiff1d(truth, in_box))
    with pytest.raises(ValueError, match="mode must be"):
        ex.select_polygon(box, mode="xor")


def test_lasso_message_from_the_browser_selects_over_every_sample(an):
    ex = Explorer(an, map_max_points=500)
    poly = [-1, -1, 1, -1, 1, 1, -1, 1]
    reply = ex._msg_lasso({"polygon": poly, "mode": "replace"})
    assert reply["count"] == len(an.samples) == ex.selection_model.count


def test_rows_in_polygon_in_blocks_equals_matplotlib():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, 50_000), rng.uniform(-1, 1, 50_000)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radius = rng.uniform(0.3, 0.9, 12)
    poly = np.c_[radius * np.cos(angles), radius * np.sin(angles)]
    got = map_columns.rows_in_polygon(x, y, poly.ravel(), block=7_000)
    truth = np.flatnonzero(MplPath(poly).contains_points(np.c_[x, y]))
    assert np.array_equal(got, truth)


def _recorder(ex):
    """What the Explorer sends to the browser, as (content, buffers) in order."""
    sent = []
    ex.send = lambda content, buffers=None: sent.append((content, [bytes(b) for b in (buffers or [])]))
    return sent


def _ask(ex, sent, **content):
    """One request from the browser through the widget's message handler; the kernel's answer."""
    ex._on_message(ex, content, [])
    return next((c, b) for c, b in reversed(sent) if c.get("req") == content["req"])


def test_the_browser_draws_the_sampled_rows_and_its_lasso_resolves_to_every_sample_inside(an):
    """The messages the map sends and gets (js/map/view.ts, js/map/sampled.ts): above the cap the
    kernel sends the drawn rows' positions, colours and flags and which rows they are; the browser's
    lasso (a polygon in map coordinates) comes back as the exact ids of every sample inside it."""
    ex = Explorer(an, map_max_points=500)
    sent = _recorder(ex)
    n = len(an.samples)
    content, bufs = _ask(ex, sent, kind="map", req=1, positions=True, color_by="issue")
    assert content["sampled"] and content["n"] == n and "draws" in content["notice"]
    rows = np.frombuffer(bufs[3], "<u4").astype(np.int64)
    assert np.array_equal(rows, ex.map_rows) and content["drawn"] == len(rows) < n
    full = positions(ex)
    assert np.array_equal(np.frombuffer(bufs[0], np.float32).reshape(-1, 2), full[rows])
    assert np.array_equal(np.frombuffer(bufs[2], np.uint8), map_columns.flag_mask(an.samples)[rows])
    assert len(bufs[1]) == len(rows)
    # recolouring sends the drawn rows' colour codes only
    _, bufs = _ask(ex, sent, kind="map", req=2, positions=False, color_by="label")
    label_codes = map_columns.colour_column(an.samples, "label", ex._labels(), None).codes
    assert np.array_equal(np.frombuffer(bufs[0], np.uint8), label_codes[rows])

    poly = [-0.8, -0.7, 0.3, -0.9, 0.5, 0.1, -0.1, 0.0, -0.2, 0.7, -0.9, 0.4]
    content, _ = _ask(ex, sent, kind="lasso", req=3, polygon=poly, mode="replace")
    truth = np.flatnonzero(MplPath(np.reshape(poly, (-1, 2))).contains_points(full))
    assert len(set(truth.tolist()) - set(rows.tolist())) > 20  # undrawn samples inside the polygon
    assert content["count"] == len(truth) and "error" not in content
    assert list(ex.selection) == list(an.samples.index[truth])
    # the Selection model's bytes, which the browser decodes, hold the undrawn rows too
    from dqwidgets.widgets.selection import decode_rows

    sel = ex.selection_model
    assert np.array_equal(decode_rows(sel.encoding, sel.data, n), truth)
    # an Alt-lasso (remove) over part of it
    box = [-1, -1, 0, -1, 0, 0, -1, 0]
    _ask(ex, sent, kind="lasso", req=4, polygon=box, mode="remove")
    in_box = np.flatnonzero(MplPath(np.reshape(box, (-1, 2))).contains_points(full))
    assert np.array_equal(ex.selection_model.rows, np.setdiff1d(truth, in_box))


def test_new_flags_or_a_new_layout_make_a_sampled_map_reload(an):
    ex = Explorer(an, map_max_points=500)
    sent = _recorder(ex)
    _ask(ex, sent, kind="map", req=1, positions=True, color_by="issue")
    ex._analysis_event("flags")
    flags = next(c for c, _ in reversed(sent) if c.get("kind") == "flags")
    assert flags["map_reload"] is True  # every flagged sample must be drawn: the drawn rows change
    ex._analysis_event("layout")
    moved = next(c for c, _ in reversed(sent) if c.get("kind") == "positions")
    assert moved["reload"] is True
    small = Explorer(an)  # below the cap nothing changes: every row, no row list
    sent = _recorder(small)
    content, bufs = _ask(small, sent, kind="map", req=1, positions=True, color_by="issue")
    assert "sampled" not in content and len(bufs) == 3 and len(bufs[0]) == 8 * len(an.samples)
    small._analysis_event("flags")
    assert next(c for c, _ in reversed(sent) if c.get("kind") == "flags")["map_reload"] is False
