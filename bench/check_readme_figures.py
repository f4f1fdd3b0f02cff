"""Every measured figure in README.md is a number some file in bench/results/ holds (issue #13).

    python bench/check_readme_figures.py            # prints each orphan with its README line; exit 1 if any
    python bench/check_readme_figures.py --verbose  # also where every figure was found

What counts as a figure (the rule; stdlib only, so it runs anywhere):

1. The README is read block by block (a paragraph, a list item, a table row). Fenced code, `inline code`,
   link and image targets, image alt texts and HTML comments are left out.
2. Measurement blocks: every block of the "## Benchmarks" section, and in any other section every block
   from the first one that names a benchmark (a ``bench/...`` path or a ``bench_*.md`` / ``.json`` result
   file) down to the next heading. In a measurement block every number is a figure: results, and also the
   inputs the result depends on (sample counts, noise rates, sizes, load averages), which the result files
   record too.
3. Outside measurement blocks a number is a figure when it carries a unit of measurement (s, ms, min, kB,
   MB, GB, images/s, texts/s, img/s, a ratio such as 6.6x or 6.6×, a percentage) or follows a metric name
   (AUROC, F1, precision, recall, accuracy, trustworthiness).
4. Never figures: digits inside a name (EfficientNet-Lite0, MiniLM-L6-v2, notebook 01, rotation-5, c+1),
   version numbers (``Python ≥ 3.10``, ``jupyter-scatter 1.0.1``). Both ends of a range (0.990-1.000,
   17–18) and both sides of a dimension (224×224) are figures.

Where a figure must be found: in the result files its paragraph cites (``bench/bench_quality.py`` or
``bench_quality.md`` -> bench/results/bench_quality*.{md,json}; a bold-lead paragraph of "## Benchmarks"
starts afresh, the paragraphs and tables after it add to what it cites); a paragraph that cites nothing
(or only files that do not exist) is checked against every file. A figure matches a number in such a file
when the file's number, rounded to the README's decimals, equals it (0.9457 -> 0.946, 52.3 -> 52; '1,234'
and '1234' are the same number); a percentage also matches a fraction (75.6% <- 0.7562), kB / MB / GB also
match a count of bytes, ``100k`` / ``1M`` mean 100,000 / 1,000,000. Signs are ignored. A number you
derived by hand (a ratio or a difference of two file numbers) is not in any file: write the file's
numbers, or have the benchmark write the derived one.

Two allowances, both listed by --verbose, nothing else is exempt (a measurement is never whitelisted):
- a goal: the word goal(s), target(s) or budget stands right before the number (``goal 0.95``,
  ``goal (≤ 1.3 ...``, ``goals ≤ 30 s and ≥ 2,000 images/s``: numbers joined by "and"/"or" continue the
  list) or right after it and its unit (``the 300 texts/s goal``, ``the 10× goal``, ``the 3-point
  target``);
- an input of the benchmark the paragraph cites: a numeric literal its bench/<name>.py code sets, equal
  exactly (``SCREEN = 24`` -> "24 cards", ``SLICE_SHARE = 0.9`` -> "90%"; strings and docstrings do not
  count).

Known limit: a match says the number is in a cited file, not that it is the right cell; small integers
(1, 2, 10) are in almost every file.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results"

BENCHMARK_SECTION = "benchmarks"
SOURCE = re.compile(r"bench/|bench_[\w.]+\.(?:md|json)\b")
GOAL_WORDS = {"goal", "goals", "target", "targets", "budget"}
METRIC_WORDS = {"auroc", "f1", "precision", "recall", "accuracy", "trustworthiness"}
BYTE_UNITS = {"kb": (1e3, 2 ** 10), "mb": (1e6, 2 ** 20), "gb": (1e9, 2 ** 30)}
UNIT = re.compile(
    r"\s?(?:images/s|texts/s|img/s|ms|min|s|kB|KB|MB|GB|[×x](?!\s*\d)|%|-point|-fold|\s?points)(?![\w/])")
# A number in README prose: optional thousands commas, decimals, a k / M multiplier, a percent sign.
NUMBER = re.compile(r"(?<![\w./=])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
                    r"(?P<mult>[kM](?![a-zA-Z]))?(?P<pct>%)?")
FILE_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Figure:
    text: str           # as written in the README
    value: float        # magnitude, multiplier applied
    decimals: int
    percent: bool
    unit: str
    line: int           # README line number (1-based)
    source_line: str
    goal: bool = False
    input_of: str = ''   # the cited benchmark script that sets this number (an input, not a result)
    sources: list = field(default_factory=list)   # result-file stems its paragraph cites
    found_in: list = field(default_factory=list)


# ---------------------------------------------------------------- README side

def blocks(text: str):
    """(section, first line number, [(line number, line)]) per paragraph, list item or table row."""
    section, cur, fenced = "", [], False
    out = []

    def flush():
        if cur:
            out.append((section, cur[0][0], list(cur)))
            cur.clear()

    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if stripped.startswith("#"):
            flush()
            section = stripped.lstrip("#").strip().lower() if stripped.startswith("## ") else section
            out.append(("#heading", i, [(i, line)]))
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith("|") or re.match(r"[-*] |\d+\. ", stripped):
            flush()
            cur.append((i, line))
            if stripped.startswith("|"):
                flush()
            continue
        cur.append((i, line))
    flush()
    return out


def clean(line: str) -> str:
    """The prose of a line: inline code, HTML comments, images and link targets blanked (kept same length)."""
    def blank(m):
        return " " * len(m.group(0))
    line = re.sub(r"<!--.*?-->", blank, line)
    line = re.sub(r"`[^`]*`", blank, line)
    line = re.sub(r"!\[[^\]]*\]\([^)]*\)", blank, line)
    line = re.sub(r"(?<=\])\([^)]*\)", blank, line)
    return line


def _words_before(s: str, n: int):
    return re.findall(r"[A-Za-z][\w'-]*|\d[\d,.]*", s)[-n:]


def _is_goal(prose: str, start: int, end: int) -> bool:
    before = prose[:start]
    # right before: "goal 0.95", "goal (≤ 1.3", "goals ≤ 30 s and ≥ 2,000"
    m = re.search(r"([A-Za-z]+)\s*\(?\s*[≤≥<>~]?\s*$", before)
    if m and m.group(1).lower() in GOAL_WORDS:
        return True
    # continuing a list of goals: "... goals ≤ 30 s and ≥ 2,000"
    m = re.search(r"([A-Za-z]+)\s*\(?\s*[≤≥<>~]?\s*[\d.,]+\s?\S*\s+(?:and|or)\s+[≤≥<>~]?\s*$", before)
    if m and m.group(1).lower() in GOAL_WORDS:
        return True
    # right after, with its unit: "the 300 texts/s goal", "the 10× goal", "the 3-point target"
    after = prose[end:]
    m = re.match(r"(?:\s?(?:images/s|texts/s|img/s|ms|s|kB|MB|GB|[×x]|%|-point|-fold|points))?\s+([A-Za-z]+)", after)
    return bool(m and m.group(1).lower() in GOAL_WORDS)


def _is_name(prose: str, start: int, end: int) -> bool:
    """Digits that belong to a name or a version: 'Lite0', 'L6-v2', 'rotation-5', 'Python ≥ 3.10'."""
    left = prose[:start]
    if re.search(r"[A-Za-z_][-+]?$", left):
        return True
    if re.match(r"[A-Za-z_]", prose[end:end + 1]) and not UNIT.match(prose[end:]):
        return True            # "01-images", "3D", "2nd"
    if re.fullmatch(r"0\d+", prose[start:end]):
        return True            # "notebook 01"
    if re.match(r"\.\d", prose[end:end + 2]):
        return True            # the first part of a version a.b.c
    if re.search(r"(?:Python|Node\.js|torch|JupyterLab|Notebook|jupyter-scatter|numpy)\s*[≥>=]*\s*$", left):
        return True            # version numbers of the software named
    return False


def cited(raw: str) -> set[str]:
    """The result-file stems a block names: 'bench/bench_quality.py' and 'bench_quality.md' -> 'bench_quality'."""
    out = set()
    for m in re.finditer(r"bench/results/([\w.-]+?)\.(?:md|json)\b|bench/([\w-]+)\.py\b|\b(bench_[\w.-]+?)\.(?:md|json)\b", raw):
        out.add(next(g for g in m.groups() if g))
    return out


def extract(text: str) -> list[Figure]:
    lines = text.splitlines()
    figures: list[Figure] = []
    measuring, sources = False, set()
    for section, _, block in blocks(text):
        if section == "#heading":
            measuring, sources = False, set()
            continue
        raw = " ".join(l for _, l in block)
        named = cited(raw)
        if re.match(r"\s*\*\*", raw) and (named or section == BENCHMARK_SECTION):
            sources = set()                # a bold lead starts a new measurement paragraph
        sources |= named
        if named:
            measuring = True
        in_measurement = measuring or section == BENCHMARK_SECTION
        for lineno, line in block:
            prose = clean(line)
            for m in NUMBER.finditer(prose):
                start, end = m.span()
                if _is_name(prose, start, end):
                    continue
                unit_m = UNIT.match(prose[end:]) if not m.group("pct") else None
                unit = "%" if m.group("pct") else (unit_m.group(0).strip() if unit_m else "")
                before = _words_before(prose[:start], 2)
                metric = any(w.lower().strip("'") in METRIC_WORDS for w in before)
                if not (in_measurement or unit or metric):
                    continue
                num = m.group("num")
                value = float(num.replace(",", ""))
                mult = {"k": 1e3, "M": 1e6}.get(m.group("mult") or "", 1.0)
                decimals = len(num.split(".")[1]) if "." in num else 0
                figures.append(Figure(text=m.group(0) + (unit if unit and unit != "%" else ""),
                                      value=value * mult, decimals=decimals if mult == 1 else 0,
                                      percent=bool(m.group("pct")), unit=unit.lower(), line=lineno,
                                      source_line=lines[lineno - 1].strip(),
                                      goal=_is_goal(prose, start, end), sources=sorted(sources)))
    return figures


# ---------------------------------------------------------------- results side

def result_numbers(results: Path = RESULTS) -> dict[str, list[float]]:
    """Every number in every file under bench/results/, per file ('1,234' read as 1234 and as 1 and 234)."""
    out = {}
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        values = set()
        for tok in FILE_NUMBER.findall(text):
            try:
                values.add(float(tok.replace(",", "")))
            except ValueError:
                pass
            if "," in tok:
                values.update(float(p) for p in re.findall(r"\d+(?:\.\d+)?", tok))
        out[str(path.relative_to(results.parent.parent))] = sorted(values)
    return out


def matches(fig: Figure, value: float) -> bool:
    scales = [1.0]
    if fig.percent:
        scales.append(100.0)
    for unit, pair in BYTE_UNITS.items():
        if fig.unit == unit:
            scales += [1 / p for p in pair]
    if fig.value >= 1e3 and fig.decimals == 0 and fig.text[-1:] in "kM":
        scales = [1.0]
    tol = 0.5 * 10 ** -fig.decimals + 1e-9
    if fig.text[-1:] in "kM":              # 100k: any count that rounds to it in its own unit
        tol = 0.5 * (1e3 if fig.text.endswith("k") else 1e6)
    return any(abs(abs(value) * s - fig.value) <= tol for s in scales)


def files_for(fig: Figure, numbers: dict) -> list[str]:
    """The result files a figure must come from: those its paragraph cites, else every file."""
    chosen = [name for name in numbers
              if any(Path(name).name.startswith(stem + ".") or Path(name).name.startswith(stem + "_")
                     for stem in fig.sources)]
    return chosen or list(numbers)


def script_inputs(stem: str, bench: Path) -> set[float]:
    """The numeric literals a benchmark script sets in its code (not its strings): its inputs."""
    path = bench / f"{stem.split('.')[0]}.py"
    if not path.is_file():
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {float(n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and type(n.value) in (int, float)}


def is_input(fig: Figure, bench: Path) -> str:
    """The cited script that sets this exact number (24 cards, 0.9 -> 90%), or ''."""
    want = {fig.value} | ({fig.value / 100} if fig.percent else set())
    for stem in fig.sources:
        if any(abs(v - w) <= 1e-12 * max(1.0, abs(w)) for v in script_inputs(stem, bench) for w in want):
            return f"bench/{stem.split('.')[0]}.py"
    return ""


def check(readme: Path = README, results: Path = RESULTS):
    figures = extract(readme.read_text(encoding="utf-8"))
    numbers = result_numbers(results)
    for fig in figures:
        if fig.goal:
            continue
        fig.found_in = [name for name in files_for(fig, numbers) if any(matches(fig, v) for v in numbers[name])]
        if not fig.found_in:
            fig.input_of = is_input(fig, results.parent)
    orphans = [f for f in figures if not f.goal and not f.found_in and not f.input_of]
    return figures, orphans


def section_of(readme_text: str, lineno: int) -> str:
    """The README heading above a line and, within "## Benchmarks", the bold lead of its paragraph."""
    lines = readme_text.splitlines()[:lineno]
    heading = next((l.lstrip("#").strip() for l in reversed(lines) if l.startswith("## ")), "")
    lead = ""
    for l in reversed(lines):
        if l.startswith("## "):
            break
        m = re.match(r"\*\*(.+?)\*\*", l.strip()) or re.match(r"- ([^:]{1,40}):", l.strip())
        if m:
            lead = m.group(1)
            break
    return f"{heading} / {lead}" if lead else heading


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    figures, orphans = check(args.readme, args.results)
    text = args.readme.read_text(encoding="utf-8")
    if args.verbose:
        for f in figures:
            where = "goal" if f.goal else f"input set by {f.input_of}" if f.input_of else (", ".join(f.found_in[:3]) + (" ..." if len(f.found_in) > 3 else "")
                                           if f.found_in else "ORPHAN")
            print(f"README:{f.line}: {f.text!r}: {where}")
    by_section: dict[str, list[Figure]] = {}
    for f in orphans:
        by_section.setdefault(section_of(text, f.line), []).append(f)
    for sec, figs in by_section.items():
        print(f"## {sec}")
        for f in figs:
            print(f"  README:{f.line}: {f.text!r} in: {f.source_line[:160]}")
    n_goal = sum(f.goal for f in figures)
    print(f"{len(figures)} figures ({n_goal} goals), {len(orphans)} with no source in bench/results/")
    return 1 if orphans else 0


if __name__ == "__main__":
    sys.exit(main())
