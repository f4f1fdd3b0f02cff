"""How much work is a review? A simulated reviewer who knows the truth works through the Explorer and
fixes what is wrong; we count decisions per fixed error and the share of planted errors fixed.

The reviewer model (dqwidgets). Every decision is a real call of what the Explorer's keys and
buttons call (``dqwidgets.widgets.group_actions.apply_review`` on ``an.review``); the result is read
back from the journal, so every wrong change a group action makes is counted.

0. **Slices**: the reviewer clicks each row of the slice table; the grid shows the slice's cards,
   worst first. When at least 90% of the first screen (24 cards) are of no class (foreign samples),
   he scrolls to the end of the slice, and when its last screen is too, he drops the whole slice from
   its row (1 decision); its members that were fine count as new errors. (A slice whose worst cards
   are foreign but whose last ones are not, e.g. plot synopses at the top of a slice of reviews, is
   left to the queue.)

Steps 1 and 2 are one loop (``Reviewer.grid_pass``) with a per-card rule (``label_rule``, ``ood_rule``)
and the grid's group action at its end. The cards are the product's review queue
(``an.review_queue()``, the Explorer's "review queue" grid, ``dqwidgets.review_queue``): the flags,
most likely first, and for label issues the unflagged candidates after them, screen by screen, while
the calibrated probabilities say a screen is worth a look (its stop rule); the reviewer stops where
the queue stops.

1. **Label issues**: the queue's label-issue cards. The reviewer looks at every card:
   a wrong label whose suggestion (the card's ``→ class``) is the true class is left for ``a``; any
   other wrong label is relabelled by typing its class (1 decision); a sample of no class (foreign)
   or a near-copy is dropped (``d``, 1 decision) unless it is also flagged out of distribution (left
   for step 2); a sample that is fine is marked fine (``o``, 1 decision). Then ``a`` with "apply to:
   all in the grid" accepts the suggestions of every card not decided yet (1 decision). "with
   duplicates" is ticked for relabels and ``a``: the copies of a relabelled sample get its label.
2. **Out of distribution**: the queue's OOD cards (the OOD flags); the cards not decided
   yet: a fine one is marked fine, a wrong label relabelled (1 decision each); then "drop, all in the
   grid" drops the undecided rest (1 decision).
3. **Duplicates**: the grid filtered to "only duplicates": in each duplicate group that still has
   two undropped members, the reviewer drops one (``d``, 1 decision) when the pair is a planted copy,
   and marks them fine otherwise (1 decision).

No group action is taken on cards the reviewer has not looked at: ``a`` and the bulk drop act on
the cards of the grid he has just gone through, and leave out those he decided one by one.

Scoring, from the journal's final state: a wrong label is fixed when its label is the true class
(or, for a foreign sample, when it is dropped); a near-copy is fixed when it or its original is
dropped. A **new error** is a clean sample whose label was changed to a wrong class or that was
dropped (both members of a copy pair dropped: one of them). "decisions per fixed error" =
decisions / (fixed - new errors).

cleanlab: Datalab's ``get_issues()`` rows with any issue flagged, ranked by their lowest issue
score (most severe first), the same reviewer with no group actions (Datalab has none): one
decision per row (relabel to the truth, drop a foreign sample or a copy, or "fine").

The analysis is of what a user passes: the raw images or texts (the embeddings from bench_quality's
cache; the duplicate step also sees the image signatures / normalised texts), the table's features.

Hold-outs (``HOLDOUT``, rows after the three cases; built after the queue's stop rule was chosen, to
check it): ``notebook01_reflip`` (notebook 01's images and foreign samples, another 10% flip draw),
``rotten_tomatoes_seed1`` and ``digits_table_seed1`` (bench_quality's constructions with seed 1).

    python bench/bench_review_effort.py [case ...]   (cases of bench_quality.py or HOLDOUT; cached features)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, WORKDIR, load_case, run_cleanlab  # noqa: E402

CASES = ["notebook01_fashion_mnist", "rotten_tomatoes", "digits_table"]
# hold-outs: not looked at when the queue's stop rule was written; checked after (module docstring)
HOLDOUT = ["notebook01_reflip", "rotten_tomatoes_seed1", "digits_table_seed1"]
SCREEN = 24  # cards on one screen of the grid
SLICE_SHARE = 0.9  # share of a slice's first screen that must be foreign before the reviewer drops the slice


class Reviewer:
    """The simulated reviewer of the module docstring, acting on ``an`` through the Explorer's calls."""

    def __init__(self, an, case):
        from dqwidgets.widgets import group_actions

        self.an, self.case, self.act = an, case, group_actions.apply_review
        self.review = an.review
        self.ids = an.samples.index
        self.decisions = 0
        self.log: list[str] = []

    def _do(self, action, ids, label=None, with_duplicates=False, bulk=False):
        self.decisions += 1
        try:
            self.log.append(self.act(self.an, action, list(ids), label, with_duplicates, bulk=bulk))
        except ValueError as e:  # refused (e.g. nothing left to accept): the reviewer still pressed the key
            self.log.append(f"refused: {e}")

    def decided(self) -> np.ndarray:
        return self.review.status().notna().to_numpy() | self.ids.isin(self.review.relabelled())

    def _truth(self, r):
        c = self.case
        return c.true_labels[r]

    def label_rule(self, r: int, copy: bool, later: bool) -> tuple | str | None:
        """The label grid's card rule: a wrong label whose suggestion is the truth is left for ``a``
        ("group"); a foreign card flagged out of distribution for the OOD grid (None); a foreign card or
        a near-copy is dropped, another wrong label relabelled to its class, a fine card marked fine."""
        c, sugg = self.case, self._sugg
        if c.is_noisy[r] and sugg[r] is not None and sugg[r] == self._truth(r):
            return "group"
        if c.is_foreign[r] and later:
            return None
        if c.is_foreign[r] or (copy and not c.is_noisy[r]):
            return ("drop", None)
        if c.is_noisy[r]:
            return ("relabel", str(self._truth(r)))
        return ("mark_ok", None)

    def ood_rule(self, r: int, copy: bool, later: bool) -> tuple | str | None:
        """The OOD grid's card rule: a foreign card or a near-copy is left for the bulk drop; a wrong
        label relabelled, a fine card marked fine."""
        c = self.case
        if c.is_foreign[r] or copy:
            return "group"
        if c.is_noisy[r]:
            return ("relabel", str(self._truth(r)))
        return ("mark_ok", None)

    def grid_pass(self, rows: np.ndarray, rule, group: str, later: np.ndarray | None = None) -> tuple[int, int]:
        """Steps 1 and 2, one loop: the reviewer looks at every undecided card of the grid ``rows`` (the
        review queue's order), takes the card's decision by ``rule`` (``label_rule`` / ``ood_rule``:
        "group" = left for the grid's group action, None = left for a later grid (``later``), else
        (action, label), one decision), and ends with the group action ``group`` on "all in the grid"
        ("accept": ``a``, each card its suggested label; "drop": drop the undecided rest) when a card was
        left for it. Returns (wrong, fine) among the cards looked at."""
        c, s = self.case, self.an.samples
        self._sugg = s["suggested_label"].to_numpy()
        dup = s["duplicate_group"].to_numpy() >= 0
        later = np.zeros(len(s), bool) if later is None else later
        decided = self.decided()
        wrong = fine = 0
        pending = False
        for r in rows:
            if decided[r]:
                continue
            copy = c.is_copy[r] and not self._dropped_pair(r)
            if c.is_foreign[r] or c.is_noisy[r] or copy:
                wrong += 1
            else:
                fine += 1
            decision = rule(r, copy, later[r])
            if decision == "group":
                pending = True
            elif decision is not None:
                action, label = decision
                self._do(action, [self.ids[r]], label, with_duplicates=action == "relabel" and dup[r])
            decided = self.decided()
        if pending:
            self._do(group, self.ids[rows], with_duplicates=group == "accept", bulk=True)
        return wrong, fine

    def _dropped_pair(self, r) -> bool:
        c = self.case
        partner = c.copy_of[r] if c.copy_of[r] >= 0 else -1
        dropped = set(self.review.dropped())
        return partner >= 0 and self.ids[partner] in dropped

    def duplicate_pass(self) -> None:
        c, s = self.case, self.an.samples
        groups = s["duplicate_group"].to_numpy()
        dropped = self.ids.isin(self.review.dropped())
        for g in np.unique(groups[groups >= 0]):
            members = np.flatnonzero((groups == g) & ~dropped)
            if len(members) < 2:
                continue
            copies = [m for m in members if c.is_copy[m] and c.copy_of[m] in members]
            for m in copies:  # the planted copy of another member: dropped
                self._do("drop", [self.ids[m]])
            if not copies and not self.decided()[members].all():
                self._do("mark_ok", self.ids[members])  # not copies: "fine" on the group (with duplicates)

    def slice_pass(self) -> None:
        """Step 0: every row of the slice table; a click selects the slice and the grid shows its cards,
        worst first. When its first and its last screen (SCREEN cards) are of no class (foreign), the
        reviewer drops the slice from its row (1 decision); its members that were fine become new errors."""
        from dqwidgets.widgets import group_actions, table

        s = self.an.samples
        if self.an.slices is None or "slice_id" not in s:
            return
        frame = table.table_frame(self.an, "slices")
        score = np.nan_to_num(s["label_issue_score"].to_numpy(np.float64), nan=-1.0)
        for key in range(len(frame)):
            rows = table.rows_of_table_row(self.an, "slices", key)
            ordered = rows[np.argsort(-score[rows], kind="stable")]
            first, last = ordered[:SCREEN], ordered[-SCREEN:]  # he scrolls to the end before dropping it all
            if len(first) == SCREEN and min(self.case.is_foreign[first].mean(),
                                            self.case.is_foreign[last].mean()) >= SLICE_SHARE:
                self.decisions += 1
                sid = int(frame.iloc[key]["slice_id"])
                self.log.append(group_actions.slice_review(self.an, sid, "drop", len(rows))[0])

    def run(self) -> dict:
        defaults = {c: int(self.an.samples[c].sum()) for c in ("is_label_issue", "is_ood", "is_duplicate")}
        self.slice_pass()
        ood = self.an.samples["is_ood"].to_numpy(bool)
        label_queue = self.an.review_queue("label_issue")  # the Explorer's "review queue" grid, label part
        self.grid_pass(label_queue["row"].to_numpy(), self.label_rule, "accept", later=ood)
        ood_queue = self.an.review_queue("ood")
        self.grid_pass(ood_queue["row"].to_numpy(), self.ood_rule, "drop")
        self.duplicate_pass()
        out = score(self.an, self.case, self.decisions)
        summ = self.an.summary()
        out["queue"] = {"label_flagged": int(label_queue["flagged"].sum()),
                        "label_past_the_flags": int((~label_queue["flagged"]).sum()),
                        "ood": int(len(ood_queue)),
                        "estimated_left_at_defaults": float(summ.loc["label_issue", "estimated_left"])}
        out["left"]["default_flags"] = defaults
        return out


def score(an, case, decisions: int) -> dict:
    """Fixed errors and new errors from the journal's final state (module docstring)."""
    ids = an.samples.index
    labels = an.review.labels().to_numpy(object)
    dropped = ids.isin(an.review.dropped())
    n = len(ids)
    copy_of = case.copy_of
    is_copy = copy_of >= 0
    originals = np.zeros(n, bool)
    originals[copy_of[is_copy]] = True
    kept_copy = np.zeros(n, bool)  # an original with a copy still in the data
    kept_copy[copy_of[is_copy & ~dropped]] = True
    pair_dropped = np.zeros(n, bool)
    pair_dropped[is_copy] = dropped[is_copy] | dropped[copy_of[is_copy]]
    label_ok = np.array([a == b for a, b in zip(labels, case.true_labels)])
    label_fixed = (case.is_noisy & label_ok & ~dropped) | (case.is_foreign & dropped)
    copy_fixed = is_copy & pair_dropped
    errors = case.is_noisy | case.is_foreign | is_copy
    fixed = label_fixed | copy_fixed
    clean = ~case.is_noisy & ~case.is_foreign
    # dropping a copy, or its original while the copy stays, removes the duplication; any other drop
    # of a clean sample, or a relabel of one to a wrong class, is a new error
    bad_drop = dropped & ~is_copy & ~(originals & kept_copy)
    new_errors = clean & ((~label_ok & ~dropped) | bad_drop)
    label_errors = case.is_noisy | case.is_foreign
    n_fixed = int(fixed.sum())
    net = n_fixed - int(new_errors.sum())
    # where the wrong labels left are: their rank by label_issue_score, and the foreign ones' slices
    s = an.samples
    rank = np.empty(n, np.int64)
    rank[np.argsort(-np.nan_to_num(s["label_issue_score"].to_numpy(np.float64), nan=-1), kind="stable")] = np.arange(n)
    left = label_errors & ~label_fixed
    left_foreign = case.is_foreign & ~label_fixed
    slices, counts = np.unique(s["slice_id"].to_numpy()[left_foreign], return_counts=True) if "slice_id" in s \
        else (np.empty(0), np.empty(0))
    where = {"median_rank_of_label_errors_left": float(np.median(rank[left])) if left.any() else None,
             "flipped_left": int((case.is_noisy & ~label_fixed).sum()), "foreign_left": int(left_foreign.sum()),
             "foreign_left_by_slice": {str(int(k)): int(v) for k, v in zip(slices, counts)},
             "default_flags": {c: int(s[c].sum()) for c in ("is_label_issue", "is_ood", "is_duplicate")}}
    return {"decisions": int(decisions), "fixed": n_fixed, "new_errors": int(new_errors.sum()),
            "decisions_per_fixed_error": decisions / max(net, 1),
            "share_of_errors_fixed": n_fixed / max(int(errors.sum()), 1),
            "share_of_label_errors_fixed": float(label_fixed.sum() / max(label_errors.sum(), 1)),
            "errors": int(errors.sum()), "journal_rows": int(len(an.review.history())), "left": where}


def ours(case, X) -> dict:
    import dqwidgets as dq

    raw = case.modality in ("image", "text")  # what a user passes: the duplicate step sees the images / texts
    with tempfile.TemporaryDirectory() as work:  # a fresh journal every run; the embeddings from WORKDIR's cache
        if raw:
            (Path(work) / "cache").symlink_to(WORKDIR / "cache", target_is_directory=True)
        an = dq.analyze(case.dataset() if raw else case.dataset(X), layout="pca", progress=False, workdir=work)
        if raw and not np.allclose(an.features, X, atol=1e-5):
            raise RuntimeError(f"{case.name}: analyze's embeddings differ from the cached features cleanlab gets")
        classes = list(an.classes)
        reviewer = Reviewer(an, case)
        res = reviewer.run()
        res["wasted"] = int((an.review.status() == "ok").sum())
        an.review.close()
    return res, classes


def cleanlab(case, X, classes) -> dict:
    lab, _ = run_cleanlab(case, X, classes)
    issues = lab.get_issues()
    flag_cols = [c for c in issues.columns if c.startswith("is_") and c.endswith("_issue")]
    score_cols = [c.replace("is_", "").replace("_issue", "_score") for c in flag_cols]
    flagged = issues[flag_cols].any(axis=1).to_numpy()
    severity = np.min(np.where(issues[flag_cols].to_numpy(), issues[score_cols].to_numpy(), 1.0), axis=1)
    idx = np.flatnonzero(flagged)
    order = idx[np.argsort(severity[idx], kind="stable")]
    n = len(case.labels)
    fixed = np.zeros(n, bool)
    wasted = 0
    for i in order:  # one decision per row: relabel to the truth, drop a foreign sample or a copy, or "fine"
        if case.is_foreign[i] or case.is_copy[i] or case.is_noisy[i]:
            fixed[i] = True
        else:
            wasted += 1
    errors = case.is_noisy | case.is_foreign | case.is_copy
    label_errors = case.is_noisy | case.is_foreign
    n_fixed = int((fixed & errors).sum())
    return {"decisions": len(order), "fixed": n_fixed, "new_errors": 0, "wasted": wasted,
            "decisions_per_fixed_error": len(order) / max(n_fixed, 1),
            "share_of_errors_fixed": n_fixed / max(int(errors.sum()), 1),
            "share_of_label_errors_fixed": float((fixed & label_errors).sum() / max(label_errors.sum(), 1)),
            "errors": int(errors.sum())}


def _reflip(case, seed: int, confusable: dict):
    """``case`` with its labels flipped anew: 10% of the clean originals (half of them to the
    ``confusable`` partner where there is one, as notebook 01 plants them, the rest to a random other
    class); foreign samples keep their labels, a near-copy takes its original's new label."""
    rng = np.random.default_rng(seed)
    true = case.true_labels
    orig = ~case.is_foreign & ~case.is_copy
    given = np.where(case.is_foreign, case.labels, true).astype(object)
    classes = sorted(set(given[orig]))
    for j, i in enumerate(rng.choice(np.flatnonzero(orig), int(0.10 * orig.sum()), replace=False)):
        if j % 2 == 0 and true[i] in confusable:
            given[i] = confusable[true[i]]
        else:
            given[i] = rng.choice([c for c in classes if c != true[i]])
    given[case.is_copy] = given[case.copy_of[case.is_copy]]
    case.labels = given
    case.is_noisy = (given != true) & ~case.is_foreign
    return case


def load_holdout(name: str):
    """(case, features) of a hold-out: notebook 01's images with another flip draw (embeddings of the
    bench case), bench_quality's text and table constructions with seed 1 (another sample of
    snippets, synopses, flips and copies; another draw of flips, foreign rows and copies)."""
    from bench_quality import load_case as _load

    from dqwidgets.planted import digits_table_case, rotten_tomatoes_case

    if name == "notebook01_reflip":
        case, X = _load("notebook01_fashion_mnist")
        confusable = {"Shirt": "T-shirt/top", "T-shirt/top": "Shirt", "Pullover": "Coat", "Coat": "Pullover"}
        case = _reflip(case, 1, confusable)
        case.name = name
        return case, X
    case = {"rotten_tomatoes_seed1": rotten_tomatoes_case, "digits_table_seed1": digits_table_case}[name](seed=1)
    case.name = name
    path = WORKDIR / f"{name}.npy"
    if path.exists() and len(X := np.load(path)) == len(case.labels):
        return case, X
    X = np.asarray(case.dataset().embed(cache_dir=WORKDIR / "cache", progress=False).features, dtype=np.float32)
    np.save(path, X)
    return case, X


def main(names):
    path = RESULTS / "bench_review_effort.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out = {k: v for k, v in out.items() if k in CASES + HOLDOUT + names and "queue" in v.get("dqwidgets", {})}
    for name in names:
        case, X = load_holdout(name) if name in HOLDOUT else load_case(name)
        o, classes = ours(case, X)
        out[name] = {"dqwidgets": o, "cleanlab": cleanlab(case, X, classes),
                     "loadavg": open("/proc/loadavg").read().split()[:3]}
        print(name, json.dumps(out[name], indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    lines = ["Simulated reviewer who knows the truth, working through the Explorer (bench/bench_review_effort.py;",
             "the reviewer model is in its docstring). decisions per fixed error = decisions / (fixed - new errors).",
             "Rows after the first three cases are hold-outs (HOLDOUT in the module docstring).", "",
             "| case | list | decisions | errors fixed / planted | new errors | decisions per fixed error | "
             "label errors fixed | marked fine (wasted) | label queue: flagged + past the flags (est. left) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in out.items():
        for tool in ("dqwidgets", "cleanlab"):
            f = r[tool]
            q = f.get("queue")
            drags = f"{q['label_flagged']} + {q['label_past_the_flags']} (~{q['estimated_left_at_defaults']:.0f})" \
                if q else "—"
            lines.append(f"| {name} | {tool} | {f['decisions']} | {f['fixed']} / {f['errors']} | {f['new_errors']} | "
                         f"{f['decisions_per_fixed_error']:.2f} | {f['share_of_label_errors_fixed']:.3f} | "
                         f"{f['wasted']} | {drags} |")
    (RESULTS / "bench_review_effort.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:] or CASES + HOLDOUT)
