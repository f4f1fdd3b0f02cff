"""Browser tests: Debian chromium driven by Playwright through pytest-ipywidgets (solara 1.58.2).

With DQ_REQUIRE_BROWSER=1 (set by .ci/run) a missing chromium or JS bundle FAILS the tests
instead of skipping them, so CI cannot pass without running them.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DQ_CHROMIUM", "/usr/bin/chromium")
BUNDLE = Path(__file__).resolve().parents[2] / "dqwidgets" / "widgets" / "static" / "explorer.js"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium, or set DQ_CHROMIUM)"
    if not BUNDLE.exists():
        return f"the Explorer bundle {BUNDLE} is missing (run `make js`)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _browser_available():
    why = _missing()
    if why:
        if os.environ.get("DQ_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required (DQ_REQUIRE_BROWSER=1) but {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, pointed at Debian chromium with software GL."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1100}}
