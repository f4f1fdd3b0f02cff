"""No acknowledged review action is lost when the kernel is killed (SIGKILL) at a random moment."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from dqwidgets.review import Review

N_SAMPLES = 2000
CLASSES = ["a", "b", "c"]

# The child applies random actions and prints one line per action *after* the call returned.
CHILD = textwrap.dedent("""
    import json, random, sys
    import pandas as pd
    from dqwidgets.review import Review
    path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ids = pd.Index([f"s{i}" if i % 2 else i for i in range(n)], dtype=object, name="id")
    given = pd.Series([["a", "b", "c"][i % 3] for i in range(n)], index=ids)
    review = Review(path, ids, given, ["a", "b", "c"])
    rng = random.Random(seed)
    print("ready", flush=True)
    for step in range(100_000):
        kind = rng.choices(["relabel", "drop", "mark_ok", "undo", "redo"], [5, 2, 2, 2, 1])[0]
        chosen = rng.sample(list(ids), rng.randint(1, 40))
        label = rng.choice(["a", "b", "c"])
        try:
            if kind == "relabel":
                review.relabel(chosen, label)
            elif kind == "drop":
                review.drop(chosen)
            elif kind == "mark_ok":
                review.mark_ok(chosen)
            elif kind == "undo":
                review.undo()
            else:
                review.redo()
        except ValueError:      # nothing to undo / redo
            continue
        record = {"seq": review.seq, "kind": kind}
        if kind in ("relabel", "drop", "mark_ok"):
            record["ids"] = chosen
        if kind == "relabel":
            record["label"] = label
        print(json.dumps(record), flush=True)
""")


def expected_state(records, ids, given):
    """An independent model of the journal: apply the acknowledged actions with a plain undo/redo stack."""
    labels = dict(zip(ids, given))
    status = dict.fromkeys(ids)
    done, undone = [], []   # (changes to revert, changes to re-apply)
    for r in records:
        if r["kind"] in ("relabel", "drop", "mark_ok"):
            field, value = (labels, r["label"]) if r["kind"] == "relabel" else (
                status, "dropped" if r["kind"] == "drop" else "ok")
            before = {i: field[i] for i in r["ids"]}
            after = dict.fromkeys(r["ids"], value)
            field.update(after)
            done.append((field, before, after))
            undone.clear()
        elif r["kind"] == "undo":
            field, before, after = done.pop()
            field.update(before)
            undone.append((field, before, after))
        else:
            field, before, after = undone.pop()
            field.update(after)
            done.append((field, before, after))
    return labels, status


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_acknowledged_action_survives_sigkill(tmp_path, seed):
    path = tmp_path / "journal.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(N_SAMPLES), str(seed)],
                             stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert child.stdout.readline().strip() == "ready"
        kill_after = random.Random().randint(200, 1000)    # a random moment, different on every run
        acknowledged = []
        for line in child.stdout:
            acknowledged.append(json.loads(line))
            if len(acknowledged) >= kill_after:
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait(timeout=30)
        acknowledged += [json.loads(line) for line in child.stdout.read().splitlines()]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it was killed: raise its action count"
    assert len(acknowledged) >= kill_after

    ids = pd.Index([f"s{i}" if i % 2 else i for i in range(N_SAMPLES)], dtype=object, name="id")
    given = pd.Series([CLASSES[i % 3] for i in range(N_SAMPLES)], index=ids)
    review = Review(path, ids, given, CLASSES)
    history = review.history()
    # every acknowledged action is there, with its number, kind and ids; at most one more (committed
    # but killed before it printed) follows
    assert len(history) in (len(acknowledged), len(acknowledged) + 1)
    assert [r["seq"] for r in acknowledged] == list(history.index[: len(acknowledged)])
    assert [r["kind"] for r in acknowledged] == history["action"].tolist()[: len(acknowledged)]
    edits = [r for r in acknowledged if "ids" in r]
    assert [r["ids"] for r in edits] == history.loc[[r["seq"] for r in edits], "ids"].tolist()

    if len(history) == len(acknowledged):   # the reopened state is exactly what the child had
        labels, status = expected_state(acknowledged, ids, given)
        assert review.labels().to_dict() == labels
        assert {i: (None if pd.isna(v) else v) for i, v in review.status().items()} == status
