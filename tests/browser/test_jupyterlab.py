"""The Explorer in a real JupyterLab 4 and Notebook 7 server, in Debian chromium.

The other browser tests render the widget in the pytest-ipywidgets (solara) harness; these open a
notebook the way a user does: ``jupyter lab`` runs as a subprocess on a free local port, chromium
opens ``/lab/tree/<notebook>``, runs every cell from the Run menu, waits for the Explorer's
``data-ready`` attributes, presses a digit on a grid sample and reads the review journal (SQLite,
written by the kernel) from this process. Notebook 7 gets the same open-run-draw check.

No sleeps: every wait is bounded and, when it runs out, fails with the browser console, the
notebook's error outputs and the tail of the server log.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "explorer-jupyterlab.png"
JUPYTER = Path(sys.executable).parent / "jupyter"
SERVER_START_S = 60
KERNEL_RUN_S = 150   # kernel start, imports (torch), a 300-sample analysis and the first draw
UI_S = 60            # the JupyterLab / Notebook 7 front end loading its extensions

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
an = dq.analyze(ds, embedder=pooled_pixels, workdir="work", layout="pca", progress=False)
"""
SHOW_EXPLORER = "explorer = dq.Explorer(an)\nexplorer"


def _notebook(path: Path) -> Path:
    cells = [{"cell_type": "markdown", "id": "intro", "metadata": {},
              "source": "# dqwidgets Explorer on 300 Fashion-MNIST images"}]
    for i, src in enumerate((BUILD_ANALYSIS, SHOW_EXPLORER)):
        cells.append({"cell_type": "code", "id": f"code{i}", "metadata": {}, "execution_count": None,
                      "outputs": [], "source": src})
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                      "language": "python"},
                       "language_info": {"name": "python"}}}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """``jupyter lab`` in a subprocess with its own config, data and root folders; no network."""

    def __init__(self, root: Path, home: Path):
        self.root, self.port, self.token = root, _free_port(), uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        config = home / "config"
        # no "fetch news?" prompt and no update check (both would reach out to the internet)
        notification = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
               "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        self.log_path = home / "server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(JUPYTER), "lab", "--no-browser", f"--port={self.port}", "--port-retries=0",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.allow_root=True",  # CI containers run as root
             # nothing that reaches the internet: news feed, update check, PyPI extension search
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"],
            cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                try:  # not up yet: wait a moment on the process itself (returns early if it dies)
                    self.proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        raise AssertionError(f"jupyter lab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def shutdown_kernels(self) -> None:
        for session in self.api("/api/sessions") or []:
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(line[:300] for line in text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


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


class Watched:
    """A page whose console and errors are kept, and whose waits fail with everything that explains them."""

    def __init__(self, page, server: JupyterServer):
        self.page, self.server, self.console = page, server, []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def wait(self, selector: str, what: str, timeout_s: float, state: str = "visible"):
        loc = self.page.locator(selector).first
        try:
            loc.wait_for(state=state, timeout=timeout_s * 1000)
        except Exception as e:  # playwright's TimeoutError, or the page closing under us
            raise AssertionError(f"{what}: {selector!r} not {state} within {timeout_s:.0f} s ({type(e).__name__})\n"
                                 + self.report()) from None
        return loc

    def report(self) -> str:
        try:
            outputs = self.page.locator(".jp-OutputArea-output").all_inner_texts()
        except Exception as e:
            outputs = [f"(could not read outputs: {e})"]
        try:
            dialogs = self.page.locator(".jp-Dialog").all_inner_texts()
        except Exception:
            dialogs = []
        return ("--- open dialogs ---\n" + "\n".join(dialogs)
                + "\n--- notebook outputs ---\n" + "\n".join(o[-1500:] for o in outputs)
                + "\n--- browser console (last 40) ---\n" + "\n".join(self.console[-40:])
                + "\n--- jupyter server log (tail) ---\n" + self.server.log_tail())


def _run_all_cells(w: Watched) -> None:
    """Run > Run All Cells, from the menu bar, as a user would (same menu in JupyterLab and Notebook 7)."""
    w.wait(".jp-Notebook .jp-CodeCell", "the notebook's cells", UI_S)
    # the kernel must be connected first, or the run opens a "Select Kernel" dialog; the indicator
    # says "idle" while the toolbar still shows "No Kernel", so wait for both the name and the status
    w.wait(".jp-Toolbar:has(.jp-KernelName .jp-ToolbarButtonComponent-label:text-matches('^Python'))"
           ":has(.jp-Notebook-ExecutionIndicator[data-status=idle])", "the kernel (connected and idle)", KERNEL_RUN_S)
    w.page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    w.wait(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))", "Run > Run All Cells", UI_S).click()


def _wait_explorer_drawn(w: Watched) -> None:
    w.wait(".dqx[data-ready=true]", "the Explorer", KERNEL_RUN_S)
    w.wait(".dqx-map[data-ready=true]", "the map's first draw", UI_S)
    w.wait(".dqx-grid[data-ready=true] .dqx-cell", "the grid's samples", UI_S)


def _open(browser, server: JupyterServer, path: str) -> Watched:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    w = Watched(context.new_page(), server)
    w.page.goto(f"{server.url}{path}?token={server.token}", timeout=UI_S * 1000)
    return w


def _legend_colours(page) -> dict[str, str]:
    return dict(page.locator(".dqx-legend-item").evaluate_all(
        "items => items.map(i => [i.textContent, i.querySelector('.dqx-dot').style.background])"))


def _journal_rows(root: Path) -> list[tuple]:
    journals = sorted(root.glob("work/*/journal.sqlite"))
    assert len(journals) == 1, f"expected one review journal under {root / 'work'}, found {journals}"
    with sqlite3.connect(f"file:{journals[0]}?mode=ro", uri=True) as db:
        return db.execute("SELECT action, ids, new FROM actions ORDER BY seq").fetchall()


def test_explorer_in_jupyterlab_draws_and_a_digit_relabels_into_the_journal(jupyter, browser):
    nb = _notebook(jupyter.root / "explorer_lab.ipynb")
    w = _open(browser, jupyter, f"/lab/tree/{nb.name}")
    page = w.page
    try:
        _run_all_cells(w)
        _wait_explorer_drawn(w)
        root = page.locator(".dqx")
        assert root.count() == 1
        cells_before = page.locator(".jp-Notebook .jp-Cell").count()
        assert page.locator(".dqx-map canvas").first.bounding_box()["width"] > 100
        shown = int(page.locator(".dqx-grid").get_attribute("data-count"))
        assert shown > 0 and page.locator(".dqx-cell img.dqx-thumb").count() > 0

        legend_before = _legend_colours(page)
        assert {"fine", "label issue"} <= set(legend_before), legend_before
        # the digit names the class in the review panel's dropdown ("3: Dress")
        class3 = page.locator(".dqx-relabel-select option").nth(3).get_attribute("value")
        sample = page.locator(".dqx-cell").first
        sample_id = sample.get_attribute("data-id")
        sample.click()
        page.keyboard.press("3")
        w.wait(".dqx-review[data-actions='1'][data-ready=true]", "the relabel's answer from the kernel", UI_S)
        rows = _journal_rows(jupyter.root)
        assert len(rows) == 1, rows
        action, ids, new = rows[0]
        assert action == "relabel" and [str(i) for i in json.loads(ids)] == [sample_id] and json.loads(new) == class3

        # `d d` is JupyterLab's "delete cell" and `z` its "undo cell operation": in the Explorer they
        # drop the next two samples and undo the last drop, and the notebook is left alone
        for n, key in enumerate("ddz", start=2):
            page.keyboard.press(key)
            w.wait(f".dqx-review[data-actions='{n}'][data-ready=true]", f"the kernel's answer to {key!r}", UI_S)
        assert [r[0] for r in _journal_rows(jupyter.root)] == ["relabel", "drop", "drop", "undo"]
        # the map is recoloured (the kernel's "recolour" came before its answer to the last key):
        # the dropped sample has its own colour and every issue keeps the colour it had
        w.wait(".dqx-counts:has-text('1 dropped')", "the toolbar's count of dropped samples", UI_S)
        w.wait(".dqx-map[data-ready=true]", "the map recoloured after the drops", UI_S)
        legend_after = _legend_colours(page)
        assert "dropped" in legend_after, legend_after
        assert {k: legend_after.get(k) for k in legend_before} == legend_before, (legend_before, legend_after)

        # JupyterLab did not also take the keys as notebook shortcuts (1-6 turn a cell into a heading)
        assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
        assert page.locator(".jp-Notebook .jp-CodeCell").count() == 2
        assert page.locator(".dqx").count() == 1, "the Explorer's output vanished after the key press"

        SCREENSHOT.parent.mkdir(exist_ok=True)
        root.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT))
    finally:
        page.context.close()
        jupyter.shutdown_kernels()


def test_explorer_in_notebook7_opens_and_draws(jupyter, browser):
    try:
        import notebook
    except ImportError:
        notebook = None
    if notebook is None or int(notebook.__version__.split(".")[0]) < 7:
        _unavailable("Notebook 7 is not installed (pip install 'notebook>=7', in the dev extra)")
    nb = _notebook(jupyter.root / "explorer_nb7.ipynb")
    w = _open(browser, jupyter, "/tree")
    try:
        w.wait(f".jp-DirListing-item[title*='{nb.name}']", "the notebook in Notebook 7's file tree", UI_S,
               state="attached")
        w.page.goto(f"{jupyter.url}/notebooks/{nb.name}", timeout=UI_S * 1000)
        w.wait("#main-panel .jp-NotebookPanel", "Notebook 7's notebook view", UI_S)
        _run_all_cells(w)
        _wait_explorer_drawn(w)
        assert w.page.locator(".dqx").count() == 1
        assert w.page.locator(".dqx-map canvas").first.bounding_box()["width"] > 100
        assert int(w.page.locator(".dqx-grid").get_attribute("data-count")) > 0
        assert w.page.locator(".dqx-cell img.dqx-thumb").count() > 0
    finally:
        w.page.context.close()
        jupyter.shutdown_kernels()
