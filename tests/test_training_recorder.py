"""TrainingRecorder: a plain PyTorch loop, the Hugging Face and Lightning callbacks, resuming, unknown
ids, an interrupted run, and logits that live on disk (memory-mapped), not in RAM."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import dqwidgets as dq
from dqwidgets.examples import train_recorded
from dqwidgets.training import TrainingRecorder, training_scores


def _toy(n=40, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    ids = [f"s{i:03d}" for i in range(n)]
    return X, y, ids


def _train(rec, X, y, ids, epochs, start=0, batch=8, stop_after=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    return train_recorded(model, X, y, ids, rec, epochs, lr=0.5, batch_size=batch, start_epoch=start,
                          stop_after=stop_after)


def test_plain_loop_records_every_sample_every_epoch_in_the_datasets_ids(tmp_path):
    X, y, ids = _toy()
    rec = TrainingRecorder(tmp_path)
    _train(rec, X, y, ids, epochs=3)
    assert rec.epochs == [0, 1, 2]
    assert sorted(rec.ids) == sorted(ids)
    pos, logits = rec.epoch_logits(1)
    assert logits.shape == (40, 3) and sorted(pos.tolist()) == list(range(40))
    assert (rec.path / "meta.json").exists() and rec.path.parent.name == "training"


def test_logits_are_memory_mapped_from_disk_not_kept_in_ram(tmp_path):
    X, y, ids = _toy()
    rec = TrainingRecorder(tmp_path, dtype="float16")
    _train(rec, X, y, ids, epochs=2)
    pos, logits = rec.epoch_logits(0)
    assert isinstance(logits, np.memmap) and isinstance(pos, np.memmap)
    assert logits.dtype == np.float16
    assert (rec.path / "epoch_00000.logits").stat().st_size == 40 * 3 * 2
    # the recorder object holds no array of logits: only ids, their positions and the open files
    held = [v for v in vars(rec).values() if isinstance(v, np.ndarray)]
    assert held == []


def test_resuming_appends_epochs_and_restarting_the_last_epoch_overwrites_it(tmp_path):
    X, y, ids = _toy()
    rec = TrainingRecorder(tmp_path)
    _train(rec, X, y, ids, epochs=2)
    _train(rec, X, y, ids, epochs=1, start=2, stop_after=2)  # interrupted in epoch 2 after 2 batches
    rec.close()
    assert len(rec.epoch_logits(2)[0]) == 16

    again = TrainingRecorder(tmp_path)  # the run restarts from its epoch-2 checkpoint
    assert again.epochs == [0, 1, 2] and sorted(again.ids) == sorted(ids)
    _train(again, X, y, ids, epochs=2, start=2)
    assert again.epochs == [0, 1, 2, 3]
    assert len(again.epoch_logits(2)[0]) == 40  # overwritten, not 16 + 40
    assert len(again.ids) == 40  # no id stored twice
    with pytest.raises(ValueError, match=r"epoch 1 is already recorded .*truncate\(1\)"):
        TrainingRecorder(tmp_path).log(ids[:2], np.zeros((2, 3)), 1)
    third = TrainingRecorder(tmp_path)
    third.truncate(1)
    assert third.epochs == [0]
    third.log(ids[:2], np.zeros((2, 3)), 1)
    assert third.epochs == [0, 1]


def test_epochs_go_forward_and_shapes_are_checked(tmp_path):
    rec = TrainingRecorder(tmp_path)
    rec.log(["a", "b"], np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="log epochs in increasing order"):
        rec.log(["a"], np.zeros((1, 3)), 0)
    with pytest.raises(ValueError, match="records 3 outputs per sample, got 4"):
        rec.log(["a"], np.zeros((1, 4)), 1)
    with pytest.raises(ValueError, match="one row per id"):
        rec.log(["a", "b"], np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match="whole number"):
        rec.log(["a"], np.zeros((1, 3)), 1.5)


def test_ids_the_bound_dataset_lacks_are_refused_at_log_time(tmp_path):
    ds = dq.Dataset.from_arrays(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32),
                                labels=np.array(["a", "b"] * 5), ids=[f"x{i}" for i in range(10)])
    rec = TrainingRecorder(tmp_path, dataset=ds)
    rec.log(["x1", "x2"], np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match=r"1 of 2 ids are not in the bound dataset \(first: \[3\]\)"):
        rec.log(["x1", 3], np.zeros((2, 2)), 0)


def test_ids_the_dataset_lacks_are_a_clear_error_at_analyze_time(tmp_path):
    rec = TrainingRecorder(tmp_path)
    rec.log(["x1", "zzz"], np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match=r"1 ids logged in the TrainingRecorder .* not in the dataset \(first: \['zzz'\]\)"):
        training_scores(rec, [f"x{i}" for i in range(10)], np.zeros(10, np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="holds no logged epochs"):
        training_scores(TrainingRecorder(tmp_path, name="empty"), ["x1"], np.zeros(1, np.int64), ["a", "b"])


def test_a_run_killed_mid_epoch_keeps_every_batch_logged_before(tmp_path):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from dqwidgets.training import TrainingRecorder
        rec = TrainingRecorder({str(tmp_path)!r})
        for e in range(2):
            for b in range(5):
                rec.log([f"s{{e}}{{b}}{{i}}" for i in range(4)], np.full((4, 3), e * 10 + b, np.float32), e)
                if e == 1 and b == 2:
                    os._exit(3)  # killed: no close, no atexit
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr
    rec = TrainingRecorder(tmp_path)
    assert rec.epochs == [0, 1]
    pos, logits = rec.epoch_logits(1)
    assert len(pos) == 12 and logits[:, 0].tolist() == [10] * 4 + [11] * 4 + [12] * 4
    assert len(rec.epoch_logits(0)[0]) == 20
    # a row torn by the kill (half written) is ignored, not misread
    with open(rec.path / "epoch_00001.logits", "ab") as f:
        f.write(b"\x00" * 5)
    assert len(TrainingRecorder(tmp_path).epoch_logits(1)[0]) == 12


def test_training_scores_from_a_plain_loop(tmp_path):
    X, y, ids = _toy(n=60)
    y[:6] = (y[:6] + 1) % 3  # a few wrong labels
    rec = TrainingRecorder(tmp_path, classes=["a", "b", "c"])
    _train(rec, X, y, ids, epochs=4)
    out = training_scores(rec, ids + ["never_logged"], np.r_[y.numpy(), 0], ["a", "b", "c"])
    cols = out["columns"]
    assert set(cols) >= {"aum", "is_low_aum", "cartography_confidence", "cartography_variability",
                         "cartography_correctness", "cartography_region", "forgetting_events"}
    assert np.isnan(cols["aum"][-1]) and cols["cartography_region"][-1] is None
    assert np.isfinite(cols["aum"][:-1]).all()
    assert out["info"]["aum_rule"].startswith("fallback")
    assert (cols["is_low_aum"][:-1] == (cols["aum"][:-1] < 0)).all()


def test_the_models_output_order_is_mapped_to_the_datasets_classes(tmp_path):
    X, y, ids = _toy(n=30)
    rec = TrainingRecorder(tmp_path, name="abc", classes=["a", "b", "c"])
    _train(rec, X, y, ids, epochs=2)
    plain = training_scores(rec, ids, y.numpy(), ["a", "b", "c"])["columns"]["aum"]
    # the same run, recorded by a model whose outputs are (c, a, b)
    perm = TrainingRecorder(tmp_path, name="cab", classes=["c", "a", "b"])
    for e in rec.epochs:
        pos, logits = rec.epoch_logits(e)
        perm.log([rec.ids[p] for p in pos], np.asarray(logits)[:, [2, 0, 1]], e)
    assert np.allclose(training_scores(perm, ids, y.numpy(), ["a", "b", "c"])["columns"]["aum"], plain)
    # integer labels 0..C-1 need no classes=; named classes do
    unnamed = TrainingRecorder(tmp_path, name="unnamed")
    for e in rec.epochs:
        pos, logits = rec.epoch_logits(e)
        unnamed.log([rec.ids[p] for p in pos], logits, e)
    assert np.allclose(training_scores(unnamed, ids, y.numpy(), [0, 1, 2])["columns"]["aum"], plain)
    with pytest.raises(ValueError, match=r"does not say which class each of the model's 3 outputs is.*classes=\["):
        training_scores(unnamed, ids, y.numpy(), ["a", "b", "c"])


def test_threshold_samples_set_the_aum_cut(tmp_path):
    X, y, ids = _toy(n=80)
    rec = TrainingRecorder(tmp_path, classes=["a", "b", "c"])
    train_y = rec.assign_threshold_samples(ids, y, n_classes=3, seed=0)
    assert (train_y == 3).sum() == 20 and len(rec.threshold_ids) == 20
    with pytest.raises(ValueError, match="needs 4 outputs"):
        rec.log(ids[:1], np.zeros((1, 3)), 0)
    _train(rec, X, torch.as_tensor(train_y), ids, epochs=3)
    out = training_scores(TrainingRecorder(tmp_path), ids, y.numpy(), ["a", "b", "c"])
    cols, info = out["columns"], out["info"]
    thr = cols["is_threshold_sample"]
    assert thr.sum() == 20 and np.isnan(cols["aum"][thr]).all() and not cols["is_low_aum"][thr].any()
    assert info["aum_rule"].startswith("threshold samples") and info["n_threshold_samples"] == 20


def test_huggingface_trainer_callback_logs_every_epoch(tmp_path):
    from transformers import Trainer, TrainingArguments

    X, y, ids = _toy(n=24)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, i):
            return {"x": X[i], "labels": y[i]}

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 3)

        def forward(self, x, labels=None):
            logits = self.lin(x)
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return {"loss": loss, "logits": logits}

    rec = TrainingRecorder(tmp_path)
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=2, per_device_train_batch_size=8,
                             report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                             disable_tqdm=True)
    model = Tiny()
    Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[rec.huggingface_callback(ids)]).train()
    assert rec.epochs == [0, 1]
    pos, logits = rec.epoch_logits(1)
    assert [rec.ids[p] for p in pos] == ids  # the training set in order
    with torch.no_grad():
        expected = model.lin(X).numpy()
    assert np.allclose(logits, expected, atol=1e-5)  # the end-of-epoch model's logits


def test_lightning_callback_logs_the_training_step_logits(tmp_path):
    import lightning.pytorch as pl

    X, y, ids = _toy(n=24)
    id_codes = torch.arange(24)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 3)

        def training_step(self, batch, batch_idx):
            xb, yb, ib = batch
            logits = self.lin(xb)
            return {"loss": torch.nn.functional.cross_entropy(logits, yb), "logits": logits, "ids": ib}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y, id_codes), batch_size=8, shuffle=True)
    rec = TrainingRecorder(tmp_path, ids=list(range(24)))
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[rec.lightning_callback()])
    trainer.fit(Module(), loader)
    assert rec.epochs == [0, 1, 2]
    pos, logits = rec.epoch_logits(2)
    assert sorted(rec.ids[p] for p in pos) == list(range(24)) and logits.shape == (24, 3)


def test_import_dqwidgets_imports_neither_transformers_nor_lightning():
    code = "import sys, dqwidgets; print(any(m.split('.')[0] in ('transformers', 'lightning', 'pytorch_lightning') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_threshold_sample_rule_flags_planted_noise_near_the_best_cut(tmp_path):
    # 4 overlapping Gaussian classes, 30% of the labels flipped to another class at random
    rng = np.random.default_rng(1)
    n, d, c = 800, 8, 4
    centres = np.random.default_rng(99).normal(0, 1.5, (c, d))
    y = rng.integers(0, c, n)
    X = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    flip = rng.random(n) < 0.3
    given = y.copy()
    given[flip] = (y[flip] + rng.integers(1, c, flip.sum())) % c
    ids = [f"s{i}" for i in range(n)]
    rec = TrainingRecorder(tmp_path, classes=list("abcd"))
    train_y = rec.assign_threshold_samples(ids, given, n_classes=c, seed=1)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), torch.nn.Linear(32, c + 1))
    train_recorded(model, torch.as_tensor(X), torch.as_tensor(train_y), ids, rec, 10, lr=0.1, momentum=0.9, seed=1)
    cols = training_scores(rec, ids, given, list("abcd"))["columns"]
    keep = ~cols["is_threshold_sample"]
    aum, truth, flags = cols["aum"][keep], flip[keep], cols["is_low_aum"][keep]

    def f1(flagged):
        return 2 * (truth & flagged).sum() / (truth.sum() + flagged.sum())

    best = max(f1(aum <= a) for a in np.unique(aum))
    assert f1(flags) >= best - 0.05
