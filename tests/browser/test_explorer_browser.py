"""End to end: the Explorer in real chromium (pytest-ipywidgets / solara), driven with the mouse and
keyboard, asserting on Python state. Waits on data-ready attributes, never on sleeps.

The expected selections come from an.samples' x and y and the map's camera (map_geometry.py), not
from the page. The real-Jupyter tests (test_jupyterlab.py) are the ones that decide: this harness
hands the kernel ``bytes`` where ipykernel hands it ``memoryview``.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from IPython.display import display

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from map_geometry import assert_selection_is_polygon, box_drag, drag, lonely_point, polygon_at, screen_positions

EVIL = "<img src=x onerror=alert(1)>"
N = 300


def _screenshot(tmp_path, name: str) -> Path:
    """$DQ_SCREENSHOT_DIR (docs, when refreshing the README's pictures on purpose), else tmp_path."""
    folder = Path(os.environ.get("DQ_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@pytest.fixture(scope="module")
def an(tmp_path_factory):
    images, y, classes = load_fashion_mnist("train", n=N, seed=0)
    rng = np.random.default_rng(0)
    labels = np.array([classes[i] for i in y], dtype=object)
    flip = rng.choice(N, size=N // 10, replace=False)  # plant 10% wrong labels so there is something to find
    labels[flip] = rng.choice(classes, size=flip.size)
    df = pd.DataFrame({"image": list(images), "label": labels,
                       "split": np.where(np.arange(N) % 5 == 0, "test", "train")})
    ds = dq.Dataset.from_dataframe(df, image="image", label="label", split="split")
    # a small real embedder (8x8 average-pooled pixels) keeps the suite fast; the Explorer does not care
    pooled_pixels = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten())
    return dq.analyze(ds, embedder=pooled_pixels, workdir=tmp_path_factory.mktemp("work"), layout="pca",
                      progress=False)


def _show(page, an, **kw):
    explorer = dq.Explorer(an, **kw)
    display(explorer)
    page.locator(".dqx[data-ready=true]").wait_for()
    page.locator(".dqx-map[data-ready=true]").wait_for()
    page.locator(".dqx-grid[data-ready=true]").wait_for()
    return explorer


def _positions(page, an):
    return screen_positions(page, an.samples["x"].to_numpy(), an.samples["y"].to_numpy())


def test_lasso_gives_python_selection_and_fills_grid(solara_test, page_session, an, tmp_path):
    page = page_session
    explorer = _show(page, an)
    assert page.locator(".dqx-map").get_attribute("data-selected") in (None, "0")
    px, box = _positions(page, an)
    polygon = polygon_at(box, [(0.2, 0.2), (0.8, 0.25), (0.75, 0.8), (0.3, 0.7)])
    drag(page, polygon, shift=True)
    page.locator(".dqx-grid-header", has_text="selected samples").wait_for()
    page.locator(".dqx-grid[data-ready=true]").wait_for()
    selected = explorer.selection
    assert_selection_is_polygon(px, an.samples.index, polygon, selected)
    assert int(page.locator(".dqx-grid").get_attribute("data-count")) == len(selected)
    cell_ids = page.locator(".dqx-cell").evaluate_all("cs => cs.map(c => c.dataset.id)")
    assert cell_ids and set(cell_ids) <= set(map(str, selected))
    # thumbnails arrived as image bytes for the visible cells
    assert page.locator(".dqx-cell img.dqx-thumb").count() > 0
    page.locator(".dqx").screenshot(path=str(_screenshot(tmp_path, "explorer.png")))


def test_box_select_picks_the_samples_inside_the_rectangle(solara_test, page_session, an):
    page = page_session
    explorer = _show(page, an)
    px, box = _positions(page, an)
    rect = polygon_at(box, [(0.25, 0.3), (0.75, 0.3), (0.75, 0.8), (0.25, 0.8)])
    drag(page, rect, shift=True)                                       # a rectangular lasso
    page.locator(".dqx-grid-header", has_text="selected samples").wait_for()
    by_lasso = set(explorer.selection)
    assert_selection_is_polygon(px, an.samples.index, rect, by_lasso)
    page.mouse.click(box["x"] + 3, box["y"] + 3)                      # clear
    page.locator(".dqx-map[data-selected='0']").wait_for()
    page.locator(".dqx-tool[data-tool=box]").click()
    assert page.locator(".dqx-tool[data-tool=box]").get_attribute("aria-pressed") == "true"
    box_drag(page, rect)                                               # the box tool: a plain drag
    page.locator(f".dqx-map[data-selected='{len(by_lasso)}']").wait_for()
    page.locator(".dqx-grid-header", has_text="selected samples").wait_for()
    assert_selection_is_polygon(px, an.samples.index, rect, explorer.selection)
    assert set(explorer.selection) == by_lasso


def test_lasso_on_the_webgl_layer_and_a_click_on_a_point(solara_test, page_session, an):
    """The GPU path (forced here: CI's WebGL is software, where the CPU layer is chosen) selects the same way."""
    page = page_session
    explorer = _show(page, an, map_renderer="webgl")
    mapel = page.locator(".dqx-map")
    assert mapel.get_attribute("data-renderer").startswith("webgl")
    px, box = _positions(page, an)
    polygon = polygon_at(box, [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)])
    drag(page, polygon, shift=True)
    page.locator(".dqx-grid-header", has_text="selected samples").wait_for()
    assert_selection_is_polygon(px, an.samples.index, polygon, explorer.selection)
    assert len(explorer.selection) == int(mapel.get_attribute("data-selected"))
    # a click on one known point selects exactly it: the sample farthest from its nearest neighbour
    lonely = lonely_point(px, box)
    page.mouse.click(*px[lonely])
    page.locator(".dqx-map[data-selected='1']").wait_for()
    page.locator(".dqx-grid[data-count='1'][data-ready=true]").wait_for()
    assert list(explorer.selection) == [an.samples.index[lonely]]
    # a click on the background clears the selection, in the browser and in Python
    page.mouse.click(box["x"] + 3, box["y"] + 3)
    page.locator(".dqx-map[data-selected='0']").wait_for()
    page.locator(".dqx-grid-header", has_text="worst").wait_for()
    assert len(explorer.selection) == 0


def test_python_selection_selects_in_browser(solara_test, page_session, an):
    page = page_session
    explorer = _show(page, an)
    ids = an.samples.index[[3, 10, 42]]
    explorer.selection = ids
    page.locator(".dqx-map[data-selected='3']").wait_for()
    page.locator(".dqx-grid[data-count='3'][data-ready=true]").wait_for()
    assert sorted(page.locator(".dqx-cell").evaluate_all("cs => cs.map(c => c.dataset.id)")) == sorted(map(str, ids))
    with pytest.raises(ValueError, match="not in an.samples"):
        explorer.selection = ["no-such-id"]


def test_digit_key_relabels_and_journal_has_the_row(solara_test, page_session, an):
    page = page_session
    _show(page, an)
    before = len(an.review.history())
    first = page.locator(".dqx-cell").first
    sample_id = first.get_attribute("data-id")
    first.click()
    page.keyboard.press("3")
    page.locator(f".dqx-review[data-actions='{before + 1}'][data-ready=true]").wait_for()
    history = an.review.history()
    assert len(history) == before + 1
    assert str(an.review.labels().loc[an.samples.index[an.samples.index.astype(str) == sample_id][0]]) == an.classes[3]
    # `d` drops the next sample (the grid's 2nd cell: the cursor moved on after the relabel), `z` undoes it
    second = page.locator(".dqx-cell").nth(1).get_attribute("data-id")
    page.keyboard.press("d")
    page.locator(f".dqx-review[data-actions='{before + 2}'][data-ready=true]").wait_for()
    assert [str(i) for i in an.review.dropped()] == [second]
    page.keyboard.press("z")
    page.locator(f".dqx-review[data-actions='{before + 3}'][data-ready=true]").wait_for()
    assert len(an.review.dropped()) == 0


def test_slice_row_click_selects_its_samples(solara_test, page_session, an):
    page = page_session
    explorer = _show(page, an)
    page.locator(".dqx-slices[data-ready=true]").wait_for()
    row = page.locator("tr.dqx-row").first
    key = int(row.get_attribute("data-key"))
    slice_id = an.slices.iloc[key]["slice_id"]
    members = an.samples.index[an.samples["slice_id"].to_numpy() == slice_id]
    row.click()
    page.locator(f".dqx-map[data-selected='{len(members)}']").wait_for()
    page.locator(f".dqx-grid[data-count='{len(members)}']").wait_for()
    assert sorted(map(str, explorer.selection)) == sorted(map(str, members))


def test_threshold_move_changes_flagged_count(solara_test, page_session, an):
    page = page_session
    _show(page, an)
    chart = page.locator(".dqx-chart[data-column=label_issue_score]")
    before = int(chart.get_attribute("data-flagged"))
    assert before == int(an.samples["is_label_issue"].sum())
    box = chart.locator("svg").bounding_box()
    page.mouse.click(box["x"] + 0.95 * box["width"], box["y"] + box["height"] / 2)
    page.locator(".dqx-chart[data-column=label_issue_score][data-ready=true]").wait_for()
    chart.locator(f"xpath=self::*[not(@data-flagged='{before}')]").wait_for()
    after = int(chart.get_attribute("data-flagged"))
    assert an.thresholds["label_issue_score"] == pytest.approx(0.95, abs=0.01)
    assert after == int(an.samples["is_label_issue"].sum()) and after < before


def test_labels_are_text_never_html(solara_test, page_session, an, tmp_path):
    page = page_session
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    labels = an.samples["label"].astype(object).replace({an.classes[0]: EVIL})
    ds = dq.Dataset.from_arrays(an.features, labels=labels.to_numpy(), ids=an.samples.index)
    evil = dq.analyze(ds, workdir=tmp_path, layout="pca", progress=False)
    _show(page, evil, color_by="label")
    page.locator(".dqx-legend-item", has_text=EVIL).wait_for()
    page.locator(".dqx-filter-label").select_option(EVIL)
    page.locator(".dqx-grid-header", has_text="filtered").wait_for()
    page.locator(".dqx-grid[data-ready=true]").wait_for()
    texts = page.locator(".dqx-cell-label").all_text_contents()
    assert texts and set(texts) == {EVIL}
    assert page.locator(".dqx img[src='x']").count() == 0 and not dialogs
