"""The Explorer's kernel side, driven with the messages its front end sends (no browser)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.widgets.explorer import Explorer

N = 240


def _pooled_pixels(n):
    images, y, classes = load_fashion_mnist("train", n=n, seed=1)
    feats = images.reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, -1).astype(np.float32)
    return feats, np.array([classes[i] for i in y], dtype=object)


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    feats, labels = _pooled_pixels(N)
    ds = dq.Dataset.from_arrays(feats, labels=labels, split=np.where(np.arange(N) % 4 == 0, "test", "train"))
    return dq.analyze(ds, workdir=tmp_path_factory.mktemp("work"), layout="pca", progress=False)


class Wire:
    """Records what the Explorer sends to the browser and answers requests like the front end does."""

    def __init__(self, explorer):
        self.explorer, self.sent = explorer, []
        explorer.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))
        self.req = 0

    def ask(self, kind, **body):
        self.req += 1
        self.explorer._on_message(self.explorer, {"kind": kind, "req": self.req, **body}, [])
        reply = [m for m in self.sent if m[0].get("req") == self.req]
        assert reply, f"no reply to {kind}"
        assert "error" not in reply[-1][0], reply[-1][0]["error"]
        return reply[-1]

    def tell(self, kind, **body):
        self.explorer._on_message(self.explorer, {"kind": kind, **body}, [])

    def pushed(self, kind):
        return [m for m in self.sent if m[0].get("kind") == kind and "req" not in m[0]]


def test_map_sends_positions_once_as_float32_and_colours_as_one_byte(an):
    wire = Wire(Explorer(an))
    content, buffers = wire.ask("map", color_by="issue", positions=True)
    assert [len(b) for b in buffers] == [8 * N, N, N]
    xy = np.frombuffer(buffers[0], dtype=np.float32)
    assert np.isfinite(xy).all() and np.abs(xy).max() <= 0.951
    content, buffers = wire.ask("map", color_by="label_issue_score", positions=False)
    assert content["colour"]["continuous"] and [len(b) for b in buffers] == [N]
    top = int(np.argmax(an.samples["label_issue_score"].to_numpy()))
    assert buffers[0][top] == max(buffers[0])


def test_selection_is_ids_both_ways_and_drives_the_grid(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    ids = an.samples.index[[5, 1, 9]]
    explorer.selection = ids
    assert list(explorer.selection) == sorted(ids)
    reset = wire.pushed("grid_reset")[-1][0]
    assert reset["total"] == 3 and "selected" in reset["title"]
    _, buffers = wire.ask("grid", offset=0, limit=50)
    page = pa.ipc.open_stream(buffers[0]).read_all().to_pandas()
    assert sorted(page["id"]) == sorted(map(str, ids))
    scores = page["label_issue_score"].to_numpy()
    assert (np.diff(scores) <= 0).all()  # worst first
    with pytest.raises(ValueError, match="not in an.samples"):
        explorer.selection = [10**9]
    explorer.selection = None
    assert len(explorer.selection) == 0


def test_review_messages_reach_the_journal_and_update_views(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    before = len(an.review.history())
    target = an.samples.index[0]
    new = next(c for c in an.classes if c != an.review.labels()[target])
    wire.tell("review", action="relabel", rows=[0], label=str(new), scope="sample")
    assert len(an.review.history()) == before + 1 and an.review.labels()[target] == new
    assert wire.pushed("review_done")[-1][0]["message"].startswith("relabelled sample")
    assert wire.pushed("flags") and wire.pushed("recolour")  # the map and counts follow the journal
    wire.tell("review", action="undo", scope="sample", rows=[])
    assert an.review.labels()[target] == an.samples.loc[target, "label"]
    wire.tell("review", action="relabel", rows=[0], label="not-a-class", scope="sample")
    assert "not one of the classes" in wire.pushed("error")[-1][0]["message"]


def test_threshold_message_reflags_and_pushes_counts(an):
    wire = Wire(Explorer(an))
    old = an.thresholds["ood_score"]
    wire.tell("threshold", column="ood_score", value=0.9)
    try:
        assert an.thresholds["ood_score"] == 0.9
        flags = wire.pushed("flags")[-1]
        hist = next(h for h in flags[0]["histograms"] if h["column"] == "ood_score")
        assert hist["flagged"] == int((an.samples["ood_score"] >= 0.9).sum())
        assert np.frombuffer(flags[1][0], np.uint8).sum() == int(
            an.samples[["is_label_issue", "is_ood", "is_duplicate", "is_invalid"]].any(axis=1).sum())
    finally:
        an.set_threshold("ood_score", old)


def test_filters_narrow_grid_and_map(an):
    explorer = Explorer(an)
    wire = Wire(explorer)
    wire.tell("filters", issue="label", split="test", label="")
    expected = int((an.samples["is_label_issue"] & (an.samples["split"] == "test")).sum())
    assert wire.pushed("grid_reset")[-1][0]["total"] == expected
    mask = np.unpackbits(np.frombuffer(wire.pushed("visible")[-1][1][0], np.uint8), bitorder="little")[:N]
    assert mask.sum() == expected


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
    assert blobs[1] is None and errors[1]
