"""Text embeddings on the CPU: bfloat16 only where the CPU computes it natively, and only when its
embeddings are the float32 ones to the precision a kNN graph sees; the user's model is left as it is."""

import copy

import numpy as np
import pytest
import torch

import dqwidgets.embed.sentence as sentence
from dqwidgets.embed.sentence import SentenceTransformerEmbedder
from dqwidgets.examples import load_rotten_tomatoes

# /proc/cpuinfo flags of the CPUs these figures come from (trimmed to the instruction-set part)
AMD_EPYC_AVX2 = set("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi1 bmi2 sha_ni vaes vpclmulqdq".split())
XEON_AMX = AMD_EPYC_AVX2 | set("avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8".split())
ZEN4_AVX512_BF16 = AMD_EPYC_AVX2 | set("avx512f avx512bw avx512vl avx512_vnni avx512_bf16".split())


@pytest.fixture
def cpu_with(monkeypatch):
    def use(flags):
        monkeypatch.delenv("DQ_CPU_BF16", raising=False)
        monkeypatch.setattr(sentence, "cpu_flags", lambda: set(flags))
        sentence.native_bf16.cache_clear()
    yield use
    sentence.native_bf16.cache_clear()


def texts():
    df = load_rotten_tomatoes(n=120, seed=5)
    return df["text"].astype(str).tolist() + ["ok", "an utterly forgettable sequel that nobody asked for " * 6]


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_cpu_feature_detection(cpu_with, monkeypatch):
    cpu_with(AMD_EPYC_AVX2)
    assert sentence.native_bf16() is False            # bf16 would be emulated there: float32
    cpu_with(XEON_AMX)
    assert sentence.native_bf16() is True
    cpu_with(ZEN4_AVX512_BF16)
    assert sentence.native_bf16() is True
    cpu_with(set())                                   # no /proc/cpuinfo (macOS, Windows), or no flags line
    assert sentence.native_bf16() is False
    cpu_with(XEON_AMX)
    monkeypatch.setenv("DQ_CPU_BF16", "0")            # the documented switch
    sentence.native_bf16.cache_clear()
    assert sentence.native_bf16() is False


def test_cpu_flags_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(fake if path == "/proc/cpuinfo" else path, *a, **k))
    assert sentence.cpu_flags() == {"fpu", "sse2", "avx2", "fma"}


def test_bfloat16_path_matches_float32_and_leaves_the_model_alone(cpu_with):
    batch = texts()
    cpu = torch.device("cpu")
    cpu_with(AMD_EPYC_AVX2)
    f32_emb = SentenceTransformerEmbedder.minilm()
    f32 = f32_emb.embed_batch(batch, cpu).numpy()
    assert f32_emb.cpu_precision == "float32"
    assert "bfloat16" not in f32_emb.cpu_check_cosine          # never tried on a CPU without native bf16

    cpu_with(XEON_AMX)
    emb = SentenceTransformerEmbedder.minilm()
    threads = torch.get_num_threads()
    bf16 = emb.embed_batch(batch, cpu).numpy()
    assert torch.get_num_threads() == threads                  # restored after the side-by-side runs
    assert emb.cpu_precision == "bfloat16" and emb.cpu_check_cosine["bfloat16"] >= sentence.CPU_MIN_COSINE
    assert {p.dtype for p in emb.model_on(cpu).parameters()} == {torch.float32}
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape == (len(batch), 384)
    assert cosines(f32, bf16).min() >= 0.999
    # the kNN graph a user's analysis is built on: each text's 10 nearest others, nearly the same sets
    off = 2 * np.eye(len(batch))
    near32, near16 = (np.argsort(-(e @ e.T - off), 1)[:, :10] for e in (f32, bf16))
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near32, near16)])
    assert kept >= 0.95, kept                                   # measured 0.989 (1-NN: 0.959, near ties)


def test_a_bfloat16_copy_that_drifts_from_float32_is_not_used(cpu_with, monkeypatch):
    """A model whose bf16 copy loses too much (planted: its weights perturbed) runs in float32."""
    def drifting_copy(model):
        twin = copy.deepcopy(model).to(torch.bfloat16).eval()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in twin.parameters():
                if p.ndim == 2:
                    p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * p.float().std().to(p.dtype))
        return twin

    cpu_with(XEON_AMX)
    monkeypatch.setattr(sentence, "bfloat16_copy", drifting_copy)
    batch = texts()[:40]
    emb = SentenceTransformerEmbedder.minilm()
    got = emb.embed_batch(batch, torch.device("cpu")).numpy()
    assert emb.cpu_check_cosine["bfloat16"] < sentence.CPU_MIN_COSINE
    assert emb.cpu_precision == "float32"
    want = emb.model_on(torch.device("cpu")).encode(batch, normalize_embeddings=True)
    assert cosines(got, want).min() >= 0.9999
