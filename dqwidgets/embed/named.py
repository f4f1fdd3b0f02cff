"""Embedders loaded by name through timm, open_clip, transformers or sentence-transformers.

Names take a library prefix: ``timm:convnext_tiny``, ``open_clip:ViT-B-32/laion2b_s34b_b79k``,
``transformers:facebook/dinov2-small``, ``sentence-transformers:BAAI/bge-small-en-v1.5``. A name
without a prefix is tried with sentence-transformers (texts) or timm (images), then transformers.
Weights come from the Hugging Face hub or the library's cache; offline, loading fails with a
ValueError that says which package or local path to provide.
"""

from __future__ import annotations

import importlib
from importlib import metadata

import torch

from dqwidgets.embed.module import CallableTextEmbedder
from dqwidgets.embed.protocol import IMAGENET_MEAN, IMAGENET_STD, TorchImageEmbedder, pooled
from dqwidgets.embed.sentence import SentenceTransformerEmbedder, quiet_transformers

LIBRARIES = {"timm": "timm", "open_clip": "open_clip_torch", "transformers": "transformers",
             "sentence-transformers": "sentence-transformers"}


def load_named(spec: str, modality: str):
    library, _, model_id = spec.partition(":") if ":" in spec and spec.split(":")[0] in LIBRARIES \
        else ("", "", spec)
    if library:
        return _LOADERS[library](model_id, modality)
    order = ["sentence-transformers", "transformers"] if modality == "text" else ["timm", "transformers"]
    errors = []
    for lib in order:
        try:
            return _LOADERS[lib](model_id, modality)
        except ValueError as e:
            errors.append(str(e))
    raise ValueError(f"embedder {spec!r} could not be loaded for {modality} data. Tried: " + " | ".join(errors)
                     + ". Use a built-in ('auto', 'efficientnet-lite0', 'all-MiniLM-L6-v2'), prefix the name "
                       "with its library (timm:, open_clip:, transformers:, sentence-transformers:), or pass "
                       "a torch.nn.Module or callable")


def _import(library: str, spec: str):
    try:
        return importlib.import_module(library.replace("-", "_"))
    except ImportError:
        raise ValueError(f"embedder {spec!r} needs the package {LIBRARIES[library]}: "
                         f"pip install {LIBRARIES[library]}") from None


def _load_failed(library, model_id, e):
    return ValueError(
        f"{library} could not load {model_id!r} ({type(e).__name__}: {str(e)[:300]}). Offline? Download the "
        "weights on a machine with internet (they land in the Hugging Face / torch hub cache; copy that folder "
        "and set HF_HOME), or pass a local model folder / a loaded torch.nn.Module")


def _version(dist, model_id):
    return f"{model_id}+{metadata.version(dist)}"


class _LoadedImageEmbedder(TorchImageEmbedder):
    def __init__(self, name, version, loader, features, input_size, mean, std):
        self.name, self.version, self.dimension = name, version, None
        self.input_size, self.mean, self.std = int(input_size), tuple(mean), tuple(std)
        self._loader, self._feature_fn = loader, features
        super().__init__()

    def _load(self):
        return self._loader()

    def _features(self, model, x):
        return self._feature_fn(model, x)


def _timm(model_id, modality):
    if modality != "image":
        raise ValueError(f"timm models embed images, not {modality}")
    timm = _import("timm", f"timm:{model_id}")
    try:
        model = timm.create_model(model_id, pretrained=True, num_classes=0)
    except Exception as e:
        raise _load_failed("timm", model_id, e) from None
    cfg = timm.data.resolve_data_config({}, model=model)
    return _LoadedImageEmbedder(f"timm:{model_id}", _version("timm", model_id), lambda: model,
                                lambda m, x: pooled(m(x)), cfg["input_size"][-1], cfg["mean"], cfg["std"])


def _open_clip(model_id, modality):
    open_clip = _import("open_clip", f"open_clip:{model_id}")
    if model_id.startswith("hf-hub:"):
        arch, pretrained = model_id, ""          # weights and config both come from the hub repo
    else:
        arch, _, pretrained = model_id.partition("/")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None)
    except Exception as e:
        raise _load_failed("open_clip", model_id, e) from None
    model.eval()
    version = _version("open_clip_torch", model_id)
    if modality == "text":
        tokenizer = open_clip.get_tokenizer(arch)

        def encode(texts):
            device = next(model.parameters()).device
            return model.encode_text(tokenizer(texts).to(device))
        return CallableTextEmbedder(_Wrapped(model, encode), name=f"open_clip:{model_id}", version=version)
    size = getattr(model.visual, "image_size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
    std = getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
    return _LoadedImageEmbedder(f"open_clip:{model_id}", version, lambda: model,
                                lambda m, x: m.encode_image(x), size, mean, std)


class _Wrapped(torch.nn.Module):
    def __init__(self, model, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, texts):
        return self.fn(texts)


def _transformers(model_id, modality):
    tf = _import("transformers", f"transformers:{model_id}")
    version = _version("transformers", model_id)
    try:
        with quiet_transformers():
            model = tf.AutoModel.from_pretrained(model_id).eval()
            if modality == "text":
                tokenizer = tf.AutoTokenizer.from_pretrained(model_id)
            else:
                processor = tf.AutoImageProcessor.from_pretrained(model_id)
    except Exception as e:
        raise _load_failed("transformers", model_id, e) from None
    if modality == "text":
        def encode(texts):
            device = next(model.parameters()).device
            enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return CallableTextEmbedder(_Wrapped(model, encode), name=f"transformers:{model_id}", version=version)
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    size = size.get("height") or size.get("shortest_edge") or 224 if isinstance(size, dict) else size
    mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
    std = getattr(processor, "image_std", None) or IMAGENET_STD
    return _LoadedImageEmbedder(f"transformers:{model_id}", version, lambda: model,
                                lambda m, x: pooled(m(pixel_values=x)), size, mean, std)


def _sentence_transformers(model_id, modality):
    if modality != "text":
        raise ValueError(f"sentence-transformers models embed texts here, not {modality}")
    _import("sentence-transformers", f"sentence-transformers:{model_id}")
    emb = SentenceTransformerEmbedder(model_id)
    emb.model_on(torch.device("cpu"))        # load now, so a missing model fails with a clear error here
    return emb


_LOADERS = {"timm": _timm, "open_clip": _open_clip, "transformers": _transformers,
            "sentence-transformers": _sentence_transformers}
