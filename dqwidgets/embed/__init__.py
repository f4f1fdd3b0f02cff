"""Embedders (the ``Embedder`` protocol; EfficientNet-Lite0, all-MiniLM-L6-v2, models by name, any
module or callable), safe image decoding, per-sample properties, batching and the disk cache."""

from dqwidgets.embed.protocol import Embedder, cache_key
from dqwidgets.embed.resolve import resolve_embedder

__all__ = ["Embedder", "cache_key", "resolve_embedder"]
