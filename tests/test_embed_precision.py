"""Text embeddings in bfloat16 on the CPU are the float32 embeddings, to the precision a kNN graph sees."""

import numpy as np
import torch

import dqwidgets.embed.sentence as sentence
from dqwidgets.embed.sentence import SentenceTransformerEmbedder


def test_minilm_bfloat16_autocast_matches_float32(monkeypatch):
    texts = ["A wonderful, joyful movie.", "The soup was cold and salty.", "Terrible food, rude waiter.",
             "an utterly forgettable sequel that nobody asked for " * 6, "ok"]
    emb = SentenceTransformerEmbedder.minilm()
    cpu = torch.device("cpu")
    monkeypatch.setattr(sentence, "native_bf16", lambda: False)
    f32 = emb.embed_batch(texts, cpu).numpy()
    monkeypatch.setattr(sentence, "native_bf16", lambda: True)
    assert isinstance(sentence.cpu_autocast(cpu), torch.autocast)
    bf16 = emb.embed_batch(texts, cpu).numpy()
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape == (5, 384)
    cos = (f32 * bf16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.999
    # the nearest other text is the same in both precisions
    assert ((f32 @ f32.T - 2 * np.eye(5)).argmax(1) == (bf16 @ bf16.T - 2 * np.eye(5)).argmax(1)).all()


def test_bfloat16_is_off_when_disabled_and_never_used_on_cuda(monkeypatch):
    monkeypatch.setenv("DQ_CPU_BF16", "0")
    sentence.native_bf16.cache_clear()
    try:
        assert sentence.native_bf16() is False
        assert not isinstance(sentence.cpu_autocast(torch.device("cpu")), torch.autocast)
    finally:
        sentence.native_bf16.cache_clear()
    assert not isinstance(sentence.cpu_autocast(torch.device("cuda")), torch.autocast)
