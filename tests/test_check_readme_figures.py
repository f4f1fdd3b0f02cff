"""The README-figures checker (bench/check_readme_figures.py) on small made-up READMEs: what it extracts,
what it accepts as the source of a figure, and that it reports a figure no result file holds."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_readme_figures", ROOT / "bench" / "check_readme_figures.py")
checker = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = checker
spec.loader.exec_module(checker)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "bench" / "results").mkdir(parents=True)

    def make(readme, results, scripts=None):
        (tmp_path / "README.md").write_text(readme, encoding="utf-8")
        for name, text in results.items():
            (tmp_path / "bench" / "results" / name).write_text(
                text if isinstance(text, str) else json.dumps(text), encoding="utf-8")
        for name, text in (scripts or {}).items():
            (tmp_path / "bench" / name).write_text(text, encoding="utf-8")
        figures, orphans = checker.check(tmp_path / "README.md", tmp_path / "bench" / "results")
        return figures, [o.text for o in orphans]

    return make


def test_rounded_values_thousands_percent_and_bytes_match_their_file(repo):
    readme = ("## Benchmarks\n\n**Speed** (`bench/bench_x.py`): AUROC 0.946, 52 s for 1,234 images, "
              "75.6% fixed, 271 kB per notebook, 6.6× faster, 100k rows; F1 0.990-1.000 of best, AUROC -0.0097 "
              "on rotation-5 of notebook 01.\n")
    results = {"bench_x.json": {"auroc": 0.9457, "wall_s": 52.3, "n": 1234, "share": 0.75622,
                                "growth_bytes": 271340, "speedup": 6.58, "rows": 100000,
                                "f1_over_best": [0.9903, 1.0], "auroc_change": -0.00971}}
    figures, orphans = repo(readme, results)
    assert orphans == []
    assert [f.text for f in figures] == ["0.946", "52s", "1,234", "75.6%", "271kB", "6.6×", "100k", "0.990", "1.000",
                                         "0.0097"]      # not the 5 of rotation-5 nor the 01 of notebook 01


def test_a_figure_no_result_file_holds_is_an_orphan_with_its_line(repo, capsys, tmp_path):
    readme = ("# t\n\n## Benchmarks\n\n**Speed** (`bench/bench_x.py`): 0.32 s first draw,\n"
              "0.17 s lasso.\n")
    _, orphans = repo(readme, {"bench_x.md": "| first draw | 0.32 |\n| lasso | 0.159 |\n"})
    assert orphans == ["0.17s"]            # 0.159 rounds to 0.16, not 0.17
    rc = checker.main(["--readme", str(tmp_path / "README.md"), "--results", str(tmp_path / "bench" / "results")])
    out = capsys.readouterr().out
    assert rc == 1 and "README:6: '0.17s'" in out and "0.17 s lasso" in out


def test_a_figure_must_come_from_the_file_its_paragraph_cites(repo):
    readme = ("## Benchmarks\n\n**Quality** (`bench/results/bench_q.md`): F1 0.687.\n\n"
              "| case | F1 |\n|---|---|\n| a | 0.640 |\n")
    _, orphans = repo(readme, {"bench_q.md": "F1 0.640\n", "bench_other.md": "F1 0.687\n"})
    assert orphans == ["0.687"]            # held by another benchmark's file only


def test_outside_measurements_only_numbers_with_units_or_metrics_count(repo):
    readme = ("## What it does\n\nk=15 neighbours, the 99th percentile, 3 folds; it took 12.5 s "
              "and reaches AUROC 0.97 on EfficientNet-Lite0 with Python ≥ 3.10.\n\n"
              "```\nx = 123.4 s\n```\n")
    figures, orphans = repo(readme, {"bench_a.md": "nothing\n"})
    assert sorted(orphans) == ["0.97", "12.5s"]
    assert all(f.text not in ("15", "99", "3", "0", "3.10", "123.4s") for f in figures)


def test_goal_marker_is_narrow_and_script_inputs_are_exact(repo):
    readme = ("## Benchmarks\n\n**Reviewer** (`bench/bench_r.py`): screens of 24 cards, 2% per drag; "
              "the cost goal (≤ 1.3 decisions) is met, the F1 is 0.946 of the best (goal 0.95), "
              "the 300 texts/s goal is missed; 25 cards cost 7.7 s.\n")
    results = {"bench_r.json": {"f1_over_best": 0.9457}}
    scripts = {"bench_r.py": "SCREEN = 24\nSTEP = 0.02\nTIME = 7.71\n"}
    figures, orphans = repo(readme, results, scripts)
    goals = {f.text for f in figures if f.goal}
    assert goals == {"1.3", "0.95", "300texts/s"}
    assert {f.text: f.input_of for f in figures if f.input_of} == {"24": "bench/bench_r.py",
                                                                  "2%": "bench/bench_r.py"}
    assert sorted(orphans) == ["25", "7.7s"]      # a literal 7.71 is not a rounded input
