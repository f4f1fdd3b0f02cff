"""Wrap a user's ``torch.nn.Module`` or plain callable as an Embedder.

Images: the module or callable receives a float tensor B x 3 x S x S on the device, normalised with
``mean``/``std`` (ImageNet by default); texts: a list of strings. Whatever comes back (a tensor,
array, tuple, or a Hugging Face output with ``pooler_output`` / ``last_hidden_state``) is turned
into B x D: feature maps and token sequences are mean-pooled.

Caching: a module's version is a fingerprint of its parameters and buffers, so retrained weights
embed afresh; a plain callable is cached only when it has a ``version`` attribute.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from dqwidgets.embed.protocol import IMAGENET_MEAN, IMAGENET_STD, TorchImageEmbedder, autocast_on, pooled


def module_fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha1(type(module).__qualname__.encode())
    for name, t in list(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def identity(fn, name=None, version=None) -> tuple[str, str | None]:
    """``(name, version)`` of a module (version = weight fingerprint) or callable (its ``version`` attribute)."""
    if isinstance(fn, torch.nn.Module):
        return name or f"module:{type(fn).__qualname__}", version or module_fingerprint(fn)
    name = name or f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"
    return name, version if version is not None else getattr(fn, "version", None)


class ModuleImageEmbedder(TorchImageEmbedder):
    def __init__(self, module, name=None, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, version=None):
        self.input_size, self.mean, self.std = int(input_size), tuple(mean), tuple(std)
        super().__init__()
        self._module = module
        self.dimension = None
        self.name, self.version = identity(module, name, version)

    def _load(self):
        return self._module if isinstance(self._module, torch.nn.Module) else _CallableModule(self._module)

    def _features(self, model, x):
        return as_tensor(model(x), x.device)


class _CallableModule(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CallableTextEmbedder:
    modality = "text"

    def __init__(self, fn, name=None, version=None):
        self._fn = fn
        self.dimension = None
        self.name, self.version = identity(fn, name, version)

    @torch.inference_mode()
    def embed_batch(self, texts, device):
        if isinstance(self._fn, torch.nn.Module):
            self._fn.to(device).eval()
        with autocast_on(device):
            out = as_tensor(self._fn(list(texts)), device).float()
        self.dimension = out.shape[1]
        return out


def as_tensor(out, device) -> torch.Tensor:
    if isinstance(out, np.ndarray) or (isinstance(out, list) and out and not isinstance(out[0], torch.Tensor)):
        out = torch.as_tensor(np.asarray(out, dtype=np.float32), device=device)
    t = pooled(out)
    if not torch.is_floating_point(t):
        t = t.float()
    return t
