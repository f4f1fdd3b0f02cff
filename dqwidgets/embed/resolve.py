"""Turn the ``embedder=`` argument into an Embedder for a modality.

``"auto"`` picks the built-in for the modality (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for
texts); a string is a built-in or a library model name (see ``named.py``); an object with
``embed_batch`` is used as is; a SentenceTransformer, a ``torch.nn.Module`` or any callable is wrapped.
"""

from __future__ import annotations

import torch

from dqwidgets.embed.module import CallableTextEmbedder, ModuleImageEmbedder
from dqwidgets.embed.sentence import MINILM_NAMES, SentenceTransformerEmbedder

IMAGE_BUILTINS = {"efficientnet-lite0", "efficientnet_lite0"}


def resolve_embedder(embedder, modality: str):
    if modality not in ("image", "text"):
        raise ValueError(f"embedders work on image or text data, not {modality!r}")
    if embedder is None or (isinstance(embedder, str) and embedder.lower() == "auto"):
        return _builtin("efficientnet-lite0" if modality == "image" else "all-minilm-l6-v2", modality)
    if isinstance(embedder, str):
        if embedder.lower() in IMAGE_BUILTINS | MINILM_NAMES:
            return _builtin(embedder.lower(), modality)
        from dqwidgets.embed.named import load_named
        return load_named(embedder, modality)
    if hasattr(embedder, "embed_batch") and hasattr(embedder, "modality"):
        if embedder.modality != modality:
            raise ValueError(f"embedder {embedder.name!r} embeds {embedder.modality} data but the dataset "
                             f"holds {modality} data")
        return embedder
    if modality == "text" and hasattr(embedder, "encode") and isinstance(embedder, torch.nn.Module):
        return SentenceTransformerEmbedder(embedder)
    if callable(embedder):
        return ModuleImageEmbedder(embedder) if modality == "image" else CallableTextEmbedder(embedder)
    raise ValueError(f"embedder must be 'auto', a model name, a torch.nn.Module or a callable; "
                     f"got {type(embedder).__name__}")


def _builtin(name: str, modality: str):
    if name in IMAGE_BUILTINS:
        if modality != "image":
            raise ValueError(f"embedder {name!r} embeds images but the dataset holds {modality} data")
        from dqwidgets.embed.efficientnet import EfficientNetLite0
        return EfficientNetLite0()
    if modality != "text":
        raise ValueError(f"embedder {name!r} embeds texts but the dataset holds {modality} data")
    return SentenceTransformerEmbedder.minilm()
