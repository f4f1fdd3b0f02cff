"""summary()'s ``estimated_precision`` for the label flags (#11 item 2): the mean calibrated probability
over the flags must be within 0.10 of the measured precision, on planted noise of several structures.

scikit-learn's digits (1,797 rows, no download), the label step as ``dq.analyze`` runs it (out-of-fold
probe, cosine kNN graph, ``compute.label.find_label_issues``), the same cases as
bench/bench_label_noise_cases.py. Known failures are ``xfail(strict=True)`` with the measured numbers."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    from dqwidgets.compute.knn import knn_graph

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target
    return X, y, knn_graph(X, k=15, metric="cosine", device="cpu")


def _figures(digits, kind, rate, seed):
    from bench_label_noise_cases import noisy_labels
    from bench_quality import best_f1

    from dqwidgets.compute.label import find_label_issues
    from dqwidgets.compute.probe import out_of_fold_probs

    X, y, graph = digits
    given = noisy_labels(y, kind, rate, seed)
    wrong = given != y
    r = find_label_issues(out_of_fold_probs(X, given, 10, device="cpu", seed=0), graph.indices, given)
    f, score = r.is_label_issue, r.label_issue_score
    tp = int((f & wrong).sum())
    return {"flagged": int(f.sum()), "wrong": int(wrong.sum()), "precision": tp / max(int(f.sum()), 1),
            "estimated": float(score[f].mean()), "f1": 2 * tp / (f.sum() + wrong.sum()),
            "best_f1": best_f1(wrong, score), "expected_wrong": float(score.sum())}


@pytest.mark.parametrize("rate", [0.05, 0.30])
def test_symmetric_noise_estimated_precision_is_within_010_of_the_measured(digits, rate):
    """Uniform flips to any other class (measured: 5% est. 0.970 vs 0.947, 30% est. 0.965 vs 0.977):
    the estimate within 0.10, the expected number of wrong labels within 10% of the planted, and the
    default count at >= 0.95 of the best F1 its score allows."""
    f = _figures(digits, "symmetric", rate, 0)
    assert abs(f["estimated"] - f["precision"]) <= 0.10, f
    assert abs(f["expected_wrong"] - f["wrong"]) <= 0.10 * f["wrong"], f
    assert f["f1"] >= 0.95 * f["best_f1"], f


@pytest.mark.xfail(strict=True, reason="pair noise (1<->7, 3<->8, 4<->9, 5<->6 at 25%): est. P 0.727 for measured "
                                       "0.926 (seed 0); the probe, fitted to the noisy labels, gives a flipped "
                                       "sample p(given) ~0.2 and the noise model's posterior stays soft. Backward "
                                       "correction (pi = p T^-1) gives 0.822 but costs notebook01 / digits_table "
                                       "F1 (NOTES, estp)")
def test_pair_noise_estimated_precision_is_within_010_of_the_measured(digits):
    f = _figures(digits, "pairs", 0.25, 0)
    assert abs(f["estimated"] - f["precision"]) <= 0.10, f
    assert f["f1"] >= 0.95 * f["best_f1"], f
