"""The Explorer in a real JupyterLab 4 and Notebook 7 server, in Debian chromium.

The other browser tests render the widget in the pytest-ipywidgets (solara) harness, whose server
hands the kernel ``bytes``; ipykernel hands it ``memoryview``, and that difference once kept every
lasso from reaching Python. These tests open a notebook the way a user does: ``jupyter lab`` runs
as a subprocess on a free local port (one server for the module), chromium opens
``/lab/tree/<notebook>`` and runs every cell from the Run menu. Each interaction is then checked in
the kernel: a harness cell in the notebook runs ``probe_cmd.py`` (written by the test) and writes
``probe_out.json``; the test re-runs that cell (Ctrl+Enter, as a user would) and reads the answer.
Expected ids are computed here from ``an.samples`` x, y, ``normalised_positions`` and the map's
camera (at zoom 1 the square [-1, 1] fits the plot's shorter side), never from the page itself.

No sleeps: every wait is bounded and, when it runs out, fails with the browser console, the
notebook's error outputs and the tail of the server log. Screenshots go to $DQ_SCREENSHOT_DIR
(``DQ_SCREENSHOT_DIR=docs`` refreshes the README's pictures on purpose), else to a temporary folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from jupyter_harness import (JUPYTER, PROBE, SERVER_START_S, UI_S, JupyterServer, Kernel, notebook, open_page,
                             run_all_cells, wait_explorer_drawn)
from map_geometry import (assert_selection_is_polygon, box_drag, drag, inside, lonely_point, near_edge, polygon_at,
                          screen_positions, worst_first)

BUILD_ANALYSIS = """\
import numpy as np, pandas as pd, torch
import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist

images, y, classes = load_fashion_mnist("train", n=300, seed=0)
labels = np.array([classes[i] for i in y], dtype=object)
rng = np.random.default_rng(0)
flip = rng.choice(len(labels), size=30, replace=False)   # 10% wrong labels: something to find
labels[flip] = rng.choice(classes, size=flip.size)
ds = dq.Dataset.from_dataframe(pd.DataFrame({"image": list(images), "label": labels}), image="image", label="label")
# 8x8 average-pooled pixels as the embedding: small, real, and fast on a CPU
pooled_pixels = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten())
an = dq.analyze(ds, embedder=pooled_pixels, workdir=WORKDIR, layout="pca", progress=False)
"""
SHOW_EXPLORER = "explorer = dq.Explorer(an)\nexplorer"
PROBE_CELL = 1  # code cells: the analysis, the probe, the Explorer


def _notebook(path: Path, workdir: str) -> Path:
    return notebook(path, [BUILD_ANALYSIS.replace("WORKDIR", repr(workdir)), PROBE, SHOW_EXPLORER],
                    "dqwidgets Explorer on 300 Fashion-MNIST images")


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: $DQ_SCREENSHOT_DIR (e.g. docs, on purpose), else the test's tmp folder."""
    folder = Path(os.environ.get("DQ_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _unavailable(why: str) -> None:
    """The browser tests' policy (tests/browser/conftest.py): skip, or fail under DQ_REQUIRE_BROWSER=1."""
    if os.environ.get("DQ_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required (DQ_REQUIRE_BROWSER=1) but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    if not JUPYTER.exists():
        _unavailable(f"{JUPYTER} is missing (pip install -e '.[dev]' installs jupyterlab and notebook)")
    root = tmp_path_factory.mktemp("jupyter_root")
    server = JupyterServer(root, tmp_path_factory.mktemp("jupyter_home"))
    try:
        server.wait_started(SERVER_START_S)
        yield server
    finally:
        server.stop()


def _legend_colours(page) -> dict[str, str]:
    return dict(page.locator(".dqx-legend-item").evaluate_all(
        "items => items.map(i => [i.textContent, i.querySelector('.dqx-dot').style.background])"))


def _journal_rows(root: Path, workdir: str) -> list[tuple]:
    journals = sorted(root.glob(f"{workdir}/*/journal.sqlite"))
    assert len(journals) == 1, f"expected one review journal under {root / workdir}, found {journals}"
    with sqlite3.connect(f"file:{journals[0]}?mode=ro", uri=True) as db:
        return db.execute("SELECT action, ids, new FROM actions ORDER BY seq").fetchall()


class Lab(Kernel):
    """The test notebook in JupyterLab with the Explorer drawn."""

    def selection(self) -> list[str]:
        return self.kernel("_out['ids'] = [str(i) for i in explorer.selection]")["ids"]

    def samples(self) -> dict:
        """ids, x, y and the grid's score of an.samples, from the kernel."""
        return self.kernel(
            "s = an.samples\n"
            "_out.update(ids=[str(i) for i in s.index], x=s['x'].tolist(), y=s['y'].tolist(),\n"
            "            score=s[explorer.grid_score].tolist(), grid_score=explorer.grid_score)")

    def clear(self) -> None:
        """Python clears the selection; the map and the grid follow."""
        self.kernel("explorer.selection = None")
        self.w.wait(".dqx-map[data-selected='0']", "the cleared selection on the map", UI_S, state="attached")
        self.w.wait(".dqx-grid-header:has-text('worst')", "the grid back to the worst samples", UI_S)

    def tool(self, name: str) -> None:
        button = self.page.locator(f".dqx-tool[data-tool={name}]")
        if button.get_attribute("aria-pressed") != "true":
            button.click()
        self.w.wait(f".dqx-map[data-tool={name}]", f"the {name} tool", UI_S, state="attached")

    def lasso(self, data: dict, fractions, modifiers=(), tool: str = "lasso") -> tuple[list[str], np.ndarray]:
        """Drag a polygon at ``fractions`` of the map's box with ``tool`` on and ``modifiers`` held
        ("Control" adds, "Alt" removes, "Shift" selects while panning); once the grid shows the map's
        new count, the kernel's selection (read back in Python) and the polygon that was drawn."""
        self.tool(tool)
        _, box = screen_positions(self.page, data["x"], data["y"])
        polygon = polygon_at(box, fractions)
        for key in modifiers:
            self.page.keyboard.down(key)
        drag(self.page, polygon)
        for key in reversed(modifiers):
            self.page.keyboard.up(key)
        n = self.page.locator(".dqx-map").get_attribute("data-selected")  # set at the pointer's release
        self.w.wait(f".dqx-grid[data-count='{n}'][data-ready=true]", "the grid after the lasso", UI_S)
        if n != "0":
            self.w.wait(".dqx-grid-header:has-text('selected samples')", "the grid showing the selection", UI_S)
        selected = self.selection()
        assert len(selected) == int(n), f"the kernel holds {len(selected)} selected samples, the map {n}"
        return selected, polygon


@pytest.fixture(scope="module")
def lab(jupyter, browser):
    """The notebook run in JupyterLab once for every test below (one kernel, one page)."""
    nb = _notebook(jupyter.root / "explorer_lab.ipynb", "work_lab")
    w = open_page(browser, jupyter, f"/lab/tree/{nb.name}")
    try:
        run_all_cells(w)
        wait_explorer_drawn(w)
        yield Lab(w, jupyter, probe_cell=PROBE_CELL)
    finally:
        w.page.context.close()
        jupyter.shutdown_kernels()


def _expected_selection(lab: Lab, data: dict, polygon: np.ndarray, selected: list[str]) -> None:
    """The kernel's selection is exactly the samples inside the drawn polygon (edge pixels aside)."""
    px, _ = screen_positions(lab.page, data["x"], data["y"])
    assert_selection_is_polygon(px, data["ids"], polygon, selected)


def _grid_shows(lab: Lab, data: dict, selected: list[str]) -> None:
    """The grid shows the selection, worst first: its count, its title and the cells on screen."""
    n = len(selected)
    lab.w.wait(f".dqx-grid[data-count='{n}'][data-ready=true]", "the grid showing the selection", UI_S)
    assert lab.page.locator(".dqx-grid-header").inner_text() == f"{n:,} selected samples"
    assert f"{n:,} selected" in lab.page.locator(".dqx-counts").inner_text()
    assert lab.page.locator(".dqx-map").get_attribute("data-selected") == str(n)
    expected = worst_first(data["ids"], np.asarray(data["score"], dtype=np.float64), selected)
    cells = lab.page.locator(".dqx-cell").evaluate_all("cs => cs.map(c => c.dataset.id)")
    assert cells and cells == expected[: len(cells)], (cells[:5], expected[:5])


def test_lab_lasso_tool_selection_reaches_python_and_the_grid_shows_it(lab, tmp_path):
    data = lab.samples()
    # a plain drag: the lasso tool is on
    selected, polygon = lab.lasso(data, [(0.3, 0.25), (0.7, 0.2), (0.75, 0.6), (0.5, 0.8), (0.25, 0.65)])
    _expected_selection(lab, data, polygon, selected)
    _grid_shows(lab, data, selected)
    lab.page.locator(".dqx").screenshot(path=str(screenshot_path(tmp_path, "explorer-lasso.png")))


def test_lab_box_tool_selects_the_rectangle_and_shift_drag_selects_while_panning(lab):
    data = lab.samples()
    lab.tool("box")
    _, box = screen_positions(lab.page, data["x"], data["y"])
    rect = polygon_at(box, [(0.2, 0.3), (0.6, 0.3), (0.6, 0.75), (0.2, 0.75)])
    box_drag(lab.page, rect)
    lab.w.wait(".dqx-grid-header:has-text('selected samples')", "the grid after the box", UI_S)
    selected = lab.selection()
    _expected_selection(lab, data, rect, selected)
    _grid_shows(lab, data, selected)
    # clicking the active tool again goes back to panning; shift-drag still selects (with the lasso)
    lab.page.locator(".dqx-tool[data-tool=box]").click()
    lab.w.wait(".dqx-map[data-tool=pan]", "the pan tool after clicking box again", UI_S, state="attached")
    again, polygon = lab.lasso(data, [(0.5, 0.2), (0.85, 0.5), (0.5, 0.85), (0.3, 0.5)], ("Shift",), tool="pan")
    _expected_selection(lab, data, polygon, again)                # it replaced the box's selection
    _grid_shows(lab, data, again)


def test_lab_a_plain_drag_with_the_pan_tool_pans_and_keeps_the_selection(lab):
    lab.tool("pan")
    before = lab.selection()
    box = lab.page.locator(".dqx-map canvas").first.bounding_box()
    start = (box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
    lab.page.mouse.move(*start)
    lab.page.mouse.down()
    lab.page.mouse.move(start[0] + 60, start[1] + 30, steps=6)
    lab.page.mouse.up()
    lab.w.wait(".dqx-map:not([data-view='1 0 0'])", "the map panned", UI_S, state="attached")
    assert lab.selection() == before
    lab.page.mouse.dblclick(box["x"] + 3, box["y"] + 3)          # double click: back to the whole map
    lab.w.wait(".dqx-map[data-view='1 0 0']", "the view reset", UI_S, state="attached")
    lab.clear()


def test_lab_a_digit_on_a_lasso_selection_writes_one_journal_entry_with_exactly_those_ids(lab):
    data = lab.samples()
    selected, polygon = lab.lasso(data, [(0.35, 0.3), (0.65, 0.3), (0.65, 0.7), (0.35, 0.7)])
    _expected_selection(lab, data, polygon, selected)
    _grid_shows(lab, data, selected)
    before = _journal_rows(lab.server.root, "work_lab")
    page = lab.page
    page.locator(".dqx-review-scope").select_option("all")
    assert page.locator(".dqx-review-scope option[value=all]").inner_text() == \
        f"all {len(selected):,} selected in the grid"
    class3 = page.locator(".dqx-relabel-select option").nth(3).get_attribute("value")
    actions = int(page.locator(".dqx-review").get_attribute("data-actions"))
    page.locator(".dqx-cell").first.click()
    page.keyboard.press("3")
    lab.w.wait(f".dqx-review[data-actions='{actions + 1}'][data-ready=true]", "the kernel's answer to 3", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")
    assert len(rows) == len(before) + 1, rows[len(before):]
    action, ids, new = rows[-1]
    assert action == "relabel" and json.loads(new) == class3
    assert sorted(str(i) for i in json.loads(ids)) == sorted(selected)
    assert page.locator(".dqx-review-status").inner_text() == f"relabelled {len(selected):,} samples to {class3}"
    page.keyboard.press("z")
    lab.w.wait(f".dqx-review[data-actions='{actions + 2}'][data-ready=true]", "the kernel's answer to z", UI_S)
    assert [r[0] for r in _journal_rows(lab.server.root, "work_lab")][-2:] == ["relabel", "undo"]
    page.locator(".dqx-review-scope").select_option("sample")
    lab.tool("pan")
    lab.clear()


def test_lab_a_slice_row_click_selects_that_slice(lab):
    lab.w.wait(".dqx-slices[data-ready=true] tr.dqx-row", "the slice table", UI_S)
    row = lab.page.locator("tr.dqx-row").nth(1)
    key = int(row.get_attribute("data-key"))
    members = lab.kernel(f"sid = an.slices.iloc[{key}]['slice_id']\n"
                         "_out['ids'] = [str(i) for i in an.samples.index[an.samples['slice_id'].to_numpy() == sid]]")["ids"]
    assert members
    row.click()
    lab.w.wait(f".dqx-grid[data-count='{len(members)}'][data-ready=true]", "the grid showing the slice", UI_S)
    assert lab.selection() == members
    lab.clear()


def test_lab_a_spurious_table_row_click_selects_exactly_the_samples_of_that_finding(lab):
    """A finding is (attribute, value, label); on images the attributes are measured properties whose
    values are quantile bins ("<0.173", "0.173–0.241"), so the row selects the valid samples in that bin
    with that label: ``support`` of them."""
    page = lab.page
    page.locator(".dqx-slices-which").select_option("spurious")
    try:
        lab.w.wait(".dqx-slices[data-ready=true] tr.dqx-row", "the spurious-correlation table", UI_S)
        row = page.locator("tr.dqx-row").first
        key = int(row.get_attribute("data-key"))
        want = lab.kernel(
            "from dqwidgets.compute.spurious import encode_attribute\n"
            f"f = an.spurious.iloc[{key}]\n"
            "codes, names = encode_attribute(an.samples[f['attribute']].to_numpy())\n"
            "m = (codes == names.index(f['value'])) & (an.samples['label'].astype(str).to_numpy() == str(f['label']))\n"
            "_out.update(ids=[str(i) for i in an.samples.index[m & an.valid]], support=int(f['support']),\n"
            "            shown=[str(f['attribute']), str(f['value']), str(f['label'])])")
        assert len(want["ids"]) == want["support"] > 0
        assert row.locator("td").all_inner_texts()[:3] == want["shown"]
        row.click()
        lab.w.wait(f".dqx-grid[data-count='{want['support']}'][data-ready=true]", "the grid showing the finding", UI_S)
        assert sorted(lab.selection()) == sorted(want["ids"])
        assert lab.page.locator(".dqx-map").get_attribute("data-selected") == str(want["support"])
    finally:
        page.locator(".dqx-slices-which").select_option("slices")
        lab.w.wait(".dqx-slices[data-ready=true] tr.dqx-row", "the slice table again", UI_S)
        lab.clear()


def test_lab_a_threshold_drag_and_back_gives_the_same_flagged_ids(lab):
    page, column = lab.page, "label_issue_score"
    flagged = f"_out.update(t=an.thresholds[{column!r}], ids=[str(i) for i in an.samples.index[an.samples['is_label_issue']]])"
    start = lab.kernel(flagged)
    chart = page.locator(f".dqx-chart[data-column={column}]")
    svg = chart.locator("svg").bounding_box()
    lo, hi = float(chart.get_attribute("data-lo") or 0), float(chart.get_attribute("data-hi") or 1)
    x_of = lambda v: svg["x"] + (v - lo) / (hi - lo) * svg["width"]  # noqa: E731
    y = svg["y"] + svg["height"] / 2

    def drag(a, b, what):
        before = chart.get_attribute("data-threshold")
        page.mouse.move(x_of(a), y)
        page.mouse.down()
        page.mouse.move(x_of(b), y, steps=6)
        page.mouse.up()
        lab.w.wait(f".dqx-chart[data-column={column}][data-ready=true]:not([data-threshold='{before}'])", what, UI_S,
                   state="attached")
        return lab.kernel(flagged)

    high = drag(start["t"], 0.95, "the threshold moved up")
    assert high["t"] == pytest.approx(0.95, abs=(hi - lo) / svg["width"] * 1.01)
    assert set(high["ids"]) < set(start["ids"]) and int(chart.get_attribute("data-flagged")) == len(high["ids"])
    back = drag(0.95, start["t"], "the threshold moved back")
    assert back["t"] == pytest.approx(start["t"], abs=(hi - lo) / svg["width"] * 1.01)
    if back["t"] == start["t"]:
        assert back["ids"] == start["ids"]
    else:  # the pointer's pixel decides the last digits: only samples scored between the two may differ
        between = lab.kernel(f"lo_, hi_ = sorted(({start['t']!r}, {back['t']!r}))\n"
                             f"s = an.samples[{column!r}]\n"
                             "_out['ids'] = [str(i) for i in an.samples.index[(s >= lo_) & (s < hi_)]]")["ids"]
        assert set(back["ids"]) ^ set(start["ids"]) <= set(between)
    lab.kernel(f"an.set_threshold({column!r}, {start['t']!r})")


def test_lab_a_selection_set_in_python_appears_on_the_map_and_in_the_grid(lab):
    data = lab.samples()
    ids = [data["ids"][r] for r in (3, 10, 42)]
    lab.kernel("explorer.selection = an.samples.index[[3, 10, 42]]")
    lab.w.wait(".dqx-map[data-selected='3']", "the Python selection on the map", UI_S, state="attached")
    _grid_shows(lab, data, ids)
    lab.clear()


def test_lab_alt_lasso_removes_the_points_inside_it_from_the_selection(lab):
    data = lab.samples()
    px, _ = screen_positions(lab.page, data["x"], data["y"])
    before, first = lab.lasso(data, [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)])
    _expected_selection(lab, data, first, before)
    after, cut = lab.lasso(data, [(0.45, 0.1), (0.9, 0.1), (0.9, 0.9), (0.45, 0.9)], modifiers=("Alt",))
    after = set(after)
    ids = np.asarray(data["ids"])
    in_cut, unsure = inside(px, cut), near_edge(px, cut)
    kept = set(before) & set(ids[~in_cut & ~unsure])
    removed = set(before) & set(ids[in_cut & ~unsure])
    assert removed and kept, "a weak test: the cut should remove some samples and keep others"
    assert kept <= after and not removed & after and after <= set(before)
    lab.tool("pan")
    lab.clear()


def test_lab_ctrl_adds_a_second_lasso_a_pan_mode_shift_drag_and_a_click_to_the_selection(lab):
    data = lab.samples()
    ids = np.asarray(data["ids"])
    px, box = screen_positions(lab.page, data["x"], data["y"])
    first, a = lab.lasso(data, [(0.15, 0.2), (0.45, 0.2), (0.45, 0.8), (0.15, 0.8)])
    _expected_selection(lab, data, a, first)
    # ctrl: a second lasso adds its samples; the first lasso's stay, exactly
    second, b = lab.lasso(data, [(0.55, 0.15), (0.88, 0.15), (0.88, 0.5), (0.55, 0.5)], modifiers=("Control",))
    assert set(first) < set(second) and len(set(second) - set(first)) >= 5, (len(first), len(second))
    assert_selection_is_polygon(px, ids, a, second, also=[b])
    # with the pan tool, ctrl + shift-drag adds a lasso too
    third, c = lab.lasso(data, [(0.55, 0.6), (0.88, 0.6), (0.88, 0.88), (0.55, 0.88)], ("Control", "Shift"),
                         tool="pan")
    assert set(second) < set(third)
    assert_selection_is_polygon(px, ids, a, third, also=[b, c])
    _grid_shows(lab, data, third)
    # ctrl-click on a point outside them all adds exactly that sample
    lonely = lonely_point(px, box, among=~np.isin(ids, third))
    lab.page.keyboard.down("Control")
    lab.page.mouse.click(*px[lonely])
    lab.page.keyboard.up("Control")
    lab.w.wait(f".dqx-grid[data-count='{len(third) + 1}'][data-ready=true]", "the grid after the ctrl-click", UI_S)
    assert sorted(lab.selection()) == sorted(third + [ids[lonely]])
    lab.clear()


def test_lab_hover_shows_the_thumbnail_and_the_wheel_zooms_about_the_cursor(lab):
    data = lab.samples()
    lab.tool("pan")
    px, box = screen_positions(lab.page, data["x"], data["y"])
    assert lab.page.locator(".dqx-map").get_attribute("data-renderer").startswith("cpu"), \
        "software WebGL (SwiftShader) should pick the CPU layer"
    legend = lab.page.locator(".dqx-legend").bounding_box()
    assert legend["y"] + legend["height"] <= box["y"] + 0.5, "the legend overlaps the plot"
    lonely = lonely_point(px, box)
    lab.page.mouse.move(*px[lonely])
    tip = lab.w.wait(".dqx-tooltip:not([hidden]):has(img.dqx-tip-img)", "the hover thumbnail", UI_S)
    assert tip.inner_text().splitlines()[0] == f"id {data['ids'][lonely]}"
    lab.page.mouse.wheel(0, -400)                                # zoom in about the cursor
    lab.w.wait(".dqx-map:not([data-view='1 0 0'])", "the wheel zoom", UI_S, state="attached")
    zoom = float(lab.page.locator(".dqx-map").get_attribute("data-view").split()[0])
    assert zoom > 1.5
    lab.page.mouse.dblclick(box["x"] + 3, box["y"] + 3)
    lab.w.wait(".dqx-map[data-view='1 0 0']", "the view reset", UI_S, state="attached")
    lab.clear()


def test_lab_the_issue_and_class_filters_narrow_the_grid_and_the_map(lab):
    page = lab.page
    keys = page.locator(".dqx-filter-issue option").evaluate_all("os => os.map(o => o.value).filter(v => v)")
    assert {"label", "ood", "duplicate", "queue"} <= set(keys), keys  # the issue flags and the review queue
    want = lab.kernel(
        "from dqwidgets.widgets.grid import ISSUE_FILTERS, QUEUE_FILTER\n"
        "cur = an.review.labels().astype(str).to_numpy()\n"
        f"flag = {{k: an.samples[ISSUE_FILTERS[k][0]].to_numpy(dtype=bool) for k in {keys!r} if k != QUEUE_FILTER}}\n"
        "issue = {k: int(m.sum()) for k, m in flag.items()}\n"
        "issue.update({QUEUE_FILTER: len(an.review_queue())} if QUEUE_FILTER in " + repr(keys) + " else {})\n"
        "_out.update(issue=issue, cls=str(an.classes[2]), total=len(cur),\n"
        "            cls_n=int((cur == str(an.classes[2])).sum()),\n"
        "            both=int((flag['label'] & (cur == str(an.classes[2]))).sum()))")

    def shows(n: int, what: str) -> None:
        lab.w.wait(f".dqx-grid[data-count='{n}'][data-ready=true]", f"the grid filtered to {what}", UI_S)
        lab.w.wait(f".dqx-map[data-visible='{n}']", f"the map filtered to {what}", UI_S, state="attached")
        assert page.locator(".dqx-grid-header").inner_text().endswith("(filtered)")

    for key in keys:  # label issues, out of distribution, near-duplicates, ...; each from the whole grid
        page.locator(".dqx-filter-issue").select_option(key)
        shows(want["issue"][key], key)
        page.locator(".dqx-filter-issue").select_option("")
        lab.w.wait(f".dqx-grid[data-count='{want['total']}'][data-ready=true]", "the grid unfiltered", UI_S)
    page.locator(".dqx-filter-label").select_option(want["cls"])
    shows(want["cls_n"], want["cls"])
    assert want["cls_n"] > 0 and set(page.locator(".dqx-cell-label").all_inner_texts()) == {want["cls"]}
    page.locator(".dqx-filter-issue").select_option("label")        # both: label issues of that class
    shows(want["both"], f"label issues labelled {want['cls']}")
    page.locator(".dqx-filter-issue").select_option("")
    page.locator(".dqx-filter-label").select_option("")
    lab.w.wait(".dqx-grid-header:not(:has-text('filtered'))", "the grid unfiltered", UI_S)


def test_lab_a_kernel_error_shows_a_dismissible_banner(lab):
    page = lab.page
    lab.kernel("def _broken(*a, **k):\n    raise RuntimeError('the journal disk is full (planted by the test)')\n"
               "an.review.drop = _broken")
    try:
        page.locator(".dqx-cell").first.click()
        page.keyboard.press("d")
        banner = lab.w.wait(".dqx-banner", "the error banner", UI_S)
        lab.w.wait(".dqx-review[data-ready=true]", "the review panel's answer", UI_S, state="attached")
        assert page.locator(".dqx-banner").count() == 1
        assert "RuntimeError: the journal disk is full (planted by the test)" in banner.inner_text()
        assert "the journal disk is full" in page.locator(".dqx-review-status").inner_text()
        assert any("the journal disk is full" in line and line.startswith("[error]") for line in lab.w.console)
        banner.locator(".dqx-banner-close").click()
        lab.w.wait(".dqx-banner", "the banner dismissed", UI_S, state="detached")
    finally:
        lab.kernel("del an.review.drop")


def test_lab_digit_d_d_z_reach_the_journal_and_leave_the_notebook_alone(lab, tmp_path):
    page = lab.page
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()
    assert page.locator(".dqx-map canvas").first.bounding_box()["width"] > 100
    assert page.locator(".dqx-cell img.dqx-thumb").count() > 0
    legend_before = _legend_colours(page)
    assert {"fine", "label issue"} <= set(legend_before), legend_before
    before = _journal_rows(lab.server.root, "work_lab")
    actions = int(page.locator(".dqx-review").get_attribute("data-actions"))
    # the digit names the class in the review panel's dropdown ("3: Dress")
    class3 = page.locator(".dqx-relabel-select option").nth(3).get_attribute("value")
    sample = page.locator(".dqx-cell").first
    sample_id = sample.get_attribute("data-id")
    sample.click()
    lab.w.wait(f".dqx-cell.dqx-cursor[data-id='{sample_id}']", "the cursor on the clicked card", UI_S)
    page.keyboard.press("3")
    lab.w.wait(f".dqx-review[data-actions='{actions + 1}'][data-ready=true]", "the relabel's answer", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")[len(before):]
    assert len(rows) == 1, rows
    action, ids, new = rows[0]
    assert action == "relabel" and [str(i) for i in json.loads(ids)] == [sample_id] and json.loads(new) == class3
    # `d d` is JupyterLab's "delete cell" and `z` its "undo cell operation": in the Explorer they
    # drop the next two samples and undo the last drop, and the notebook is left alone
    for n, key in enumerate("ddz", start=actions + 2):
        page.keyboard.press(key)
        lab.w.wait(f".dqx-review[data-actions='{n}'][data-ready=true]", f"the kernel's answer to {key!r}", UI_S)
    assert [r[0] for r in _journal_rows(lab.server.root, "work_lab")[len(before):]] == ["relabel", "drop", "drop", "undo"]
    lab.w.wait(".dqx-counts:has-text('1 dropped')", "the toolbar's count of dropped samples", UI_S)
    lab.w.wait(".dqx-map[data-ready=true]", "the map recoloured after the drops", UI_S)
    legend_after = _legend_colours(page)
    assert "dropped" in legend_after, legend_after
    assert {k: legend_after.get(k) for k in legend_before} == legend_before, (legend_before, legend_after)
    # JupyterLab did not also take the keys as notebook shortcuts (1-6 turn a cell into a heading)
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
    assert page.locator(".jp-Notebook .jp-CodeCell").count() == 3
    assert page.locator(".dqx").count() == 1, "the Explorer's output vanished after the key press"
    page.locator(".dqx").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path(tmp_path, "explorer-jupyterlab.png")))


def _settle(page) -> None:
    """Two animation frames: whatever the last event queued (the grid's render) has run."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_lab_the_review_dropdown_relabels_the_chosen_card_and_fine_marks_the_next(lab):
    page = lab.page
    before = _journal_rows(lab.server.root, "work_lab")
    actions = int(page.locator(".dqx-review").get_attribute("data-actions"))
    card = page.locator(".dqx-cell").nth(1)
    row, sample_id = int(card.get_attribute("data-row")), card.get_attribute("data-id")
    card.click()
    lab.w.wait(f".dqx-review-current:has-text('id {sample_id} ·')", "the review panel on the clicked card", UI_S)
    current = lab.kernel(f"_out['label'] = str(an.review.labels().iloc[{row}])")["label"]
    options = page.locator(".dqx-relabel-select option").evaluate_all("os => os.map(o => o.value)")
    target = next(c for c in reversed(options) if c != current)
    page.locator(".dqx-relabel-select").select_option(target)
    # a look further down the grid before pressing "relabel" re-renders the cards: the choice stays
    scroller = page.locator(".dqx-grid-scroller")
    scroller.hover()
    page.mouse.wheel(0, 300)
    page.wait_for_function("() => document.querySelector('.dqx-grid-scroller').scrollTop > 0")
    _settle(page)
    assert page.locator(".dqx-relabel-select").input_value() == target
    page.locator(".dqx-review-bar button:text-is('relabel')").click()
    lab.w.wait(f".dqx-review[data-actions='{actions + 1}'][data-ready=true]", "the kernel's answer to relabel", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")[len(before):]
    assert len(rows) == 1, rows
    action, ids, new = rows[0]
    assert (action, [str(i) for i in json.loads(ids)], json.loads(new)) == ("relabel", [sample_id], target)
    got = lab.kernel(f"_out.update(journal=str(an.review.labels().iloc[{row}]), samples=an.samples['current_label'].iloc[{row}])")
    assert (got["journal"], got["samples"]) == (target, target)
    # the cursor moved on to the next card: "fine (o)" marks that one ok
    nxt = lab.w.wait(".dqx-cell.dqx-cursor", "the cursor on the next card", UI_S)
    next_row, next_id = int(nxt.get_attribute("data-row")), nxt.get_attribute("data-id")
    assert next_id != sample_id
    page.locator(".dqx-review-bar button:text-is('fine (o)')").click()
    lab.w.wait(f".dqx-review[data-actions='{actions + 2}'][data-ready=true]", "the kernel's answer to fine", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")[len(before):]
    assert [(r[0], [str(i) for i in json.loads(r[1])]) for r in rows] == [("relabel", [sample_id]), ("mark_ok", [next_id])]
    assert lab.kernel(f"_out['status'] = an.samples['review_status'].iloc[{next_row}]")["status"] == "ok"
    for n in (actions + 3, actions + 4):                          # the undo button, twice: both taken back
        page.locator(".dqx-review-bar button:text-is('undo (z)')").click()
        lab.w.wait(f".dqx-review[data-actions='{n}'][data-ready=true]", "the kernel's answer to undo", UI_S)
    back = lab.kernel(f"_out.update(label=str(an.review.labels().iloc[{row}]), undecided=bool(pd.isna(an.review.status().iloc[{next_row}])))")
    assert (back["label"], back["undecided"]) == (current, True)


def test_lab_a_card_click_shows_its_evidence_and_a_on_a_lasso_accepts_the_suggestions_in_one_entry(lab, tmp_path):
    page = lab.page
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()
    # a click on a card: the evidence panel shows its neighbours from the analysis' kNN graph
    cell = page.locator(".dqx-cell").nth(2)
    row, sample_id = int(cell.get_attribute("data-row")), cell.get_attribute("data-id")
    cell.click()
    lab.w.wait(f".dqx-evidence[data-row='{row}'][data-ready=true]", "the evidence panel", UI_S)
    want = lab.kernel(
        f"ev = an.explain(an.samples.index[{row}])\n"
        "valid = np.flatnonzero(an.valid)\n"
        f"nb = valid[an.graph.indices[np.searchsorted(valid, {row})]]\n"
        "_out.update(ids=[str(n.id) for n in ev.neighbours], labels=[str(n.label) for n in ev.neighbours],\n"
        "            graph=[str(i) for i in an.samples.index[nb]])")
    assert want["ids"] == want["graph"] and len(want["ids"]) > 0
    assert page.locator(".dqx-evidence-nb").evaluate_all("cs => cs.map(c => c.dataset.id)") == want["ids"]
    assert page.locator(".dqx-evidence-nb-label").all_inner_texts() == want["labels"]
    assert page.locator(".dqx-evidence-nb img.dqx-evidence-thumb").count() == len(want["ids"])
    assert sample_id in page.locator(".dqx-evidence-title").inner_text()
    page.locator(".dqx-bottom").screenshot(path=str(screenshot_path(tmp_path, "explorer-evidence.png")))
    # `a` on a lasso selection: one journal row, exactly the selected ids whose suggestion differs
    data = lab.samples()
    selected, polygon = lab.lasso(data, [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)])
    _expected_selection(lab, data, polygon, selected)
    _grid_shows(lab, data, selected)
    # on a selection `a` is a bulk action: the samples already decided (relabelled, marked fine or
    # dropped, one by one by the tests above) are left as they are
    expected = lab.kernel(
        "cur = an.review.labels()\n"
        "sel = explorer.selection\n"
        "sug = an.samples.loc[sel, 'suggested_label']\n"
        "undecided = an.review.status()[sel].isna().to_numpy() & ~sel.isin(an.review.relabelled())\n"
        "keep = sug.notna() & (sug.astype(object) != cur[sel].astype(object)) & undecided\n"
        "_out['pairs'] = sorted([str(i), str(l)] for i, l in zip(sel[keep.to_numpy()], sug[keep]))")["pairs"]
    assert expected, "a weak test: the lasso should hold samples with another suggested label"
    before = _journal_rows(lab.server.root, "work_lab")
    actions = int(page.locator(".dqx-review").get_attribute("data-actions"))
    page.locator(".dqx-cell").first.click()
    page.keyboard.press("a")
    lab.w.wait(f".dqx-review[data-actions='{actions + 1}'][data-ready=true]", "the kernel's answer to a", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")
    assert len(rows) == len(before) + 1, rows[len(before):]
    action, ids, new = rows[-1]
    assert action == "relabel"
    assert sorted([str(i), str(l)] for i, l in zip(json.loads(ids), json.loads(new))) == expected
    now = lab.kernel("cur = an.review.labels()\n"
                     f"_out['pairs'] = sorted([str(i), str(cur[i])] for i in an.review.history().iloc[-1]['ids'])")
    assert now["pairs"] == expected                             # read back in Python
    assert page.locator(".dqx-review-status").inner_text().startswith(
        f"accepted the suggested label for {len(expected):,}")
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before  # `a` did not insert a cell
    page.locator(".dqx-cell").first.click()                     # the kernel calls above focused the notebook
    page.keyboard.press("z")                                    # one undo takes it all back
    lab.w.wait(f".dqx-review[data-actions='{actions + 2}'][data-ready=true]", "the kernel's answer to z", UI_S)
    back = lab.kernel("ids = an.review.history().iloc[-2]['ids']\n"
                      "_out['mismatch'] = int((an.review.labels()[ids] != an.samples.loc[ids, 'label']).sum())")
    assert back["mismatch"] == 0
    lab.tool("pan")
    lab.clear()
    # a slice row's "drop slice": one journal row with exactly that slice's ids
    row = page.locator("tr.dqx-row").nth(2)
    sid, size = row.get_attribute("data-slice-id"), int(row.get_attribute("data-size"))
    members = lab.kernel(f"_out['ids'] = sorted(str(i) for i in an.samples.index[an.samples['slice_id'] == {sid}])")["ids"]
    assert len(members) == size > 0
    row.click()
    lab.w.wait(f".dqx-slice-what:has-text('slice {sid} ')", "the slice actions for the clicked row", UI_S)
    before = _journal_rows(lab.server.root, "work_lab")
    page.locator(".dqx-slice-drop").click()
    lab.w.wait(".dqx-slice-status:has-text('dropped the')", "the kernel's answer to drop slice", UI_S)
    rows = _journal_rows(lab.server.root, "work_lab")
    assert len(rows) == len(before) + 1 and rows[-1][0] == "drop"
    assert sorted(str(i) for i in json.loads(rows[-1][1])) == members
    lab.kernel("an.review.undo()")
    lab.clear()


# text snippets, metadata values and file names with markup in them; a sentinel global that any of
# them, parsed as HTML, would set (an <img src=x> fails to load and runs its onerror)
EVIL_SNIPPET = "<img src=x onerror=window.__dqx_pwned=1> <b class=dqx-evil>bold</b>"
EVIL_SOURCE = "<img src=x onerror=window.__dqx_pwned=2><b class=dqx-evil>"
EVIL_FILE = "<img src=x onerror=window.__dqx_pwned=3>"
HOSTILE_TEXTS = f"""\
from IPython.display import display
rng = np.random.default_rng(7)
n = 160
hl = np.where(np.arange(n) % 2 == 0, "pos", "neg")
vocab = {{"pos": "great fine lovely superb".split(), "neg": "awful dull boring weak".split()}}
source = np.where((hl == "neg") & (rng.random(n) < 0.8), {EVIL_SOURCE!r}, "site")
texts = [{EVIL_SNIPPET!r} + " " + " ".join(rng.choice(vocab[l], 6)) + f" #{{i}}" for i, l in enumerate(hl)]
def letter_counts(batch):
    return np.array([[t.count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in batch], dtype=np.float32)
hds = dq.Dataset.from_dataframe(pd.DataFrame({{"text": texts, "label": hl, "source": source}}), text="text", label="label")
han = dq.analyze(hds, embedder=letter_counts, workdir="work_hostile_texts", layout="pca", progress=False)
hx = dq.Explorer(han)
display(hx)
"""
HOSTILE_FILES = f"""\
import pathlib
from PIL import Image
_out['text_selection'] = sorted(str(i) for i in hx.selection)
_out['source_ids'] = sorted(str(i) for i in han.samples.index[(han.samples["source"] == {EVIL_SOURCE!r})
                                                             & (han.samples["label"] == "neg") & han.valid])
folder = pathlib.Path("hostile_files")
for c, mean in (("dark", 60), ("light", 190)):
    (folder / c).mkdir(parents=True, exist_ok=True)
    for i in range(24):
        Image.fromarray(np.clip(rng.normal(mean, 30, (16, 16)), 0, 255).astype(np.uint8)).save(folder / c / f"{EVIL_FILE} {{i}}.png")
(folder / "dark" / "{EVIL_FILE} broken.png").write_bytes(b"not an image at all")
fan = dq.analyze(dq.Dataset.from_image_folder(folder), embedder=pooled_pixels, workdir="work_hostile_files",
                 layout="pca", progress=False)
fx = dq.Explorer(fan)
fx.selection = ["dark/{EVIL_FILE} broken.png", "dark/{EVIL_FILE} 0.png"]
display(fx)
"""


def _no_markup_ran(page) -> None:
    """No element was made from the data's strings and the sentinel global is unset."""
    assert page.locator("img[src='x']").count() == 0
    assert page.locator(".dqx-evil").count() == 0
    assert page.locator(".dqx script").count() == 0
    assert page.evaluate("() => window.__dqx_pwned === undefined")


def test_lab_text_snippets_metadata_values_and_file_names_are_shown_as_text_never_as_html(lab):
    page = lab.page
    probe = page.locator(".jp-Notebook .jp-CodeCell").nth(PROBE_CELL)
    try:
        lab.kernel(HOSTILE_TEXTS)              # a text dataset's Explorer, shown in the harness cell
        hx = probe.locator(".dqx")
        lab.w.wait(".jp-CodeCell .dqx[data-ready=true] .dqx-grid[data-ready=true] .dqx-snippet", "the texts' Explorer", UI_S)
        snippets = hx.locator(".dqx-snippet").all_text_contents()
        assert snippets and all(t.startswith(EVIL_SNIPPET + " ") for t in snippets), snippets[:3]
        # metadata values: the slice table describes slices by them, the spurious table names them
        hx.locator(".dqx-slices[data-ready=true] tr.dqx-row").first.wait_for()
        described = [t for t in hx.locator(".dqx-slices td").all_text_contents() if f"source={EVIL_SOURCE} (" in t]
        assert described, hx.locator(".dqx-slices td").all_text_contents()
        hx.locator(".dqx-cell").first.click()  # the evidence panel: the neighbours' snippets
        hx.locator(".dqx-evidence[data-ready=true] .dqx-evidence-snippet").first.wait_for()
        assert all(t.startswith(EVIL_SNIPPET + " ") for t in hx.locator(".dqx-evidence-snippet").all_text_contents())
        hx.locator(".dqx-slices-which").select_option("spurious")
        finding = hx.locator(".dqx-slices[data-ready=true] tr.dqx-row", has=page.locator(f"td:text-is('{EVIL_SOURCE}')"))
        finding.first.wait_for()
        assert finding.first.locator("td").all_text_contents()[:3] == ["source", EVIL_SOURCE, "neg"]
        _no_markup_ran(page)
        finding.first.click()                  # the hostile value selects its samples
        support = int(finding.first.locator("td").nth(3).text_content())
        hx.locator(f".dqx-grid[data-count='{support}'][data-ready=true]").wait_for()
        # file names: ids of an image folder, shown on the unreadable file's placeholder and in the evidence title
        got = lab.kernel(HOSTILE_FILES)
        assert got["text_selection"] == got["source_ids"] and len(got["source_ids"]) == support
        fx = probe.locator(".dqx")
        lab.w.wait(".jp-CodeCell .dqx[data-ready=true] .dqx-grid[data-count='2'][data-ready=true] .dqx-placeholder",
                   "the files' Explorer", UI_S)
        placeholder = fx.locator(".dqx-placeholder").text_content()
        assert f"'dark/{EVIL_FILE} broken.png'" in placeholder and placeholder.startswith("no image: "), placeholder
        good = fx.locator(f".dqx-cell[data-id='dark/{EVIL_FILE} 0.png']")
        assert good.locator("img.dqx-thumb").get_attribute("alt") == f"dark/{EVIL_FILE} 0.png"
        good.click()
        title = fx.locator(".dqx-evidence[data-ready=true] .dqx-evidence-title")
        title.wait_for()
        assert title.text_content().startswith(f"why sample dark/{EVIL_FILE} 0.png")
        _no_markup_ran(page)
    finally:
        lab.kernel("")                         # re-running the harness cell clears its output
    assert page.locator(".dqx").count() == 1


def test_explorer_in_notebook7_a_digit_relabels_into_the_journal(jupyter, browser):
    try:
        import notebook
    except ImportError:
        notebook = None
    if notebook is None or int(notebook.__version__.split(".")[0]) < 7:
        _unavailable("Notebook 7 is not installed (pip install 'notebook>=7', in the dev extra)")
    nb = _notebook(jupyter.root / "explorer_nb7.ipynb", "work_nb7")
    w = open_page(browser, jupyter, "/tree")
    try:
        w.wait(f".jp-DirListing-item[title*='{nb.name}']", "the notebook in Notebook 7's file tree", UI_S,
               state="attached")
        w.page.goto(f"{jupyter.url}/notebooks/{nb.name}", timeout=UI_S * 1000)
        w.wait("#main-panel .jp-NotebookPanel", "Notebook 7's notebook view", UI_S)
        run_all_cells(w)
        wait_explorer_drawn(w)
        page = w.page
        assert page.locator(".dqx").count() == 1
        assert page.locator(".dqx-map canvas").first.bounding_box()["width"] > 100
        assert page.locator(".dqx-cell img.dqx-thumb").count() > 0
        class2 = page.locator(".dqx-relabel-select option").nth(2).get_attribute("value")
        sample = page.locator(".dqx-cell").nth(1)
        sample_id = sample.get_attribute("data-id")
        sample.click()
        # the key acts on the grid's cursor: press it once the clicked card holds it (a grid reset arriving
        # between the click and the key moved the cursor to the first card, and that card was relabelled)
        w.wait(f".dqx-cell.dqx-cursor[data-id='{sample_id}']", "the cursor on the clicked card", UI_S)
        page.keyboard.press("2")
        w.wait(".dqx-review[data-actions='1'][data-ready=true]", "the relabel's answer from the kernel", UI_S)
        rows = _journal_rows(jupyter.root, "work_nb7")
        assert len(rows) == 1, rows
        action, ids, new = rows[0]
        assert action == "relabel" and [str(i) for i in json.loads(ids)] == [sample_id] and json.loads(new) == class2
        assert page.locator(".jp-Notebook .jp-CodeCell").count() == 3
    finally:
        w.page.context.close()
        jupyter.shutdown_kernels()
