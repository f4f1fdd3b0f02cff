"""A sampled map in a real JupyterLab (issue #15: the Explorer at scale): with ``map_max_points`` below
the number of samples the browser draws only some of them, and a lasso drawn with the mouse selects,
in the kernel, every sample inside the polygon, drawn or not. Expected ids are computed here from
``an.samples`` x, y and the map's camera (tests/browser/map_geometry.py), never from the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_harness import (JUPYTER, PROBE, SERVER_START_S, UI_S, JupyterServer, Kernel, notebook, open_page,
                             run_all_cells, wait_explorer_drawn)
from map_geometry import assert_selection_is_polygon, drag, polygon_at, screen_positions
from test_jupyterlab import BUILD_ANALYSIS, _unavailable

CAP = 120  # of 300 samples


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    if not JUPYTER.exists():
        _unavailable(f"{JUPYTER} is missing (pip install -e '.[dev]' installs jupyterlab and notebook)")
    server = JupyterServer(tmp_path_factory.mktemp("jupyter_root"), tmp_path_factory.mktemp("jupyter_home"))
    try:
        server.wait_started(SERVER_START_S)
        nb = notebook(Path(server.root) / "sampled_map.ipynb",
                      [BUILD_ANALYSIS.replace("WORKDIR", repr("work_sampled")), PROBE,
                       f"explorer = dq.Explorer(an, map_max_points={CAP})\nexplorer"],
                      "dqwidgets Explorer, a sampled map")
        w = open_page(browser, server, f"/lab/tree/{nb.name}")
        try:
            run_all_cells(w)
            wait_explorer_drawn(w)
            yield Kernel(w, server, probe_cell=1)
        finally:
            w.page.context.close()
            server.shutdown_kernels()
    finally:
        server.stop()


def test_a_lasso_on_the_sampled_map_selects_every_sample_inside_it_in_the_kernel(lab):
    page = lab.page
    m = page.locator(".dqx-map")
    assert m.get_attribute("data-sampled") == "true"
    drawn, total = int(m.get_attribute("data-drawn")), int(m.get_attribute("data-total"))
    assert total == 300 and drawn < total
    data = lab.kernel("s = an.samples\n_out.update(ids=[str(i) for i in s.index], x=s['x'].tolist(), "
                      "y=s['y'].tolist(), drawn=[str(i) for i in s.index[explorer.map_rows]])")
    page.locator(".dqx-tool[data-tool=lasso]").click()
    lab.w.wait(".dqx-map[data-tool=lasso]", "the lasso tool", UI_S, state="attached")
    px, box = screen_positions(page, data["x"], data["y"])
    polygon = polygon_at(box, [(0.15, 0.15), (0.7, 0.2), (0.8, 0.75), (0.45, 0.55), (0.2, 0.8)])
    drag(page, polygon)
    lab.w.wait(".dqx-map[data-lasso=done]", "the kernel's answer to the lasso", UI_S, state="attached")
    selected = lab.kernel("_out['ids'] = [str(i) for i in explorer.selection]")["ids"]
    assert_selection_is_polygon(px, data["ids"], polygon, selected)
    undrawn = set(selected) - set(data["drawn"])
    assert undrawn, "the polygon held no undrawn sample: a weak test"
    assert m.get_attribute("data-selected") == str(len(selected))
    lab.w.wait(f".dqx-grid-header:has-text('{len(selected):,} selected samples')", "the grid showing the selection", UI_S)
