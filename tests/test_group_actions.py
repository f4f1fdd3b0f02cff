"""One decision, many fixes: accept suggestions (key a), duplicate groups, whole slices; each one
journal row and one undo, delivered through the Explorer's comm as the browser sends them."""

import numpy as np
import pytest

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.widgets.explorer import Explorer
from test_widgets_explorer import Wire, browser_selects, recording_comms  # noqa: F401 (autouse fixture)

N = 240


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    images, y, classes = load_fashion_mnist("train", n=N, seed=1)
    feats = images.reshape(N, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(N, -1).astype(np.float32)
    labels = np.array([classes[i] for i in y], dtype=object)
    rng = np.random.default_rng(0)
    flip = rng.choice(N - 20, size=24, replace=False)
    labels[flip] = [next(c for c in classes if c != labels[i]) for i in flip]
    # samples 220..239 are near-copies of 0..19: twenty duplicate pairs
    feats[N - 20:] = feats[:20] * 1.0005
    labels[N - 20:] = labels[:20]
    ds = dq.Dataset.from_arrays(feats, labels=labels)
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("work"), layout="pca", progress=False)


def _labels(an):
    return an.review.labels()


def test_relabel_many_is_one_row_and_one_undo_restores_every_label():
    import tempfile

    ids = ["a", "b", "c"]
    with tempfile.TemporaryDirectory() as d, dq.review.Review(d, ids, ["x", "y", "x"], ["x", "y", "z"]) as r:
        r.relabel_many({"a": "z", "b": "x"})
        h = r.history()
        assert len(h) == 1 and h.iloc[0]["ids"] == ["a", "b"] and h.iloc[0]["new"] == ["z", "x"]
        assert r.labels().tolist() == ["z", "x", "x"]
        r.undo()
        assert r.labels().tolist() == ["x", "y", "x"]
        r.redo()
        assert r.labels().tolist() == ["z", "x", "x"]
        with pytest.raises(ValueError, match="not among the classes"):
            r.relabel_many({"c": "new"})
        with pytest.raises(ValueError, match="dict or a Series"):
            r.relabel_many([("c", "x")])
        assert len(r.history()) == 3  # refused calls wrote nothing
    with tempfile.TemporaryDirectory() as d:  # replayed from disk by a fresh session
        with dq.review.Review(d, ids, ["x", "y", "x"], ["x", "y"]) as r:
            r.relabel_many({"c": "y", "a": "y"})
        with dq.review.Review(d, ids, ["x", "y", "x"], ["x", "y"]) as again:
            assert again.labels().tolist() == ["y", "y", "y"] and again.can_undo


def test_key_a_on_a_selection_is_one_journal_row_with_each_samples_suggestion(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    rows = np.flatnonzero(s["is_label_issue"].to_numpy())[:12]
    assert len(rows) >= 4 and s["suggested_label"].iloc[rows].notna().all()
    # one of them was relabelled to its suggestion already: 'a' leaves it out and says so
    an.review.relabel([s.index[rows[0]]], s["suggested_label"].iloc[rows[0]])
    browser_selects(explorer.selection_model, "indices", rows.astype("<u4").tobytes(), rows.size)
    before = len(an.review.history())
    shown, bufs = wire.shown()
    reply = wire.ask("review", buffers=bufs, action="accept", scope="all", shown=shown)[0]
    history = an.review.history()
    assert len(history) == before + 1
    last = history.iloc[-1]
    changed = rows[1:]
    assert last["action"] == "relabel" and sorted(last["ids"]) == sorted(s.index[changed].tolist())
    assert last["new"] == [s.loc[i, "suggested_label"] for i in last["ids"]]
    assert (_labels(an).iloc[rows] == s["suggested_label"].iloc[rows].to_numpy()).all()
    assert reply["message"] == (f"accepted the suggested label for {len(changed)} samples; "
                                "1 you had already decided were left as they are")
    wire.ask("review", action="undo", scope="sample", rows=[])  # one undo restores them all
    assert (_labels(an).iloc[changed] == s["label"].iloc[changed].to_numpy()).all()
    an.review.undo()
    assert (_labels(an) == s["label"]).all()
    # a refused 'a': the browser shows another selection than the kernel holds
    other = rows[:-1].astype("<u4").tobytes()
    error = wire.ask("review", buffers=[other], expect_error=True, action="accept", scope="all",
                     shown={**shown, "selection_count": rows.size - 1})[0]["error"]
    assert "refused" in error and len(an.review.history()) == before + 3
    explorer.selection = None


def test_key_a_on_the_focused_card_and_samples_no_class_fits(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    row = int(np.flatnonzero(s["is_label_issue"].to_numpy())[0])
    before = len(an.review.history())
    reply = wire.ask("review", action="accept", scope="sample", rows=[row])[0]
    assert reply["message"] == f"accepted the suggested label for sample {s.index[row]}"
    assert _labels(an).iloc[row] == s["suggested_label"].iloc[row]
    wire.ask("review", action="undo", scope="sample", rows=[])
    # a sample no class fits (suggested None) is not relabelled by a, and the message says so
    foreign = s["suggested_label"].copy()
    foreign.iloc[row] = None
    an.samples["suggested_label"] = foreign.to_numpy()
    try:
        error = wire.ask("review", action="accept", scope="sample", rows=[row], expect_error=True)[0]["error"]
        assert "no class fits" in error and "not relabelled" in error
        other = int(np.flatnonzero(s["is_label_issue"].to_numpy())[1])
        msg = wire.ask("review", action="accept", scope="sample", rows=[row, other])[0]["message"]
        assert "1 not relabelled: no class fits them" in msg
        assert an.review.history().iloc[-1]["ids"] == [s.index[other]]
        wire.ask("review", action="undo", scope="sample", rows=[])
    finally:
        an.samples["suggested_label"] = s["suggested_label"].to_numpy()
    assert len(an.review.history()) == before + 4


def test_a_relabel_with_duplicates_reaches_the_whole_group_in_one_row(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    groups = s["duplicate_group"].to_numpy()
    row = int(np.flatnonzero(groups >= 0)[0])
    group = s.index[groups == groups[row]].tolist()
    assert len(group) >= 2
    target = next(c for c in an.classes if c != s["label"].iloc[row])
    before = len(an.review.history())
    reply = wire.ask("review", action="relabel", scope="sample", rows=[row], label=str(target),
                     with_duplicates=True)[0]
    last = an.review.history().iloc[-1]
    assert len(an.review.history()) == before + 1 and sorted(last["ids"]) == sorted(group)
    assert (_labels(an)[group] == target).all()
    assert f"and {len(group) - 1} duplicate(s) of them" in reply["message"]
    wire.ask("review", action="undo", scope="sample", rows=[])
    assert (_labels(an)[group] == s.loc[group, "label"]).all()
    # the same from Python
    an.review.drop([s.index[row]], with_duplicates=True)
    assert sorted(an.review.dropped()) == sorted(group)
    an.review.undo()
    assert len(an.review.dropped()) == 0


def test_a_whole_slice_is_dropped_or_relabelled_from_its_row_in_one_row(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    sid = int(an.slices.index[0])
    members = s.index[s["slice_id"].to_numpy() == sid].tolist()
    size = int(an.slices.loc[sid, "size"])
    before = len(an.review.history())
    reply = wire.ask("slice_review", slice_id=sid, action="drop", size=size)[0]
    assert reply["message"] == f"dropped the {len(members)} samples of slice {sid}"
    last = an.review.history().iloc[-1]
    assert last["action"] == "drop" and sorted(last["ids"]) == sorted(members)
    wire.ask("review", action="undo", scope="sample", rows=[])
    target = str(an.classes[1])
    wire.ask("slice_review", slice_id=sid, action="relabel", size=size, label=target)
    assert (_labels(an)[members] == an.classes[1]).all() and len(an.review.history()) == before + 3
    wire.ask("review", action="undo", scope="sample", rows=[])
    assert (_labels(an)[members] == s.loc[members, "label"]).all()
    # the row the browser shows is stale: refused, nothing written
    error = wire.ask("slice_review", expect_error=True, slice_id=sid, action="drop", size=size + 1)[0]["error"]
    assert "refused" in error and len(an.review.history()) == before + 4


def test_the_evidence_panel_message_carries_the_graphs_neighbours(an):
    wire = Wire(Explorer(an))
    row = 5
    body = wire.ask("explain", row=row)[0]
    ev = an.explain(an.samples.index[row])
    valid_pos = np.flatnonzero(an.valid)
    expected = valid_pos[an.graph.indices[np.searchsorted(valid_pos, row)]]
    assert body["neighbour_rows"] == expected.tolist()
    assert [n["id"] for n in body["neighbours"]] == [str(i) for i in an.samples.index[expected]]
    assert body["lines"] == [list(x) for x in ev.lines()] and body["modality"] == "embedding"
    assert len(body["neighbour_snippets"]) == len(expected)
    assert "row numbers must be in" in wire.ask("explain", row=10**6, expect_error=True)[0]["error"]


def test_key_a_with_duplicates_ticked_relabels_their_copies_in_the_same_row(an):
    """Issue #11 item 7: the 'with duplicates' box reaches 'a' too (the panel sends it with every
    action): the copies of the accepted samples get the accepted label, one journal row, one undo."""
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    groups = s["duplicate_group"].to_numpy()
    sugg = s["suggested_label"].to_numpy()
    label = s["label"].to_numpy()
    # one member of each of three duplicate groups, its copies left out of the selection
    heads = [int(np.flatnonzero(groups == g)[0]) for g in np.unique(groups[groups >= 0])]
    heads = [r for r in heads if sugg[r] is not None and sugg[r] == sugg[r] and sugg[r] != label[r]][:3]
    assert len(heads) == 3
    rows = np.array(sorted(heads))
    copies = np.flatnonzero(np.isin(groups, groups[rows]) & ~np.isin(np.arange(len(s)), rows))
    assert len(copies) >= 3
    browser_selects(explorer.selection_model, "indices", rows.astype("<u4").tobytes(), rows.size)
    before = len(an.review.history())
    shown, bufs = wire.shown()
    # the box unticked: only the selection changes (what 'a' did before, whatever the box said)
    wire.ask("review", buffers=bufs, action="accept", scope="all", shown=shown, with_duplicates=False)
    assert (_labels(an).iloc[copies] == label[copies]).all()
    wire.ask("review", action="undo", scope="sample", rows=[])
    shown, bufs = wire.shown()
    reply = wire.ask("review", buffers=bufs, action="accept", scope="all", shown=shown, with_duplicates=True)[0]
    history = an.review.history()
    assert len(history) == before + 3
    last = history.iloc[-1]
    assert sorted(last["ids"]) == sorted(s.index[np.r_[rows, copies]].tolist())
    expected = {int(g): sugg[r] for r, g in zip(rows, groups[rows])}
    got = _labels(an)
    assert all(got.iloc[c] == expected[int(groups[c])] for c in copies)
    assert (got.iloc[rows] == sugg[rows]).all()
    assert reply["message"] == f"accepted the suggested label for 3 samples and {len(copies)} duplicate(s) of them"
    wire.ask("review", action="undo", scope="sample", rows=[])  # one undo restores selection and copies
    assert (_labels(an) == s["label"]).all() and len(an.review.history()) == before + 4
    explorer.selection = None


def test_bulk_a_and_drop_on_the_filtered_grid_leave_out_what_was_decided_one_by_one(an):
    """The review order a reviewer follows: the grid filtered to the label issues, the odd ones out
    handled card by card (marked fine, relabelled by hand), then `a` with "apply to: all in the grid"
    accepts the suggestions of the rest; a bulk drop likewise leaves the decided cards alone."""
    explorer = Explorer(an)
    wire = Wire(explorer)
    s = an.samples
    wire.tell("filters", issue="label", split="", label="")
    flagged = np.flatnonzero(s["is_label_issue"].to_numpy())
    assert len(flagged) >= 6
    fine, typed = int(flagged[0]), int(flagged[1])
    other = next(c for c in an.classes if c not in (s["label"].iloc[typed], s["suggested_label"].iloc[typed]))
    before = len(an.review.history())
    wire.ask("review", action="mark_ok", scope="sample", rows=[fine])
    wire.ask("review", action="relabel", scope="sample", rows=[typed], label=str(other))
    shown, bufs = wire.shown()
    assert shown["selection_count"] == 0 and shown["grid_total"] == len(flagged)
    reply = wire.ask("review", buffers=bufs, action="accept", scope="all", shown=shown)[0]
    last = an.review.history().iloc[-1]
    rest = [i for i in s.index[flagged] if i not in (s.index[fine], s.index[typed])]
    assert sorted(last["ids"]) == sorted(rest)
    assert reply["message"].endswith("; 2 you had already decided were left as they are")
    got = _labels(an)
    assert got.iloc[typed] == other and got.iloc[fine] == s["label"].iloc[fine]  # the hand decisions stand
    assert (got[rest] == s.loc[rest, "suggested_label"]).all()
    wire.ask("review", action="undo", scope="sample", rows=[])
    shown, bufs = wire.shown()
    wire.ask("review", buffers=bufs, action="drop", scope="all", shown=shown)
    assert sorted(an.review.dropped()) == sorted(rest)  # the one marked fine and the one relabelled stay
    for _ in range(3):
        wire.ask("review", action="undo", scope="sample", rows=[])
    assert (_labels(an) == s["label"]).all() and len(an.review.dropped()) == 0
    assert len(an.review.history()) == before + 8
    wire.tell("filters", issue="", split="", label="")
