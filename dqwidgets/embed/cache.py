"""Disk cache of embeddings (and image properties), keyed by embedder and each sample's content hash.

Layout: ``<cache_dir>/<embedder name@version, p<properties version>>/shard-*.bin``; each run that
embeds something appends one shard. A shard is

    MAGIC | uint32 header length | JSON header | keys (n x 20-byte sha1) | features (n x dim float32)
    | properties (n x n_props float32)

and the header holds the sha256 of everything after it. A lookup reads only the keys of a shard
that holds none of the wanted samples; a shard it uses is read whole and verified first: one whose
magic, header, length or checksum does not match is never trusted: it is deleted with a warning and its samples are embedded
again. Writes go to a temporary file renamed into place, so a crash never leaves half a shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import warnings
from pathlib import Path

import numpy as np

MAGIC = b"DQEMBv1\n"


class EmbeddingCache:
    def __init__(self, cache_dir: str | os.PathLike, key: str, property_names: list[str]):
        slug = re.sub(r"[^A-Za-z0-9._@+-]+", "_", key)
        self.folder = Path(cache_dir) / slug
        self.key = key
        self.property_names = list(property_names)

    def lookup(self, hashes: list[str | None]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Return ``(found bool N, features N x D or None, properties N x P or None)`` for the given hashes."""
        n = len(hashes)
        found = np.zeros(n, dtype=bool)
        wanted = {}
        for i, h in enumerate(hashes):
            if h is not None:
                wanted.setdefault(bytes.fromhex(h), []).append(i)
        features = properties = None
        if not wanted or not self.folder.is_dir():
            return found, features, properties
        for shard in sorted(self.folder.glob("shard-*.bin")):
            if not self._holds_any(shard, wanted):
                continue                      # another dataset's shard: its payload is never read
            loaded = self._read(shard)
            if loaded is None:
                continue
            keys, feats, props = loaded
            if features is None:
                features = np.zeros((n, feats.shape[1]), dtype=np.float32)
                properties = np.full((n, props.shape[1]), np.nan, dtype=np.float32)
            elif feats.shape[1] != features.shape[1]:
                continue
            for row, k in enumerate(keys):
                for i in wanted.get(k, ()):
                    features[i], properties[i], found[i] = feats[row], props[row], True
        return found, features, properties

    def store(self, hashes: list[str], features: np.ndarray, properties: np.ndarray) -> Path | None:
        if not len(hashes):
            return None
        features = np.ascontiguousarray(features, dtype=np.float32)
        properties = np.ascontiguousarray(properties, dtype=np.float32).reshape(len(hashes), -1)
        payload = b"".join([b"".join(bytes.fromhex(h) for h in hashes), features.tobytes(), properties.tobytes()])
        header = json.dumps({"key": self.key, "n": len(hashes), "dim": features.shape[1],
                             "properties": self.property_names, "sha256": hashlib.sha256(payload).hexdigest()})
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"shard-{time.time_ns():020d}-{os.getpid()}.bin"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(header)) + header.encode() + payload)
        os.replace(tmp, path)
        return path

    def _holds_any(self, path: Path, wanted: dict) -> bool:
        """Read only the header and keys; True when unsure (then ``_read`` checks the whole shard)."""
        try:
            with open(path, "rb") as f:
                head = f.read(len(MAGIC) + 4)
                if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 4:
                    return True
                header = json.loads(f.read(struct.unpack("<I", head[len(MAGIC):])[0]))
                keys = f.read(int(header["n"]) * 20)
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return any(keys[i:i + 20] in wanted for i in range(0, len(keys), 20))

    def _read(self, path: Path):
        try:
            data = path.read_bytes()
            problem = self._check(data)
        except OSError as e:
            problem = f"unreadable: {e}"
        if problem is None:
            hlen = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])[0]
            start = len(MAGIC) + 4
            header = json.loads(data[start:start + hlen])
            n, dim, p = header["n"], header["dim"], len(header["properties"])
            body = memoryview(data)[start + hlen:]
            keys = [bytes(body[i * 20:(i + 1) * 20]) for i in range(n)]
            feats = np.frombuffer(body, dtype=np.float32, count=n * dim, offset=n * 20).reshape(n, dim)
            props = np.frombuffer(body, dtype=np.float32, count=n * p, offset=n * 20 + n * dim * 4).reshape(n, p)
            return keys, feats, props
        warnings.warn(f"embedding cache file {path} is corrupt ({problem}); it was deleted and its samples "
                      "will be embedded again", RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return None

    def _check(self, data: bytes) -> str | None:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            return "bad magic bytes"
        start = len(MAGIC) + 4
        hlen = struct.unpack("<I", data[len(MAGIC):start])[0]
        try:
            header = json.loads(data[start:start + hlen])
            n, dim, names, digest = header["n"], header["dim"], header["properties"], header["sha256"]
        except (ValueError, KeyError, TypeError):
            return "unreadable header"
        if header.get("key") != self.key or names != self.property_names:
            return f"written for {header.get('key')!r} with other properties"
        payload = data[start + hlen:]
        if len(payload) != n * 20 + n * dim * 4 + n * len(names) * 4:
            return f"length {len(payload)} does not match its header"
        if hashlib.sha256(payload).hexdigest() != digest:
            return "checksum mismatch"
        return None
