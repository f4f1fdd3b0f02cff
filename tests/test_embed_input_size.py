"""The image embedder's input size comes from the data, and the cache keeps sizes apart."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dqwidgets as dq
from dqwidgets.embed import cache_key
from dqwidgets.embed.efficientnet import EfficientNetLite0
from dqwidgets.embed.input_size import input_size_for, sample_sides, shorter_side
from dqwidgets.embed.protocol import TorchImageEmbedder


class TinyNet(TorchImageEmbedder):
    """A real (tiny) conv net that accepts any side, like EfficientNet; counts the images it sees."""

    name, version, dimension = "tiny", "1", 4
    sized_from_data = True
    min_input_size = 32
    input_size = 128

    def __init__(self, input_size=None):
        super().__init__()
        self.seen_sides = []
        if input_size is not None:
            self.sized_from_data = False
            self.set_input_size(input_size)

    def _load(self):
        torch.manual_seed(0)
        return torch.nn.Conv2d(3, 4, 3)

    def embed_batch(self, batch, device):
        self.seen_sides.extend([batch.shape[-1]] * len(batch))
        return super().embed_batch(batch, device)


def test_input_size_is_the_median_side_rounded_up_to_the_stride_within_floor_and_cap():
    assert input_size_for([28] * 50) == 64                    # Fashion-MNIST: not upscaled to 224
    assert input_size_for([28] * 50, floor=96) == 96
    assert input_size_for([100, 100, 3000]) == 128            # the median, not the largest
    assert input_size_for([70, 70, 20]) == 96
    assert input_size_for([4000, 3000]) == 224                # photos: the model's training side
    assert input_size_for([]) == 224                          # nothing readable: the default
    with pytest.raises(ValueError, match="floor"):
        input_size_for([28], floor=300, cap=224)


def test_shorter_side_reads_every_source_kind_without_decoding(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (50, 30)).save(png, format="PNG")
    (tmp_path / "a.png").write_bytes(png.getvalue())
    assert shorter_side(np.zeros((28, 40), np.uint8)) == 28
    assert shorter_side(np.zeros((3, 20, 40), np.uint8)) == 20          # C x H x W
    assert shorter_side(np.zeros((20, 40, 3), np.uint8)) == 20
    assert shorter_side(Image.new("L", (64, 48))) == 48
    assert shorter_side(png.getvalue()) == 30
    assert shorter_side("a.png", tmp_path) == 30
    assert shorter_side({"bytes": png.getvalue(), "path": None}) == 30
    assert shorter_side("missing.png", tmp_path) is None
    assert shorter_side(b"not an image") is None
    assert shorter_side(None) is None
    values = [np.zeros((28, 28), np.uint8)] * 1000 + [None]
    sides = sample_sides(values, sample=64)                  # spread evenly, the missing last one skipped
    assert len(sides) == 63 and set(sides) == {28}


def test_efficientnet_picks_64_px_for_fashion_mnist_and_keeps_224_for_photos():
    small = [np.zeros((28, 28), np.uint8)] * 10
    photos = [Image.new("RGB", (640, 480))] * 3
    assert EfficientNetLite0().fit_input_size(small) == 64
    assert EfficientNetLite0().fit_input_size(photos) == 224
    fixed = EfficientNetLite0(input_size=224)
    assert fixed.fit_input_size(small) == 224 and fixed.transform.size == 224
    with pytest.raises(ValueError, match="at least 32"):
        EfficientNetLite0(input_size=8)


def test_cache_key_holds_the_input_size():
    auto, fixed = EfficientNetLite0(), EfficientNetLite0(input_size=224)
    auto.fit_input_size([np.zeros((28, 28), np.uint8)])
    assert cache_key(auto).endswith("-64px") and cache_key(fixed).endswith("-224px")
    assert cache_key(auto) != cache_key(fixed)


def test_an_embedding_cached_at_one_size_is_not_reused_at_another(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"image": [rng.integers(0, 255, (28, 28), dtype=np.uint8) for _ in range(8)]})
    ds = dq.Dataset.from_dataframe(df, image="image")

    net = TinyNet()
    first = ds.embed(embedder=net, cache_dir=tmp_path, progress=False, num_workers=0)
    assert net.seen_sides == [32] * 8                          # 28 px -> 32, not the 128 maximum

    again = ds.embed(embedder=net, cache_dir=tmp_path, progress=False, num_workers=0)
    assert net.seen_sides == [32] * 8 and again.seconds == 0   # same size: all from the cache
    assert np.array_equal(again.features, first.features)

    big = TinyNet(input_size=96)
    other = ds.embed(embedder=big, cache_dir=tmp_path, progress=False, num_workers=0)
    assert big.seen_sides == [96] * 8                          # another size: embedded afresh
    assert not np.allclose(other.features, first.features)
