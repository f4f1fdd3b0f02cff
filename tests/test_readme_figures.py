"""README figures come from bench/results/ (issue #13): every measured figure in README.md is a number
some result file holds (the rule and its two allowances, goals and benchmark inputs, are in
bench/check_readme_figures.py's docstring). Fails with the orphans, section by section."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_readme_figure_has_a_result_file():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "check_readme_figures.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"README figures that no file in bench/results/ holds:\n{run.stdout}{run.stderr}"
