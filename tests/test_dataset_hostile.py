"""Hostile and broken inputs are flagged with a reason and never decoded whole; the run goes on."""

import json
import os
from pathlib import Path
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

import dqwidgets as dq
from dqwidgets.embed.image_source import MAX_PIXELS


def mean_colour(x):
    """A cheap image embedder for pipeline tests: the mean of each channel."""
    return x.mean(dim=(2, 3))


mean_colour.version = "1"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width, height, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _bomb_png(side: int) -> bytes:
    """A valid PNG of side x side black pixels: a few hundred kB that decode to side**2 bytes."""
    z = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    parts = [z.compress(row) for _ in range(side)]
    return _png(side, side, b"".join(parts) + z.flush())


@pytest.fixture
def hostile_folder(tmp_path):
    good = tmp_path / "ok"
    good.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(good / f"{i}.png")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "huge_50000.png").write_bytes(_png(50_000, 50_000, zlib.compress(b"\x00" * 1000)))
    (bad / "bomb.png").write_bytes(_bomb_png(9_000))
    full = good / "0.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(bad / "whole.jpg", quality=95)
    data = (bad / "whole.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (bad / "garbage.png").write_bytes(b"this is not a png at all")
    (bad / "empty.jpg").write_bytes(b"")
    os.symlink(bad / "loop_b.jpg", bad / "loop_a.jpg")
    os.symlink(bad / "loop_a.jpg", bad / "loop_b.jpg")
    os.symlink(tmp_path / "gone.png", bad / "dangling.png")
    os.mkfifo(bad / "pipe.png")
    os.symlink(full, bad / "link_to_good.png")
    return tmp_path


@pytest.fixture
def decoded(monkeypatch):
    """Spy on PIL's pixel decoding: the (file name, size) of every image whose pixels are loaded."""
    calls = []
    load = ImageFile.ImageFile.load

    def spy(self):
        name = getattr(self, "filename", "") or getattr(getattr(self, "fp", None), "name", "")
        calls.append((os.path.basename(str(name)), self.size))
        return load(self)
    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_hostile_files_are_flagged_with_reasons(hostile_folder, decoded):
    ds = dq.Dataset.from_image_folder(hostile_folder)
    emb = ds.embed(embedder=mean_colour, cache_dir=False, progress=False, num_workers=0)

    reason = emb.flags["invalid_reason"]
    assert "image too large" in reason["bad/huge_50000.png"] and "2500000000 pixels" in reason["bad/huge_50000.png"]
    assert "image too large: 9000x9000" in reason["bad/bomb.png"]
    assert "truncated" in reason["bad/truncated.jpg"]
    assert "not an image" in reason["bad/garbage.png"]
    assert "empty file" in reason["bad/empty.jpg"]
    assert "symlink loop" in reason["bad/loop_a.jpg"] and "symlink loop" in reason["bad/loop_b.jpg"]
    assert "file not found" in reason["bad/dangling.png"]
    assert reason["bad/pipe.png"] == "not a regular file (a named pipe)"
    assert reason["bad/loop_a.jpg"] == "symlink loop" and "/" not in reason["bad/truncated.jpg"]
    unreadable = set(emb.flags.index[emb.flags["is_unreadable"]])
    assert unreadable == {f"bad/{n}" for n in ("huge_50000.png", "bomb.png", "truncated.jpg", "garbage.png",
                                                "empty.jpg", "loop_a.jpg", "loop_b.jpg", "dangling.png", "pipe.png")}
    # readable files (a symlink to a good file too) are embedded; the refused ones are zeros, left out
    ok = ["ok/0.png", "ok/1.png", "ok/2.png", "bad/whole.jpg", "bad/link_to_good.png"]
    pos = ds.ids.get_indexer(ok)
    assert emb.valid[pos].all() and (~emb.valid).sum() == len(unreadable)
    assert np.abs(emb.features[pos]).sum(axis=1).min() > 0
    assert (emb.features[~emb.valid] == 0).all()
    # never decoded: PIL loaded the pixels of the readable files only, and of nothing above the pixel limit
    # (the bomb, the 50,000 x 50,000 PNG); the truncated JPEG already fails in its header
    loaded = {name for name, _ in decoded}
    assert {"0.png", "1.png", "2.png", "whole.jpg"} <= loaded
    assert not loaded & {"huge_50000.png", "bomb.png", "garbage.png", "empty.jpg", "pipe.png"}, decoded
    assert all(w * h <= MAX_PIXELS for _, (w, h) in decoded)
    decoded.clear()
    with pytest.raises(ValueError, match="no readable image: image too large.*bomb"):
        ds.thumbnail("bad/huge_50000.png")
    with pytest.raises(ValueError, match="no readable image: image too large.*bomb"):
        ds.thumbnail("bad/bomb.png")
    assert decoded == []


def test_broken_values_in_a_dataframe_do_not_stop_the_run():
    df = pd.DataFrame({"img": [np.zeros((8, 8), np.uint8), np.zeros((2, 3, 5, 7)), None,
                               np.full((8, 8, 3), 0.5), np.full((8, 8), np.nan)],
                       "label": ["a", "b", "a", None, "b"]})
    ds = dq.Dataset.from_dataframe(df, image="img", label="label")
    emb = ds.embed(embedder=mean_colour, cache_dir=False, progress=False)
    assert emb.flags["is_unreadable"].tolist() == [False, True, True, False, True]
    assert emb.flags["is_unlabeled"].tolist() == [False, False, False, True, False]
    assert emb.valid.tolist() == [True, False, False, True, False]  # the unlabelled image stays in the graph
    assert "not an image" in emb.flags["invalid_reason"][1] and "missing image" in emb.flags["invalid_reason"][2]
    assert "NaN" in emb.flags["invalid_reason"][4]
    assert np.allclose(emb.features[3], (0.5 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
                       atol=0.02)


def test_empty_texts_are_flagged():
    df = pd.DataFrame({"t": ["hello there", "   ", None, "fine"], "y": ["a", "b", "a", "b"]})
    ds = dq.Dataset.from_dataframe(df, text="t", label="y")
    emb = ds.embed(embedder=lambda texts: np.array([[len(t), t.count(" ")] for t in texts], float),
                   cache_dir=False, progress=False)
    assert emb.flags["is_empty"].tolist() == [False, True, True, False]
    assert emb.valid.tolist() == [True, False, False, True]
    assert emb.features[0].tolist() == [11, 1] and emb.flags["invalid_reason"][1] == "empty text"


def test_a_table_with_repeated_column_names_is_a_clear_error():
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=["a", "a", "b"]).assign(label=[0, 1] * 25)
    with pytest.raises(ValueError, match=r"column names must be unique; repeated: \['a'\]"):
        dq.Dataset.from_dataframe(df, label="label")


def test_columns_parquet_cannot_hold_are_exported_as_text(tmp_path):
    """A complex-valued column and a column of custom objects: the analysis runs, the export writes every
    row with those values as text (warned), and the relabel made in review is in the exported label."""
    rng = np.random.default_rng(0)
    n = 120

    class Odd:
        def __str__(self):
            return "odd"

    df = pd.DataFrame({"x": rng.normal(size=n), "w": rng.normal(size=n), "z": np.arange(n) * 1j,
                       "o": [Odd() for _ in range(n)], "label": ["a", "b"] * (n // 2)})
    an = dq.analyze(dq.Dataset.from_dataframe(df, label="label"), layout="pca", progress=False,
                    workdir=tmp_path / "w")
    first = an.samples.index[0]
    an.review.relabel([first], "b")
    with pytest.warns(UserWarning, match=r"parquet cannot hold .*'z'"):
        out = an.export(tmp_path / "out")
    manifest = json.loads(next(Path(out).rglob("manifest*")).read_text())
    back = pd.concat([pd.read_parquet(f) for f in sorted(Path(out).rglob("*.parquet"))])
    assert len(back) == n - manifest["counts"]["dropped"] and manifest["counts"]["dropped"] <= 2
    assert back.loc[back["id"] == first, "label"].item() == "b"
    assert set(back["z"].dropna()) >= {"0j", "1j"}
    assert "odd" in set(back["o"].astype(str))


def test_an_export_where_nothing_can_be_written_says_where_and_what_to_do(tmp_path):
    rng = np.random.default_rng(0)
    an = dq.analyze(dq.Dataset.from_arrays(rng.normal(size=(60, 4)), np.arange(60) % 2), layout="pca",
                    progress=False, workdir=tmp_path / "w")
    with pytest.raises(OSError, match=r"export: cannot write into /proc .*choose a folder you can write to"):
        an.export("/proc/dq-export")
