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

``--lab`` measures in a real JupyterLab instead (``jupyter lab`` subprocess, Debian chromium with
software GL, the notebooks run from the Run menu), the Explorer beside jupyter-scatter in the same
run, on the same tiled samples and with the same lasso (the selection tool on, a plain drag):

- lasso release -> selection in the kernel: from just before the mouse button is released (this
  process' clock) to the kernel's observer of the selection trait firing (the kernel's clock; same
  machine). For the Explorer the observer runs after the Explorer's own (which recomputes the grid's
  rows), so this includes that;
- lasso release -> grid updated (Explorer only; jupyter-scatter has no grid): until the grid's
  header says "selected samples" and its cells are drawn;
- the time the lasso took to draw (its pointer moves), and the 1-minute load average.

    .venv/bin/python bench/bench_explorer.py --lab --sizes 1000000

Writes bench/results/bench_explorer_lab.json and .md.
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

from dqwidgets.analysis import Analysis

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


class TiledAnalysis(Analysis):
    """A real analysis' samples repeated to ``n`` rows (new ids, jittered positions); what the Explorer reads.

    An :class:`~dqwidgets.Analysis` (the Explorer accepts nothing else) whose samples are tiled; the
    features, graph and flag rules stay the base's (the Explorer reads none of them), so moving a
    threshold re-flags by score alone here."""

    def __init__(self, base, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        reps = -(-n // len(base.samples))
        s = pd.concat([base.samples] * reps, ignore_index=True).iloc[:n].copy()
        s.index = pd.RangeIndex(n, name="id")
        span = float(np.nanmax(s["x"]) - np.nanmin(s["x"]))
        s["x"] = s["x"] + rng.normal(0, span / 200, n)
        s["y"] = s["y"] + rng.normal(0, span / 200, n)
        super().__init__(base.dataset, s, slices=base.slices, spurious=base.spurious, drift=base.drift,
                         features=base.features, valid=np.ones(n, dtype=bool), graph=base.graph, pred_probs=None,
                         classes=base.classes, context=base.context, calibration=base.calibration,
                         workdir=Path(tempfile.mkdtemp(prefix="dq-bench-")), info=dict(base.info))
        self.thresholds = dict(base.thresholds)
        self.layout_status = "final"

    def set_threshold(self, column, value):
        self.thresholds[column] = value
        self.samples["is_" + column[: -len("_score")]] = self.samples[column] >= value
        self._notify("flags")


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


LAB_BUILD = """\
import tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
import dqwidgets as dq
from dqwidgets.analysis import Analysis
{sources}
an = TiledAnalysis(base_analysis("work"), {n})
an.samples[["x", "y", "label"]].to_parquet("samples_{n}.parquet")
"""
# each time a selection reaches the kernel: (kernel clock, selected) appended to selection_times.jsonl,
# which the bench reads from its own process (asking the kernel through the notebook would compete
# with the widget's own messages)
RECORD = """\
import json
def _record(selected):
    with open("selection_times.jsonl", "a") as f:
        f.write(json.dumps([time.time(), int(selected)]) + "\\n")
"""
LAB_EXPLORER = RECORD + """\
explorer = dq.Explorer(an)
explorer.selection_model.observe(lambda c: _record(explorer.selection_model.count), names="data")
explorer
"""
LAB_JSCATTER = """\
import time, numpy as np, pandas as pd
import jscatter
""" + RECORD + """\
df = pd.read_parquet("samples_{n}.parquet")
df["label"] = df["label"].astype("category")
sc = jscatter.Scatter(data=df, x="x", y="y", color_by="label", height=420)
sc.mouse("lasso")  # as the Explorer's lasso tool: a plain drag draws the lasso
sc.widget.observe(lambda c: _record(0 if c["new"] is None else len(c["new"])), names="selection")
sc.show()
"""
LASSO = [(0.35, 0.35), (0.65, 0.35), (0.65, 0.65), (0.35, 0.65)]
LAB_SELECTION_WAIT_S = 300
LASSO_STEPS = 4  # pointer moves per side: jupyter-scatter redraws the whole plot on each one


def _canvas_drawn(page, canvas, timeout_s: float) -> float:
    """Wait until the canvas shows points (its screenshot is not one flat colour); when, by this clock."""
    from PIL import Image
    import io

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shot = Image.open(io.BytesIO(canvas.screenshot())).convert("L")
        lo, hi = shot.getextrema()
        if hi - lo > 40:
            return time.time()
        page.wait_for_timeout(250)  # a screenshot per poll; the canvas draws in its own time
    raise TimeoutError(f"the canvas showed no points within {timeout_s:.0f} s")


def _lab_lasso(page, box) -> tuple[float, float]:
    """A lasso by plain drag over the middle of ``box``; (drawing seconds, release time by time.time())."""
    pts = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in LASSO]
    t0 = time.time()
    page.mouse.move(*pts[0])
    page.mouse.down()
    # back along the last side, released short of the start: a release on the press point would
    # read as a click to jupyter-scatter (it then selects the one point under it)
    end = (pts[-1][0] + 0.7 * (pts[0][0] - pts[-1][0]), pts[-1][1] + 0.7 * (pts[0][1] - pts[-1][1]))
    for p in pts[1:] + [end]:
        page.mouse.move(*p, steps=LASSO_STEPS)
    t_up = time.time()
    page.mouse.up()
    return t_up - t0, t_up


def _lab_measure(browser, server, n: int, tool: str) -> dict:
    import inspect

    from jupyter_harness import KERNEL_RUN_S, PROBE, notebook, open_page, run_all_cells

    sources = "\n".join(inspect.getsource(f) for f in (TiledAnalysis, base_analysis))
    if tool == "dqwidgets":
        cells = [LAB_BUILD.format(sources=sources, n=n), PROBE, LAB_EXPLORER]
    else:
        cells = [f"# the samples the Explorer's notebook wrote: samples_{n}.parquet", PROBE, LAB_JSCATTER.format(n=n)]
    nb = notebook(server.root / f"bench_{tool.replace('-', '_')}_{n}.ipynb", cells, f"{tool} at {n:,} points")
    # a workspace of its own: JupyterLab would otherwise reopen the previous notebook beside this one
    w = open_page(browser, server, f"/lab/workspaces/{nb.stem}/tree/{nb.name}")
    page, row = w.page, {"tool": tool, "points": n, "load_1min_start": round(os.getloadavg()[0], 2)}
    (server.root / "selection_times.jsonl").unlink(missing_ok=True)
    timeout = KERNEL_RUN_S * 6
    try:
        run_all_cells(w)
        t_run = time.time()
        if tool == "dqwidgets":
            w.wait(".dqx-map[data-ready=true]", "the Explorer's map", timeout)
            w.wait(".dqx[data-ready=true]", "the Explorer", timeout)
            canvas = page.locator(".dqx-map canvas").first
            row["renderer"] = page.locator(".dqx-map").get_attribute("data-renderer")
            row["browser_request_to_draw_s"] = int(page.locator(".dqx-map").get_attribute("data-first-draw-ms")) / 1000
            page.locator(".dqx-tool[data-tool=lasso]").click()
            w.wait(".dqx-map[data-tool=lasso]", "the lasso tool", 60, state="attached")
        else:
            w.wait(".jp-Notebook .jp-CodeCell >> nth=2 >> canvas", "jupyter-scatter's canvas", timeout)
            canvases = page.locator(".jp-Notebook .jp-CodeCell >> nth=2 >> canvas")
            areas = [(b["width"] * b["height"]) if (b := canvases.nth(i).bounding_box()) else 0
                     for i in range(canvases.count())]
            row["canvases"] = len(areas)
            canvas = canvases.nth(int(np.argmax(areas)))  # the plot, not a legend or colour bar
            row["run_all_to_canvas_s"] = round(time.time() - t_run, 2)
            _canvas_drawn(page, canvas, timeout)
        row["run_all_to_drawn_s"] = round(time.time() - t_run, 2)
        row["load_1min_lasso"] = round(os.getloadavg()[0], 2)
        drawing_s, t_up = _lab_lasso(page, canvas.bounding_box())
        row["lasso_drawing_s"] = round(drawing_s, 2)
        row["pointer_moves"] = 4 * LASSO_STEPS
        if tool == "dqwidgets":
            w.wait(".dqx-grid-header:has-text('selected samples')", "the grid after the lasso", timeout)
            w.wait(".dqx-grid[data-ready=true]", "the grid's cells", timeout)
            row["lasso_to_grid_s"] = round(time.time() - t_up, 3)
        record = server.root / "selection_times.jsonl"
        deadline = time.monotonic() + LAB_SELECTION_WAIT_S
        times: list = []
        while not times and time.monotonic() < deadline:  # the kernel's own record of when it arrived
            if record.exists():
                times = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
            if not times:
                time.sleep(0.05)
        time.sleep(2)  # a later event (a click after the lasso) would land here too; read them all
        times = [json.loads(line) for line in record.read_text().splitlines() if line.strip()] if times else []
        if not times:
            raise AssertionError(f"{tool}: the lasso's selection never reached the kernel\n" + w.report())
        row["kernel_selection_events"] = [(round(t - t_up, 3), k) for t, k in times]
        t_kernel, selected = max((e for e in times if e[0] >= t_up), key=lambda e: e[1], default=times[-1])
        row["lasso_to_python_s"] = round(t_kernel - t_up, 3)
        row["selected"] = selected
        if selected < n // 100:
            raise AssertionError(f"{tool}: the lasso selected {selected} of {n} points; the timing would be meaningless")
        return row
    except Exception as e:
        raise RuntimeError(f"{e}\n(measured so far: {row})") from e
    finally:
        page.context.close()
        server.shutdown_kernels()


def _write_lab_results(rows: list[dict], errors: list[dict]) -> None:
    """bench_explorer_lab.json and .md (written after every measurement, so a long run leaves what it had)."""
    import jupyterlab

    try:
        from importlib.metadata import version
        jscatter_version = version("jupyter-scatter")
    except Exception:
        jscatter_version = None
    out = {"machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}", "browser": CHROMIUM,
           "gl": "swiftshader (software)", "jupyterlab": jupyterlab.__version__, "jupyter_scatter": jscatter_version,
           "shared_machine_note": "2 cores shared with other jobs: see the load averages per row",
           "runs": rows, "errors": errors}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_explorer_lab.json").write_text(json.dumps(out, indent=1))
    lines = ["Real JupyterLab " + out["jupyterlab"] + ", Debian chromium, software GL (SwiftShader); "
             f"jupyter-scatter {jscatter_version}; the same samples, the same lasso (tool on, plain drag, "
             f"{4 * LASSO_STEPS} pointer moves).", "",
             "| widget | points | lasso release → selection in kernel (s) | → grid updated (s) | selected "
             "| lasso drawing (s) | run all → drawn (s) | load (1 min) |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['tool']} | {r['points']:,} | {r['lasso_to_python_s']} | {r.get('lasso_to_grid_s', '—')} "
              f"| {r['selected']:,} | {r['lasso_drawing_s']} | {r['run_all_to_drawn_s']} | {r['load_1min_lasso']} |"
              for r in rows]
    lines += [f"| {e['tool']} | {e['points']:,} | failed: {e['error'].splitlines()[0][:160]} | | | | | |" for e in errors]
    lines += ["", "goals at 1M (Explorer): lasso release → selection in the kernel ≤ 1 s, → grid updated ≤ 1.5 s"]
    (RESULTS / "bench_explorer_lab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def lab_main(sizes: list[int], tools: list[str]) -> int:
    """Both widgets in one real JupyterLab server and one chromium, one notebook (and kernel) each."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from jupyter_harness import SERVER_START_S, JupyterServer

    rows, errors = [], []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        root, home = Path(tmp) / "root", Path(tmp) / "home"
        root.mkdir()
        home.mkdir()
        server = JupyterServer(root, home)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            server.wait_started(SERVER_START_S * 2)
            for n in sizes:
                for tool in tools:
                    try:
                        rows.append(_lab_measure(browser, server, n, tool))
                    except Exception as e:  # recorded, and the other widget still measured
                        errors.append({"tool": tool, "points": n, "error": str(e)[:3000]})
                    print(rows[-1] if rows and rows[-1]["tool"] == tool else errors[-1], flush=True)
                    _write_lab_results(rows, errors)
        finally:
            browser.close()
            server.stop()
    _write_lab_results(rows, errors)
    return 1 if errors else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--lab", action="store_true",
                    help="measure in a real JupyterLab, beside jupyter-scatter (bench_explorer_lab.json/.md)")
    ap.add_argument("--tools", default="dqwidgets,jupyter-scatter", help="with --lab: which widgets to measure")
    ap.add_argument("--no-growth", action="store_true", help="skip the notebook-growth measurement")
    ap.add_argument("--ws-deflate", action="store_true",
                    help="keep the test server's websocket compression on (Jupyter Server has it off)")
    args = ap.parse_args()
    if args.lab:
        return lab_main([int(x) for x in args.sizes.split(",")], args.tools.split(","))
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
