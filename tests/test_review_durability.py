"""No acknowledged review action is lost when the kernel is killed (SIGKILL) at a random moment, and two
processes writing to one journal at once end up with exactly the actions they were told succeeded."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from dqwidgets.review import Review

N_SAMPLES = 2000
CLASSES = ["a", "b", "c"]

# The child applies random actions and prints one line per action *after* the call returned
# ("conflict" when the journal refused it because the other process had changed the same samples).
CHILD = textwrap.dedent("""
    import json, random, sys
    import pandas as pd
    from dqwidgets.review import Review, ReviewConflictError
    path, n, seed, actions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ids = pd.Index([f"s{i}" if i % 2 else i for i in range(n)], dtype=object, name="id")
    given = pd.Series([["a", "b", "c"][i % 3] for i in range(n)], index=ids)
    review = Review(path, ids, given, ["a", "b", "c"])
    rng = random.Random(seed)
    print("ready", flush=True)
    if len(sys.argv) > 5:       # start together with the other writer
        sys.stdin.readline()
    for step in range(actions):
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
        except ReviewConflictError:
            print("conflict", flush=True)
            continue
        except ValueError as e:      # only "nothing to undo / redo" is expected; anything else is a failure
            if kind not in ("undo", "redo") or "nothing to" not in str(e):
                raise
            continue
        record = {"seq": review.seq, "kind": kind}
        if kind in ("relabel", "drop", "mark_ok"):
            record["ids"] = chosen
        if kind == "relabel":
            record["label"] = label
        print(json.dumps(record), flush=True)
""")


def dataset(n=N_SAMPLES):
    ids = pd.Index([f"s{i}" if i % 2 else i for i in range(n)], dtype=object, name="id")
    return ids, pd.Series([CLASSES[i % 3] for i in range(n)], index=ids)


def expected_state(records, ids, given, targets=None):
    """An independent model of the journal: apply the acknowledged actions in order. Undo/redo revert or
    re-apply the action ``targets`` names for them (seq -> seq), or without it the last one done/undone."""
    labels, status = dict(zip(ids, given)), dict.fromkeys(ids)
    edits, done, undone = {}, [], []
    for r in records:
        if r["kind"] in ("relabel", "drop", "mark_ok"):
            field, value = (labels, r["label"]) if r["kind"] == "relabel" else (
                status, "dropped" if r["kind"] == "drop" else "ok")
            edits[r["seq"]] = (field, {i: field[i] for i in r["ids"]}, dict.fromkeys(r["ids"], value))
            field.update(edits[r["seq"]][2])
            done.append(r["seq"])
            undone.clear()
        else:
            source, sink = (done, undone) if r["kind"] == "undo" else (undone, done)
            target = targets[r["seq"]] if targets else source[-1]
            source.remove(target)
            sink.append(target)
            field, before, after = edits[target]
            field.update(before if r["kind"] == "undo" else after)
    return labels, status


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_acknowledged_action_survives_sigkill(tmp_path, seed):
    path = tmp_path / "journal.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(N_SAMPLES), str(seed), "100000"],
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

    ids, given = dataset()
    review = Review(path, ids, given, CLASSES)
    history = review.history()
    # every acknowledged action is there, with its number, kind and ids; at most one more (committed
    # but killed before it printed) follows
    assert len(history) in (len(acknowledged), len(acknowledged) + 1)
    assert [r["seq"] for r in acknowledged] == list(history.index[: len(acknowledged)])
    assert [r["kind"] for r in acknowledged] == history["action"].tolist()[: len(acknowledged)]
    edits = [r for r in acknowledged if "ids" in r]
    assert [r["ids"] for r in edits] == history.loc[[r["seq"] for r in edits], "ids"].tolist()

    records = list(acknowledged)
    if len(history) == len(acknowledged) + 1:   # committed, killed before it printed: take it from the journal
        seq, row = history.index[-1], history.iloc[-1]
        extra = {"seq": int(seq), "kind": row["action"]}
        if row["action"] in ("relabel", "drop", "mark_ok"):
            extra["ids"] = row["ids"]
        if row["action"] == "relabel":
            extra["label"] = row["new"]
        records.append(extra)
    # the reopened state is exactly what the acknowledged actions (and that one) make
    labels, status = expected_state(records, ids, given)
    assert review.labels().to_dict() == labels
    assert {i: (None if pd.isna(v) else v) for i, v in review.status().items()} == status


def test_two_processes_writing_at_once_keep_exactly_the_acknowledged_actions(tmp_path):
    path = tmp_path / "journal.sqlite"
    ids, given = dataset(60)
    Review(path, ids, given, CLASSES).close()          # create it before both start
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), "60", str(seed), "300", "wait"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for seed in (11, 12)]
    assert [child.stdout.readline().strip() for child in children] == ["ready", "ready"]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    with ThreadPoolExecutor(2) as pool:      # read both at once: a full pipe would serialise the writers
        outputs = list(pool.map(lambda child: child.communicate(timeout=120)[0].splitlines(), children))
    assert [child.returncode for child in children] == [0, 0]
    records = sorted((json.loads(line) for out in outputs for line in out if line.startswith("{")),
                     key=lambda r: r["seq"])
    conflicts = sum(line == "conflict" for out in outputs for line in out)
    review = Review(path, ids, given, CLASSES)
    history = review.history()
    assert [r["seq"] for r in records] == list(history.index)           # every success is in, nothing else
    assert [r["kind"] for r in records] == history["action"].tolist()
    assert len(set(history["session"])) == 2 and conflicts > 0           # they did collide, and were refused
    targets = history["target"].dropna().astype(int).to_dict()
    labels, status = expected_state(records, ids, given, targets)     # the journal is one consistent order
    assert review.labels().to_dict() == labels
    assert {i: (None if pd.isna(v) else v) for i, v in review.status().items()} == status
