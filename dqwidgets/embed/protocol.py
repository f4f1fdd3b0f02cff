"""The Embedder protocol, and the base class every built-in image model shares.

An embedder has a ``name``, a ``version`` (``None`` = its results are never cached, e.g. a
plain function whose weights we cannot fingerprint), a ``modality`` ("image" or "text"), a
``dimension`` (``None`` until known) and ``embed_batch(batch, device) -> torch.Tensor (B x D)``.

Image embedders also carry ``transform``: a small picklable callable run in DataLoader worker
processes that turns a decoded PIL image into a uint8 tensor 3 x S x S. Normalisation to the
model's mean and std happens on the device, so only bytes cross process and device boundaries.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from dqwidgets.embed.image_source import to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class Embedder(Protocol):
    name: str
    version: str | None
    modality: str
    dimension: int | None

    def embed_batch(self, batch, device: torch.device) -> torch.Tensor: ...


def cache_key(embedder) -> str | None:
    """``name@version``, plus ``-<S>px`` for an image embedder with an ``input_size`` (the same weights
    at another input size give other features), or ``None`` when the results must not be cached."""
    version = getattr(embedder, "version", None)
    if version is None:
        return None
    size = getattr(embedder, "input_size", None) if getattr(embedder, "modality", None) == "image" else None
    return f"{embedder.name}@{version}" + (f"-{int(size)}px" if size else "")


class ResizeCrop:
    """Resize the shorter side to ``size`` and take the centred ``size`` x ``size`` square; uint8 CHW."""

    def __init__(self, size: int = 224):
        self.size = int(size)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = to_rgb(img)
        w, h = img.size
        s = self.size / min(w, h)
        nw, nh = max(self.size, round(w * s)), max(self.size, round(h * s))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        # numpy transposes a small array in ~0.3 ms; torch's threaded strided copy took 5-16 ms on a busy CPU
        return torch.from_numpy(np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)))


class TorchImageEmbedder:
    """Shared machinery: lazy model load, device placement, normalisation, fp16 on CUDA.

    Subclasses set ``name``, ``version``, ``dimension``, ``input_size``, ``mean``, ``std`` and
    implement ``_load() -> torch.nn.Module`` and ``_features(model, x) -> B x D``. A subclass whose
    network accepts any input side sets ``sized_from_data = True``: ``fit_input_size`` then picks the
    side from the images (``input_size.py``) between ``min_input_size`` and ``input_size``."""

    modality = "image"
    input_size = 224
    min_input_size = 64
    sized_from_data = False
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self):
        self._model = None
        self._device = None
        self.transform = ResizeCrop(self.input_size)
        self._max_input_size = self.input_size

    def set_input_size(self, size: int) -> None:
        self.input_size = int(size)
        self.transform = ResizeCrop(self.input_size)

    def fit_input_size(self, values, root=None) -> int:
        """Choose the input side from a sample of ``values`` (image sources) when ``sized_from_data``;
        returns the side the model will run at."""
        if self.sized_from_data:
            from dqwidgets.embed.input_size import input_size_for, sample_sides

            self.set_input_size(input_size_for(sample_sides(values, root), self.min_input_size,
                                               self._max_input_size))
        return self.input_size

    def _load(self) -> torch.nn.Module:
        raise NotImplementedError

    def _features(self, model, x: torch.Tensor) -> torch.Tensor:
        return pooled(model(x))

    def model_on(self, device: torch.device) -> torch.nn.Module:
        if self._model is None:
            self._model = self._load().eval()
        if self._device != device:
            self._model = self._model.to(device, memory_format=torch.channels_last)
            self._device = device
        return self._model

    @torch.inference_mode()
    def embed_batch(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        model = self.model_on(device)
        x = batch.to(device, non_blocking=True).float().div_(255.0)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        with autocast_on(device):
            out = self._features(model, x)
        out = out.float()
        if self.dimension is None:
            self.dimension = out.shape[1]
        return out


def autocast_on(device: torch.device):
    """fp16 autocast on CUDA; nothing elsewhere (CPU results stay float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def pooled(out) -> torch.Tensor:
    """Turn a model output into B x D: pick the tensor, average feature maps / tokens, flatten."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        for attr in ("image_embeds", "text_embeds", "pooler_output", "last_hidden_state"):
            if getattr(out, attr, None) is not None:
                out = getattr(out, attr)
                break
        else:
            raise ValueError(f"embedder output of type {type(out).__name__} holds no tensor; "
                             "return a B x D tensor")
    if out.ndim == 4:
        out = out.mean(dim=(2, 3))
    elif out.ndim == 3:
        out = out.mean(dim=1)
    return out.reshape(out.shape[0], -1)
