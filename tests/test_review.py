"""The review journal: actions, undo/redo, persistence, two notebooks on one journal, bad input."""

import sqlite3

import numpy as np
import pandas as pd
import pytest

from dqwidgets.review import Review, ReviewConflictError


@pytest.fixture
def ids():
    return pd.Index(["a", "b", "c", "d", "e"], name="id")


@pytest.fixture
def given(ids):
    return pd.Series(["cat", "dog", "cat", "dog", "cat"], index=ids)


def open_review(path, ids, given):
    return Review(path / "journal.sqlite", ids, given, ["cat", "dog"])


def test_relabel_drop_mark_ok_change_the_current_state(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.relabel(["a", "c"], "dog", note="looks like a dog")
    review.drop("b")
    review.mark_ok(["d"])
    assert review.labels().tolist() == ["dog", "dog", "dog", "dog", "cat"]
    assert review.dropped().tolist() == ["b"]
    assert review.marked_ok().tolist() == ["d"]
    assert review.relabelled().tolist() == ["a", "c"]
    assert review.given_labels().equals(given.rename("label"))
    history = review.history()
    assert history["action"].tolist() == ["relabel", "drop", "mark_ok"]
    first = history.iloc[0]
    assert first["ids"] == ["a", "c"] and first["old"] == ["cat", "cat"] and first["new"] == "dog"
    assert first["note"] == "looks like a dog" and first["n"] == 2
    assert history["when"].dt.tz is not None


def test_mark_ok_takes_back_a_drop(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.drop(["a", "b"])
    review.mark_ok("a")
    assert review.dropped().tolist() == ["b"]
    assert review.marked_ok().tolist() == ["a"]


def test_undo_redo_walk_the_history_and_a_new_action_clears_redo(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.relabel("a", "dog")
    review.relabel("a", "cat")
    review.drop("a")
    review.undo()
    assert review.dropped().empty and review.labels()["a"] == "cat"
    review.undo()
    assert review.labels()["a"] == "dog"
    review.undo()
    assert review.labels()["a"] == "cat" and not review.can_undo
    with pytest.raises(ValueError, match="nothing to undo"):
        review.undo()
    review.redo()
    review.redo()
    assert review.labels()["a"] == "cat" and review.can_redo
    review.mark_ok("e")           # a new action: the undone drop can no longer be redone
    assert not review.can_redo
    with pytest.raises(ValueError, match="nothing to redo"):
        review.redo()
    assert review.history()["action"].tolist() == ["relabel", "relabel", "drop", "undo", "undo", "undo",
                                                   "redo", "redo", "mark_ok"]
    assert review.history()["target"].tolist()[3:8] == [3, 2, 1, 1, 2]


def test_reopening_restores_the_review_including_undo_state(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.relabel(["a", "b"], "bird", new_label=True)
    review.drop("c")
    review.undo()
    review.close()
    again = open_review(tmp_path, ids, given)
    assert again.labels().tolist() == ["bird", "bird", "cat", "dog", "cat"]
    assert again.dropped().empty and again.can_redo
    assert again.classes == ["cat", "dog", "bird"]
    again.redo()
    assert again.dropped().tolist() == ["c"]


def test_ids_keep_their_type(tmp_path):
    ids = pd.Index([1, 2, "1", "2"], dtype=object, name="id")
    review = Review(tmp_path / "j.sqlite", ids, pd.Series([0, 1, 0, 1], index=ids), [0, 1])
    review.drop(["1"])
    review.relabel([np.int64(1)], 1)
    review.close()
    again = Review(tmp_path / "j.sqlite", ids, pd.Series([0, 1, 0, 1], index=ids), [0, 1])
    assert again.dropped().tolist() == ["1"]
    assert again.labels().tolist() == [1, 1, 0, 1]
    assert again.labels().dtype == np.int64     # integer labels stay integers
    assert again.history()["ids"].tolist() == [["1"], [1]]


def test_unknown_ids_and_new_labels_are_clear_errors(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    with pytest.raises(ValueError, match=r"2 id\(s\) are not in the dataset, e.g. \['zz', 7\]"):
        review.drop(["a", "zz", 7])
    with pytest.raises(ValueError, match="'bird' is not one of the classes.*new_label=True"):
        review.relabel("a", "bird")
    with pytest.raises(ValueError, match="no ids given"):
        review.mark_ok([])
    with pytest.raises(ValueError, match="must not be missing"):
        review.relabel("a", None)
    with pytest.raises(ValueError, match="one value"):
        review.relabel("a", ["cat", "dog"])
    assert review.history().empty     # nothing half-written


def test_boolean_masks_select_ids(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.drop(given == "dog")
    assert review.dropped().tolist() == ["b", "d"]
    review.mark_ok(np.array([True, False, False, False, False]))
    assert review.marked_ok().tolist() == ["a"]


def test_two_notebooks_conflict_only_on_the_same_samples(tmp_path, ids, given):
    one = open_review(tmp_path, ids, given)
    two = open_review(tmp_path, ids, given)
    one.relabel(["a", "b"], "dog")
    with pytest.raises(ReviewConflictError, match=r"changed 1 of these samples.*\['b'\]"):
        two.drop(["b", "c"])
    assert two.labels()["a"] == "dog"            # the other notebook's action is loaded
    assert two.dropped().empty                   # and nothing was written
    two.drop(["b", "c"])                         # having seen it, the action goes through
    one.mark_ok(["e"])                           # disjoint ids: no conflict, no refresh needed first
    assert one.dropped().tolist() == ["b", "c"]
    assert two.marked_ok().tolist() == ["e"]
    assert [len(one.history()), len(two.history())] == [3, 3]


def test_undo_of_an_action_another_notebook_already_undid_is_a_conflict(tmp_path, ids, given):
    one = open_review(tmp_path, ids, given)
    one.drop("a")
    two = open_review(tmp_path, ids, given)
    two.undo()
    with pytest.raises(ReviewConflictError):
        one.undo()
    assert one.dropped().empty and not one.can_undo


def test_observers_hear_every_committed_action(tmp_path, ids, given):
    one = open_review(tmp_path, ids, given)
    two = open_review(tmp_path, ids, given)
    heard = []
    one.observe(heard.append)
    one.drop("a")
    two.relabel("e", "dog")
    one.refresh()
    assert [(e["seq"], e["action"], e["field"], e["ids"].tolist()) for e in heard] == [
        (1, "drop", "status", ["a"]), (2, "relabel", "label", ["e"])]
    one.unobserve(heard.append)
    one.undo()
    assert len(heard) == 2


def test_a_broken_observer_does_not_undo_the_action(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.observe(lambda event: 1 / 0)
    with pytest.warns(UserWarning, match="ZeroDivisionError"):
        review.drop("a")
    assert review.dropped().tolist() == ["a"]


def test_journal_of_another_dataset_is_refused(tmp_path, ids, given):
    open_review(tmp_path, ids, given).drop("e")
    other = pd.Index(["a", "b"], name="id")
    with pytest.raises(ValueError, match=r"not in this dataset, e.g. \['e'\]"):
        Review(tmp_path / "journal.sqlite", other, None, [])


def test_a_file_that_is_not_a_journal_is_refused(tmp_path, ids, given):
    (tmp_path / "journal.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a dqwidgets review journal"):
        open_review(tmp_path, ids, given)


def test_storage_is_wal_and_every_action_is_committed(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.drop("a")
    # WAL is a property of the file: a fresh connection reads it; synchronous=FULL is per connection and
    # what it buys is tested by the SIGKILL test in test_review_durability.py
    con = sqlite3.connect(tmp_path / "journal.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT count(*) FROM actions").fetchone()[0] == 1     # committed: another connection sees it
    con.close()


def test_labels_may_be_a_series_in_another_order_or_an_array(tmp_path, ids, given):
    shuffled = given.iloc[::-1]
    assert Review(tmp_path / "a.sqlite", ids, shuffled, ["cat", "dog"]).labels().equals(given.rename("label"))
    assert Review(tmp_path / "b.sqlite", ids, given.to_numpy(), ["cat", "dog"]).labels().tolist() == given.tolist()
    with pytest.raises(ValueError, match="4 labels for 5 ids"):
        Review(tmp_path / "c.sqlite", ids, given.to_numpy()[:4], ["cat", "dog"])


def test_unlabelled_data_can_be_labelled(tmp_path, ids):
    review = Review(tmp_path / "j.sqlite", ids, None, [])
    assert review.labels().isna().all()
    review.relabel(["a", "b"], "cat", new_label=True)
    labels = review.labels()
    assert labels.tolist()[:2] == ["cat", "cat"] and labels.iloc[2:].isna().all()


def test_provenance_names_the_action_behind_each_current_value(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.relabel("a", "dog", note="first")
    review.relabel("a", "cat", note="second")
    review.undo()
    review.drop("b", note="blurry")
    prov = review.provenance()
    assert prov.loc["a", "label_action"] == 1 and prov.loc["a", "label_note"] == "first"
    assert prov.loc["b", "status_action"] == 4 and prov.loc["b", "status_note"] == "blurry"
    assert prov.loc["c", "label_action"] == 0 and pd.isna(prov.loc["c", "label_note"])


def test_relabelling_100k_ids_is_one_action_and_one_bad_id_writes_nothing(tmp_path):
    # speed lives in bench/bench_review_export.py; here: one action, one row, all or nothing
    ids = pd.RangeIndex(100_000, name="id")
    review = Review(tmp_path / "j.sqlite", ids, pd.Series(np.arange(100_000) % 10, index=ids), list(range(10)))
    with pytest.raises(ValueError, match=r"1 id\(s\) are not in the dataset, e.g. \[100000\]"):
        review.relabel(list(range(50_000)) + [100_000] + list(range(50_000, 99_999)), 3)
    assert review.history().empty and review.relabelled().empty
    review.relabel(ids, 3)
    history = review.history()
    assert len(history) == 1 and history["n"].tolist() == [100_000] and history["action"].tolist() == ["relabel"]
    assert (review.labels() == 3).all()
    again = Review(tmp_path / "j.sqlite", ids, pd.Series(np.arange(100_000) % 10, index=ids), list(range(10)))
    assert (again.labels() == 3).all() and len(again.history()) == 1


def _refuse_writes_naming(path, sample_id):
    """Make the journal file itself refuse (like a full disk would) any row that names ``sample_id``."""
    con = sqlite3.connect(path)
    con.execute(f"""CREATE TRIGGER refuse BEFORE INSERT ON actions WHEN NEW.ids LIKE '%"{sample_id}"%'
                    BEGIN SELECT RAISE(ABORT, 'disk refused the write'); END""")
    con.commit()
    con.close()


def test_a_multi_id_action_that_fails_part_way_writes_nothing(tmp_path, ids, given):
    review = open_review(tmp_path, ids, given)
    review.drop("e")
    _refuse_writes_naming(tmp_path / "journal.sqlite", "d")
    before = (review.labels().copy(), review.status().copy(), review.history().copy())
    with pytest.raises(sqlite3.DatabaseError, match="disk refused the write"):
        review.relabel(["a", "b", "c", "d"], "dog")          # the write fails at id "d", after a, b, c
    with pytest.raises(sqlite3.DatabaseError, match="disk refused the write"):
        review.mark_ok(["e", "d"])
    # nothing of either action: not in memory, not on disk, not for another notebook
    assert review.labels().equals(before[0]) and review.status().equals(before[1])
    assert len(review.history()) == 1
    other = open_review(tmp_path, ids, given)
    assert other.labels().equals(before[0]) and other.dropped().tolist() == ["e"] and len(other.history()) == 1
    review.relabel(["a", "b"], "dog")                          # the journal still works for the other ids
    assert other.labels().tolist() == ["dog", "dog", "cat", "dog", "cat"]
    review.undo()
    assert review.labels().equals(before[0])
