"""The Explorer in real headless chromium (Debian chromium, software GL) at 100k and 1M points.

Measures, for each size:

- first draw: from ``display(explorer)`` in the kernel to the map's ``data-ready`` (request, bytes
  over the websocket, GPU upload and first frame), the browser's own request-to-drawn time, and of
  that the upload and first frame alone;
- lasso -> Python selection: from releasing a real shift-drag lasso (checked: it must select at
  least 1% of the points, not fall back to a click) to ``explorer.selection`` holding it, and the
  browser's own hit-test / hit-test + send milliseconds;
- linked views: from the selection reaching Python to the sample grid showing the selected
  samples, and from a selection set in Python to the map and the grid showing it;
- the 1-minute load average at the start of each size (the machine is shared);
- bytes sent for the map (positions float32 + colour uint8 + flags uint8);
- notebook growth per Explorer: a notebook executed with nbclient (widget state stored, as
  JupyterLab's "save widget state" does) with one vs two Explorer cells.

The widget's input at N points: a real ``dq.analyze`` of 10k Fashion-MNIST images (8x8-pooled
pixels as features, PCA layout), its ``samples`` tiled to N rows with new ids and jittered
positions. The Explorer's cost depends on N and the columns only, not on where the scores came
from; a real 1M-sample analysis does not fit this 2-core machine's time budget.

    .venv/bin/python bench/bench_explorer.py                # 100k and 1M
    .venv/bin/python bench/bench_explorer.py --sizes 100000

Writes bench/results/bench_explorer.json and .md (with --ws-deflate: bench_explorer.ws_deflate.json and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CHROMIUM = os.environ.get("DQ_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"]
SIZES = [int(s) for s in os.environ.get("DQ_BENCH_SIZES", "100000,1000000").split(",")]
_results: list[dict] = []
# The test server (solara on uvicorn) compresses every websocket message (permessage-deflate);
# Jupyter Server (tornado) does not by default. Deflating 10 MB of float32 positions costs
# ~1.4 s of CPU here and saves ~20 %, so by default the bench measures without it, as in
# JupyterLab / Notebook 7; --ws-deflate measures with it.
WS_DEFLATE = os.environ.get("DQ_BENCH_WS_DEFLATE", "0") == "1"


@pytest.fixture(scope="session", autouse=True)
def websocket_deflate():
    """Before the test server starts: websocket compression off unless --ws-deflate."""
    if WS_DEFLATE:
        yield True
        return
    import uvicorn.config

    original = uvicorn.config.Config.__init__

    def no_deflate(self, *args, **kwargs):
        kwargs.setdefault("ws_per_message_deflate", False)
        original(self, *args, **kwargs)

    uvicorn.config.Config.__init__ = no_deflate
    yield False
    uvicorn.config.Config.__init__ = original


class TiledAnalysis:
    """A real analysis' samples repeated to ``n`` rows (new ids, jittered positions); what the Explorer reads."""

    def __init__(self, base, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        reps = -(-n // len(base.samples))
        s = pd.concat([base.samples] * reps, ignore_index=True).iloc[:n].copy()
        s.index = pd.RangeIndex(n, name="id")
        span = float(np.nanmax(s["x"]) - np.nanmin(s["x"]))
        s["x"] = s["x"] + rng.normal(0, span / 200, n)
        s["y"] = s["y"] + rng.normal(0, span / 200, n)
        self.samples, self.slices, self.spurious = s, base.slices, base.spurious
        self.thresholds, self.classes, self.dataset = dict(base.thresholds), base.classes, base.dataset
        self.layout_status, self.review, self._observers = "final", None, []

    def observe(self, cb):
        self._observers.append(cb)

    def set_threshold(self, column, value):
        self.thresholds[column] = value
        self.samples["is_" + column[: -len("_score")]] = self.samples[column] >= value
        for cb in self._observers:
            cb("flags")


def base_analysis(workdir):
    import dqwidgets as dq
    from dqwidgets.examples import load_fashion_mnist

    images, y, classes = load_fashion_mnist("train", n=10_000, seed=0)
    feats = images.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(y), -1).astype(np.float32)
    ds = dq.Dataset.from_arrays(feats, labels=np.array([classes[i] for i in y], dtype=object))
    return dq.analyze(ds, workdir=workdir, layout="pca", progress=False)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True, "args": ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1100}}


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    return base_analysis(tmp_path_factory.mktemp("work"))


def _wait(cond, timeout=60.0):
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("condition not met in time")
        time.sleep(0.002)
    return time.perf_counter()


@pytest.mark.parametrize("n", SIZES)
def test_explorer_speed(solara_test, page_session, base, n):
    from IPython.display import display

    import dqwidgets as dq

    page = page_session
    page.set_default_timeout(120_000)
    load_1min = round(os.getloadavg()[0], 2)  # the machine is shared: timings depend on what else runs
    an = TiledAnalysis(base, n)
    explorer = dq.Explorer(an)
    t0 = time.perf_counter()
    display(explorer)
    page.locator(".dqx-map[data-ready=true]").wait_for()
    first_draw = time.perf_counter() - t0
    page.locator(".dqx[data-ready=true]").wait_for()
    mapel = page.locator(".dqx-map")
    browser_draw_ms = int(mapel.get_attribute("data-first-draw-ms"))
    upload_and_frame_ms = int(mapel.get_attribute("data-draw-ms"))
    renderer = mapel.get_attribute("data-renderer")
    map_bytes = int(mapel.get_attribute("data-bytes"))
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    box = page.locator(".dqx-map canvas").bounding_box()
    # a real lasso: shift held, a closed polygon traced in small steps; the map selects on release
    corners = [(0.35, 0.35), (0.65, 0.35), (0.65, 0.65), (0.35, 0.65), (0.35, 0.35)]
    pts = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in corners]
    page.keyboard.down("Shift")
    page.mouse.move(*pts[0])
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*p, steps=12)
    t_up = time.perf_counter()
    page.mouse.up()
    page.keyboard.up("Shift")
    t_sel = _wait(lambda: explorer.selection_model.count > 0)
    page.locator(".dqx-grid-header", has_text="selected samples").wait_for()
    page.locator(".dqx-grid[data-ready=true]").wait_for()
    t_grid = time.perf_counter()
    selected = int(explorer.selection_model.count)
    if selected < n // 100:
        raise AssertionError(f"the lasso selected {selected} of {n} points: it fell back to a click, "
                             "so lasso timings would be meaningless")
    lasso_ms = mapel.get_attribute("data-lasso-ms")
    # Python -> browser: a selection set in the kernel reaches the map and refills the grid
    rows = np.flatnonzero(np.arange(n) % 3 == 0)
    t_py = time.perf_counter()
    explorer.selection_model.rows = rows
    page.locator(f".dqx-map[data-selected='{rows.size}']").wait_for()
    t_py_map = time.perf_counter()
    page.locator(f".dqx-grid[data-count='{rows.size}'][data-ready=true]").wait_for()
    t_py_grid = time.perf_counter()
    _results.append({
        "points": n, "first_draw_s": round(first_draw, 3), "browser_request_to_draw_s": browser_draw_ms / 1000,
        "lasso_to_python_s": round(t_sel - t_up, 3), "lasso_to_grid_s": round(t_grid - t_up, 3),
        "linked_views_after_python_s": round(t_grid - t_sel, 3), "selected": selected,
        "browser_lasso_hit_and_send_ms": lasso_ms, "browser_upload_and_first_frame_s": upload_and_frame_ms / 1000,
        "python_selection_to_map_s": round(t_py_map - t_py, 3), "python_selection_to_grid_s": round(t_py_grid - t_py, 3),
        "load_1min": load_1min, "renderer": renderer, "websocket_deflate": WS_DEFLATE,
        "map_bytes": map_bytes, "map_mb": round(map_bytes / 1e6, 2),
    })
    print(_results[-1], flush=True)


def notebook_growth(workdir: Path) -> dict:
    """Bytes a saved notebook (widget state stored) grows by per Explorer."""
    import nbformat
    from nbclient import NotebookClient

    setup = ("import numpy as np, dqwidgets as dq\n"
             "from dqwidgets.examples import load_fashion_mnist\n"
             "im, y, cl = load_fashion_mnist('train', n=2000, seed=0)\n"
             "f = im.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(y), -1).astype('float32')\n"
             f"an = dq.analyze(dq.Dataset.from_arrays(f, labels=y), workdir={str(workdir)!r}, layout='pca', progress=False)")
    sizes = []
    for k in (0, 1, 2):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(setup)] + [nbformat.v4.new_code_cell("dq.Explorer(an)") for _ in range(k)]
        NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True).execute()
        path = workdir / f"growth{k}.ipynb"
        nbformat.write(nb, path)
        sizes.append(path.stat().st_size)
    return {"notebook_bytes_0_1_2_explorers": sizes, "growth_per_explorer_bytes": [sizes[1] - sizes[0], sizes[2] - sizes[1]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--no-growth", action="store_true", help="skip the notebook-growth measurement")
    ap.add_argument("--ws-deflate", action="store_true",
                    help="keep the test server's websocket compression on (Jupyter Server has it off)")
    args = ap.parse_args()
    os.environ["DQ_BENCH_WS_DEFLATE"] = "1" if args.ws_deflate else "0"
    os.environ["DQ_BENCH_SIZES"] = args.sizes  # read by the parametrisation when pytest imports this file
    rc = pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", "-o", "testpaths=bench"])
    runs = [r for m in list(sys.modules.values()) if getattr(m, "__file__", None) == __file__
            and m is not sys.modules.get("__main__") for r in getattr(m, "_results", [])]
    bundle = ROOT / "dqwidgets" / "widgets" / "static" / "explorer.js"
    growth = {"growth_per_explorer_bytes": None}
    if not args.no_growth:
        with tempfile.TemporaryDirectory() as tmp:
            growth = notebook_growth(Path(tmp))
    out = {"machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}", "browser": CHROMIUM,
           "gl": "swiftshader (software)", "bundle_bytes": bundle.stat().st_size, "runs": runs, **growth}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "bench_explorer.ws_deflate" if args.ws_deflate else "bench_explorer"
    out["websocket_deflate"] = bool(args.ws_deflate)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    lines = ["| points | first draw (s) | lasso → Python (s) | selected | Python → grid (s) | lasso → grid (s) "
             "| Python selection → map / grid (s) | map MB | load (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['points']:,} | {r['first_draw_s']} | {r['lasso_to_python_s']} | {r['selected']:,} "
              f"| {r['linked_views_after_python_s']} | {r['lasso_to_grid_s']} "
              f"| {r['python_selection_to_map_s']} / {r['python_selection_to_grid_s']} | {r['map_mb']} | {r['load_1min']} |"
              for r in runs]
    lines += ["", f"bundle: {out['bundle_bytes']:,} bytes; notebook growth per Explorer: "
              f"{growth['growth_per_explorer_bytes']} bytes", f"targets at 1M: first draw <= 3 s, lasso -> Python <= 1.5 s, "
              "linked views <= 0.5 s, map <= 12 MB, growth < 1 MB"]
    lines.insert(0, f"websocket compression (permessage-deflate): {'on' if args.ws_deflate else 'off, as in Jupyter Server'}\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
