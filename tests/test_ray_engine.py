"""analyze(ds, engine="ray"): the same Analysis as the local engine, resumable, on a local Ray runtime.

One Ray runtime for the whole session (2 CPUs, no dashboard, a small object store); every actor pool
has one actor (one task at a time where a pass runs as tasks), so a CPU stays free for Ray Data's read
tasks. N is small, so the passes run as tasks on the runtime's running worker processes (an actor pool
is a new process that imports the engine and Ray Data); the IVF test runs every pass as an actor pool,
the path of large inputs. Each Ray run serves several assertions: these tests check results, not speed
(bench/bench_scale.py measures that; bench/results/ray_tests_durations.txt the tests' own time).
Set RAY_ADDRESS to run them on a runtime started beforehand (`ray start --head --num-cpus=2`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

import dqwidgets as dq
from dqwidgets.embed.protocol import ResizeCrop

OPTS = {"chunk_rows": 300, "actors": 1}


@pytest.fixture(scope="session")
def ray_runtime():
    import ray

    from dqwidgets.engine.ray_engine import connect, start_local

    if os.environ.get("RAY_ADDRESS"):  # a runtime started beforehand (`ray start --head --num-cpus=2`)
        connect(os.environ["RAY_ADDRESS"])  # a clear ConnectionError when it does not answer
    elif not ray.is_initialized():
        # retried after a failed start, whose leftover processes are ended; the error names each try
        start_local(num_cpus=2, object_store_memory=200 * 2 ** 20)
    yield ray
    ray.shutdown()


def planted(n=1500, d=32, c=5, seed=0):
    """Gaussian classes with 5% flipped labels, 20 far samples and 20 near copies."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 3
    y = rng.integers(0, c, n)
    X = centers[y] + rng.normal(size=(n, d))
    X[:20] += rng.normal(size=(20, d)) * 8
    X[20:40] = X[40:60] + rng.normal(size=(20, d)) * 0.01
    flip = rng.random(n) < 0.05
    given = np.where(flip, (y + 1) % c, y)
    meta = pd.DataFrame({"source": rng.choice(["a", "b"], n)})
    return X.astype(np.float32), np.array([f"c{v}" for v in given], dtype=object), meta


def assert_same(ray_an, local_an, flag_share=0.995, rho=0.99):
    r, lo = ray_an.samples, local_an.samples
    assert list(r.index) == list(lo.index)
    missing = set(lo.columns) - set(r.columns)
    assert not missing, f"the Ray engine's samples lack {missing}"
    for col in ("is_label_issue", "is_ood", "is_duplicate", "is_invalid"):
        same = (r[col].to_numpy() == lo[col].to_numpy()).mean()
        assert same >= flag_share, f"{col}: only {same:.4f} of the flags agree"
    for col in ("label_issue_score", "ood_score", "duplicate_score"):
        if col == "label_issue_score" and r[col].isna().all() and lo[col].isna().all():
            # random labels: neither engine scores labels the features do not predict (compute.label.label_information)
            assert ray_an.info["label_information_z"] <= 3 and local_an.info["label_information_z"] <= 3
            continue
        ok = r[col].notna() & lo[col].notna()
        assert ok.sum() > 0.9 * len(r)
        got = spearmanr(r.loc[ok, col], lo.loc[ok, col]).statistic
        assert got >= rho, f"{col}: Spearman {got:.4f} between the engines"
    missing = object()  # None == None is False in a pandas comparison: both engines suggesting none agree
    assert (r["suggested_label"].fillna(missing) == lo["suggested_label"].fillna(missing)).mean() >= flag_share


def test_import_dqwidgets_never_imports_ray():
    code = "import sys, dqwidgets, dqwidgets.engine, dqwidgets.engine.parquet; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'faiss')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ray_engine_matches_local_engine(ray_runtime, tmp_path):
    X, labels, meta = planted()
    ds = dq.Dataset.from_arrays(X, labels, metadata=meta)
    an = dq.analyze(ds, engine="ray", engine_options=OPTS, workdir=tmp_path / "ray", progress=False)
    lo = dq.analyze(ds, workdir=tmp_path / "local", progress=False)
    assert an.info["engine"] == "ray" and an.info["graph_method"] == "exact"
    assert_same(an, lo)
    assert 50 <= an.samples["is_label_issue"].sum() <= 120
    knn_ood = an.samples["ood_knn_score"]
    assert knn_ood.iloc[:20].min() > knn_ood.iloc[60:].quantile(0.95)  # the planted far samples score highest
    assert an.samples["is_duplicate"].iloc[20:60].sum() == 20
    # the rest of the Analysis works as for the local engine
    assert list(an.summary()["issue"]) == list(lo.summary()["issue"])
    assert len(an.slices) and an.samples["slice_id"].ge(0).all()
    assert an.features.shape == X.shape and np.allclose(an.features[5], X[5])
    assert an.pred_probs.shape == (len(X), 5)
    an.set_threshold("duplicate_score", 0.5)
    assert an.samples["is_duplicate"].sum() >= 20
    an.review.relabel([an.samples.index[0]], "c1")
    assert an.samples["current_label"].iloc[0] == "c1"
    out = an.export(tmp_path / "clean")
    assert (tmp_path / "clean" / "manifest.json").exists() and out is not None
    dq.Explorer(an)
    # a second call reuses every stage
    again = dq.analyze(ds, engine="ray", engine_options=OPTS, workdir=tmp_path / "ray", progress=False)
    assert again.info["embed_chunks_computed"] is not None
    assert (again.samples["label_issue_score"].to_numpy() == an.samples["label_issue_score"].to_numpy()).all()


class FlakyText:
    """A deterministic text embedder (hashed character trigrams) that fails on the texts of the rows
    from ``fail_from`` on while ``fail_flag`` exists: a model crashing mid-stage."""

    name, version, modality, dimension = "trigram-test", "1", "text", 64

    def __init__(self, fail_flag: str, fail_from: int = 450):
        self.fail_flag, self.fail_from = fail_flag, fail_from

    def embed_batch(self, texts, device):
        if Path(self.fail_flag).exists() and max(int(t.rsplit(" ", 1)[1]) for t in texts) >= self.fail_from:
            raise RuntimeError("planted failure in the embedding stage")
        out = np.zeros((len(texts), self.dimension), np.float32)
        for i, t in enumerate(texts):
            for j in range(len(t) - 2):
                out[i, zlib.crc32(t[j:j + 3].encode()) % self.dimension] += 1.0
        return torch.as_tensor(out)


def _texts(n=900, seed=1):
    rng = np.random.default_rng(seed)
    topics = {"sport": ["goal", "match", "team", "score", "league"], "food": ["bread", "salt", "soup", "cook", "bake"],
              "tech": ["chip", "code", "disk", "byte", "cloud"]}
    names = list(topics)
    y = rng.integers(0, 3, n)
    texts = [" ".join(rng.choice(topics[names[c]], 6)) + f" {i}" for i, c in enumerate(y)]
    given = [names[(c + 1) % 3] if rng.random() < 0.05 else names[c] for c in y]
    texts[7] = ""  # an empty text: flagged, left out of the graph, the run goes on
    return pd.DataFrame({"text": texts, "label": given})


def test_killed_embedding_stage_resumes_with_the_same_result(ray_runtime, tmp_path):
    from ray import cloudpickle  # Ray's own pickler ships this module's embedder to the actors

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    flag = tmp_path / "fail"
    flag.write_text("1")
    frame = _texts()
    # 10 copies that differ only by case and punctuation: far apart for the (case-sensitive) trigram
    # embedding, one text for the normalised-text channel of the duplicate step
    for j in range(10):
        src = 10 + j
        words = frame.loc[src, "text"].split(" ")
        frame.loc[880 + j, "text"] = " , ".join(w.upper() for w in words[:-1]) + "! " + words[-1]
        frame.loc[880 + j, "label"] = frame.loc[src, "label"]
    ds = dq.Dataset.from_dataframe(frame, text="text", label="label")
    emb = FlakyText(str(flag))
    opts = {**OPTS, "chunk_rows": 150}  # 6 chunks; the one actor embeds each in one batch
    with pytest.raises(Exception, match="planted failure"):
        dq.analyze(ds, embedder=emb, engine="ray", engine_options=opts, workdir=tmp_path / "ray", progress=False)
    shards = list((tmp_path / "ray").rglob("embed-*/part-*.parquet"))
    assert 0 < len(shards) < 6, "the failed run should have left some, not all, embedding shards"
    before = {p: p.stat().st_mtime_ns for p in shards}
    flag.unlink()
    an = dq.analyze(ds, embedder=FlakyText(str(flag)), engine="ray", engine_options=opts,
                    workdir=tmp_path / "ray", progress=False)
    assert an.info["embed_chunks_computed"] == 6 - len(shards)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "a written shard was embedded again"
    assert an.samples.loc[7, "is_empty"] and an.samples.loc[7, "is_invalid"]
    lo = dq.analyze(ds, embedder=FlakyText(str(flag)), workdir=tmp_path / "local", progress=False)
    assert_same(an, lo)
    for a in (an, lo):  # each copy and its source form a group, found by the normalised-text channel
        group = a.samples["duplicate_group"].to_numpy()
        assert (group[880:890] >= 0).all() and (group[880:890] == group[10:20]).all()
    assert (an.samples["duplicate_group"] == lo.samples["duplicate_group"]).all()


class PixelEmbedder:
    """A model-free image embedder: a fixed random projection of the 28 px grayscale pixels."""

    name, version, modality, dimension = "pixel-projection-test", "1", "image", 32

    def __init__(self):
        self.transform = ResizeCrop(28)
        self.proj = torch.as_tensor(np.random.default_rng(0).normal(size=(28 * 28, 32)), dtype=torch.float32)

    def embed_batch(self, batch, device):
        return (batch.float().mean(1).reshape(len(batch), -1) / 255.0) @ self.proj


def test_table_near_copies_by_their_cells_as_the_local_engine(ray_runtime, tmp_path):
    """Precomputed features are compared cell by cell in the Ray engine's duplicate step as in the local
    one (compute.duplicates.with_cells on the assembled features file): the digits table's copies with
    3 of 64 cells moved by 1 form the same groups in both engines."""
    from dqwidgets.embed.tabular import tabular_features
    from dqwidgets.planted import digits_table_case

    case = digits_table_case()
    X, _ = tabular_features(case.data, list(case.data.columns))
    ds = dq.Dataset.from_arrays(X, case.labels)
    an = dq.analyze(ds, engine="ray", engine_options=OPTS, layout="pca", workdir=tmp_path / "ray", progress=False)
    lo = dq.analyze(ds, layout="pca", workdir=tmp_path / "local", progress=False)
    group = an.samples["duplicate_group"].to_numpy()
    cp = np.flatnonzero(case.copy_of >= 0)
    assert ((group[cp] >= 0) & (group[cp] == group[case.copy_of[cp]])).mean() >= 0.95
    assert (an.samples["duplicate_group"] == lo.samples["duplicate_group"]).all()
    assert np.allclose(an.samples["duplicate_score"], lo.samples["duplicate_score"], atol=1e-5, equal_nan=True)


def test_image_near_copies_by_their_signatures_as_the_local_engine(ray_runtime, tmp_path):
    """The duplicate step is the local engine's (compute.duplicates.near_copy_edges) on the Ray graph:
    copies shifted by 1-2 px, which the pixel embedding does not keep close, are found by the images'
    thumbnails, in both engines alike."""
    import io

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    base = [np.clip(gaussian_filter(rng.normal(0, 1, (28, 28)), 1.0) * 300 + 128, 0, 255).astype(np.uint8)
            for _ in range(150)]

    def shifted(img, dy, dx):  # the uncovered border black
        out = np.zeros_like(img)
        out[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = img[max(-dy, 0):28 + min(-dy, 0),
                                                                          max(-dx, 0):28 + min(-dx, 0)]
        return out

    copies = [shifted(base[i], 1 + i % 2, -1) for i in range(12)]

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    labels = list(rng.choice(["a", "b", "c"], 150)) + [None] * 12
    labels[150:] = labels[:12]
    frame = pd.DataFrame({"image": [png(a) for a in base + copies], "label": labels})
    ds = dq.Dataset.from_dataframe(frame, image="image", label="label")
    an = dq.analyze(ds, embedder=PixelEmbedder(), engine="ray", engine_options={**OPTS, "chunk_rows": 60},
                    layout="pca", workdir=tmp_path / "ray", progress=False)
    lo = dq.analyze(ds, embedder=PixelEmbedder(), layout="pca", workdir=tmp_path / "local", progress=False)
    assert_same(an, lo)
    for a in (an, lo):
        group = a.samples["duplicate_group"].to_numpy()
        assert (group[150:] >= 0).all() and (group[150:] == group[:12]).all()
        assert (group[12:150] < 0).mean() > 0.95  # distinct noise images are not copies
    # the embedding alone does not keep them close: most copies' nearest neighbour is another image,
    # and some have their source outside their k graph neighbours (found by the signature candidates)
    idx = np.asarray(an.graph.indices)[150:]
    assert (idx[:, 0] != np.arange(12)).sum() >= 4
    assert sum(i not in idx[i] for i in range(12)) >= 1
    assert np.allclose(an.samples["duplicate_score"], lo.samples["duplicate_score"], atol=1e-5, equal_nan=True)
    assert (an.samples["duplicate_group"] == lo.samples["duplicate_group"]).all()


def test_sharded_ivf_graph_recall_at_10_and_a_fit_sample_set_aside_by_the_embed_stage(ray_runtime, tmp_path):
    from dqwidgets.engine import ray_engine, stages

    rng = np.random.default_rng(3)
    centers = rng.normal(size=(20, 24)) * 2
    y = rng.integers(0, 20, 6000)
    X = (centers[y] + rng.normal(size=(6000, 24))).astype(np.float32)
    ds = dq.Dataset.from_arrays(X, np.array([f"k{v % 4}" for v in y], dtype=object))
    # every pass an actor pool (the path of large inputs: "auto" runs 6,000 rows as tasks)
    opts = {**OPTS, "chunk_rows": 1500, "knn": "ivf", "fit_sample": 1500, "pool": "actors"}
    an = dq.analyze(ds, engine="ray", k=10, layout="pca", progress=False, workdir=tmp_path, engine_options=opts)
    assert an.info["graph_method"] == "ivf"
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    queries = rng.choice(len(X), 400, replace=False)
    sim = Xn[queries] @ Xn.T
    sim[np.arange(len(queries)), queries] = -np.inf
    exact = np.argsort(-sim, axis=1)[:, :10]
    got = np.asarray(an.graph.indices)[queries]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])
    assert recall >= 0.95, f"recall@10 of the sharded IVF graph is {recall:.3f}"
    # nprobe chosen by the recall on the fit sample's queries (target 0.97), fewer than every cell
    knn = an.info["knn"]
    assert knn["sample_recall"] >= knn["target_recall"] == 0.97 and knn["queries"] == 1000, knn
    assert 1 < knn["nprobe"] < knn["cells"], knn
    # the shards are runs of whole cells: every valid row searched once
    knn_shards = sorted(tmp_path.rglob("knn/part-*.parquet"))
    searched = np.concatenate([pd.read_parquet(p, columns=["vrow"])["vrow"].to_numpy() for p in knn_shards])
    assert len(knn_shards) == knn["chunks"] > 1 and np.array_equal(np.sort(searched), np.arange(len(X)))
    # the one kNN actor searched with the runtime's 2 CPUs (Ray starts an actor with OMP_NUM_THREADS=1)
    assert {stages.shard_metadata(p)["search_threads"] for p in knn_shards} == {2}

    # the fit read the ~1.1 x 1,500 + 200 rows of 6,000 the embed stage set aside, the score pass every row once
    scans = an.info["embedding_scans"]
    assert scans["score"] == 1.0 and 0.25 < scans["fit"] < 0.4, scans
    fitted = ray_engine._load_pickle(next(tmp_path.rglob("fit/fit.pkl")))
    assert len(fitted["sample_rows"]) == 1500
    # embed shards without the set-aside rows (an older run) give the same sample by scanning every shard
    embed_dir = next(tmp_path.rglob("embed-*/_DONE.json")).parent
    shards = sorted(str(p) for p in embed_dir.glob("part-*.parquet"))
    vpos = np.arange(len(X), dtype=np.int64)
    for d in embed_dir.glob("sample-*"):
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    rows, Xs, read = ray_engine._read_fit_sample(ray_runtime, stages.Stage(embed_dir.parent, embed_dir.name),
                                                 shards, vpos, len(X), 1500)
    assert read == len(X)  # a whole scan
    assert np.array_equal(rows, fitted["sample_rows"]) and np.array_equal(Xs, X[rows])


def test_bad_engine_arguments(ray_runtime, tmp_path):
    X, labels, _ = planted(n=200)
    ds = dq.Dataset.from_arrays(X, labels)
    with pytest.raises(ValueError, match="engine must be one of"):
        dq.analyze(ds, engine="spark")
    with pytest.raises(ValueError, match=r"reference= is not supported by the Ray engine.*engine='local'"):
        dq.analyze(ds, engine="ray", reference=dq.analyze(ds, layout="pca", progress=False, workdir=tmp_path))
    with pytest.raises(ValueError, match=r"pred_probs must be N x C = 200 x 5"):  # checked as locally
        dq.analyze(ds, engine="ray", pred_probs=np.full((200, 4), 0.25, np.float32), workdir=tmp_path)
    with pytest.raises(ValueError, match="unknown engine_options"):
        dq.analyze(ds, engine="ray", engine_options={"chunks": 3})
    with pytest.raises(ConnectionError, match="does not answer"):
        dq.analyze(ds, engine="ray", engine_options={"address": "127.0.0.1:9"}, workdir=tmp_path)


def test_user_logits_and_a_training_run_as_the_local_engine(ray_runtime, tmp_path):
    from dqwidgets.examples import train_recorded

    X, labels, _ = planted(n=900, d=16, c=3)
    classes = sorted(set(labels))
    codes = np.array([classes.index(v) for v in labels])
    ids = [f"s{i}" for i in range(len(X))]
    rec = dq.TrainingRecorder(tmp_path / "train", name="run", classes=classes)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    train_recorded(model, torch.as_tensor(X), torch.as_tensor(codes), ids, rec, 4, lr=0.05, momentum=0.9)
    with torch.no_grad():
        logits = model(torch.as_tensor(X)).numpy()
    ds = dq.Dataset.from_arrays(X, labels, ids=ids)
    kw = dict(logits=logits, training=rec, layout="pca", progress=False)
    an = dq.analyze(ds, engine="ray", engine_options=OPTS, workdir=tmp_path / "ray", **kw)
    lo = dq.analyze(ds, workdir=tmp_path / "local", **kw)
    assert_same(an, lo)
    assert "ood_energy_score" in an.samples and "aum_score" in an.samples
    for col in ("ood_energy_score", "aum", "aum_score"):
        assert np.allclose(an.samples[col], lo.samples[col], equal_nan=True, atol=1e-5), col
    assert np.allclose(an.pred_probs, lo.pred_probs, atol=1e-6)  # the user's model, no probe fitted
    assert an.info["training"] is not None


@pytest.mark.skipif(bool(os.environ.get("RAY_ADDRESS")), reason="a runtime started beforehand keeps its own settings")
def test_local_runtime_workers_run_at_the_callers_priority(ray_runtime):
    """Ray's default starts workers at nice 15: on a shared machine the passes would get a small share."""
    def niceness():
        return os.nice(0)

    assert ray_runtime.get(ray_runtime.remote(niceness).remote()) == os.nice(0)


def test_ray_missing_names_the_pip_command(monkeypatch):
    from dqwidgets.engine import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'dqwidgets\[ray\]'"):
        ray_engine.import_ray()


def test_a_failed_local_start_is_cleaned_up_tried_again_and_explained(monkeypatch):
    """Ray's "timed out during startup" (a loaded machine): the processes the failed start left behind
    are ended, the start is tried again, and the error names every try and where the logs are."""
    import time

    import ray

    from dqwidgets.engine import ray_engine

    left_behind = []

    def failing_init(**kwargs):
        assert kwargs["address"] == "local" and kwargs["include_dashboard"] is False
        left_behind.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        raise RuntimeError("The current node timed out during startup. This could happen because some of the "
                           "raylet failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", failing_init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)  # the session's runtime, if any, stays up
    with pytest.raises(RuntimeError, match=r"could not start a local Ray runtime \(try 1 after \d+ s: .*"
                                           r"try 3 after .*session_latest/logs.*ray start --head"):
        ray_engine.start_local(num_cpus=2)
    assert len(left_behind) == 3

    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(running(p.pid) for p in left_behind) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(p.pid) for p in left_behind), "a failed start's processes were left running"


def test_an_over_parameterised_probe_chooses_its_penalty_as_the_local_engine(ray_runtime, tmp_path):
    """More weights than rows (800-d, 5 classes, 600 rows, 15% flipped labels): both engines search the
    penalty path (compute.probe.choose_l2) and land on the same stronger penalty, which names the
    true classes better than the weakest one, and flag the same samples."""
    from dqwidgets.compute.probe import L2_PATH

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 600)
    X = (rng.normal(0, 0.25, (5, 800))[y] + rng.normal(size=(600, 800))).astype(np.float32)
    given = np.where(rng.random(600) < 0.15, rng.integers(0, 5, 600), y)
    ds = dq.Dataset.from_arrays(X, np.array([f"c{v}" for v in given]))
    an = dq.analyze(ds, engine="ray", engine_options=OPTS, workdir=tmp_path / "ray", progress=False, layout="pca")
    lo = dq.analyze(ds, workdir=tmp_path / "local", progress=False, layout="pca")
    assert lo.info["probe_l2"] > min(L2_PATH)
    assert an.calibration.probe_l2 == lo.info["probe_l2"]
    truth = np.array([f"c{v}" for v in y])
    assert (an.samples["predicted_label"].to_numpy() == truth).mean() >= 0.97
    flags = (an.samples["is_label_issue"].to_numpy() == lo.samples["is_label_issue"].to_numpy()).mean()
    assert flags >= 0.97, flags
