"""A real Jupyter server and chromium page for the browser tests and bench/bench_explorer.py --lab.

``jupyter lab`` runs as a subprocess on a free local port with its own config, data and root
folders and nothing that reaches the internet; :class:`Watched` keeps the page's console so a wait
that runs out fails with everything that explains it; :class:`Kernel` asks the notebook's kernel by
re-running a harness cell (``PROBE``) that runs ``probe_cmd.py`` and writes ``probe_out.json``.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

JUPYTER = Path(sys.executable).parent / "jupyter"
SERVER_START_S = 60
KERNEL_RUN_S = 150   # kernel start, imports (torch), a 300-sample analysis and the first draw
UI_S = 60            # the JupyterLab / Notebook 7 front end loading its extensions

# the test's window into the kernel: re-run this cell to run probe_cmd.py and read probe_out.json
PROBE = """\
# test harness: runs probe_cmd.py in this kernel and writes what it found to probe_out.json
import json, pathlib, traceback
_probe_n = globals().get("_probe_n", 0) + 1
_out = {"n": _probe_n}
try:
    if pathlib.Path("probe_cmd.py").exists():
        exec(pathlib.Path("probe_cmd.py").read_text())
except Exception:
    _out["error"] = traceback.format_exc()
pathlib.Path("probe_out.json").write_text(json.dumps(_out, default=str))
print(f"probe {_probe_n}")
"""


def notebook(path: Path, sources: list[str], title: str = "dqwidgets") -> Path:
    """Write a notebook of one markdown title and these code cells."""
    cells = [{"cell_type": "markdown", "id": "intro", "metadata": {}, "source": f"# {title}"}]
    for i, src in enumerate(sources):
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
        # every cell stays in the page (the harness cell is clicked while the Explorer is in view)
        tracker = config / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}), encoding="utf-8")
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


def run_all_cells(w: Watched) -> None:
    """Run > Run All Cells, from the menu bar, as a user would (same menu in JupyterLab and Notebook 7)."""
    w.wait(".jp-Notebook .jp-CodeCell", "the notebook's cells", UI_S)
    # the kernel must be connected first, or the run opens a "Select Kernel" dialog; the indicator
    # says "idle" while the toolbar still shows "No Kernel", so wait for both the name and the status
    w.wait(".jp-Toolbar:has(.jp-KernelName .jp-ToolbarButtonComponent-label:text-matches('^Python'))"
           ":has(.jp-Notebook-ExecutionIndicator[data-status=idle])", "the kernel (connected and idle)", KERNEL_RUN_S)
    w.page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    w.wait(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))", "Run > Run All Cells", UI_S).click()


def wait_explorer_drawn(w: Watched) -> None:
    w.wait(".dqx[data-ready=true]", "the Explorer", KERNEL_RUN_S)
    w.wait(".dqx-map[data-ready=true]", "the map's first draw", UI_S)
    w.wait(".dqx-grid[data-ready=true] .dqx-cell", "the grid's samples", UI_S)


def open_page(browser, server: JupyterServer, path: str) -> Watched:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    w = Watched(context.new_page(), server)
    w.page.goto(f"{server.url}{path}?token={server.token}", timeout=UI_S * 1000)
    return w


class Kernel:
    """A notebook open in the page, and a way to ask its kernel: re-run the harness cell (PROBE)."""

    def __init__(self, w: Watched, server: JupyterServer, probe_cell: int = 1):
        self.w, self.page, self.server, self.probes, self.probe_cell = w, w.page, server, 0, probe_cell

    def kernel(self, code: str = "") -> dict:
        """Run ``code`` in the notebook's kernel by re-running the harness cell; what it put in ``_out``."""
        (self.server.root / "probe_cmd.py").write_text(code, encoding="utf-8")
        cell = self.page.locator(".jp-Notebook .jp-CodeCell").nth(self.probe_cell)
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Control+Enter")
        self.probes += 1
        n = self.probes + 1  # Run All ran it once
        loc = cell.locator(".jp-OutputArea-output", has_text=re.compile(rf"\bprobe {n}\b"))
        try:
            loc.wait_for(state="attached", timeout=KERNEL_RUN_S * 1000)
        except Exception:
            raise AssertionError(f"the harness cell did not answer (probe {n})\n" + self.w.report()) from None
        out = json.loads((self.server.root / "probe_out.json").read_text(encoding="utf-8"))
        assert out["n"] == n and "error" not in out, out.get("error", out)
        return out
