"""Dataset: a DataFrame of samples plus the roles of its columns (see docs/internals.md).

Constructors take image folders, DataFrames (images as paths, bytes, PIL images or arrays; texts;
or plain tables), Hugging Face datasets and precomputed embeddings. ``embed`` turns any of them
into features for the graph; unreadable images, empty texts and missing labels are flagged, not fatal.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.embed.image_source import IMAGE_SUFFIXES, UnreadableImage, open_image, source_kind, to_rgb

SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "dev", "eval", "evaluation", "test", "testing",
               "holdout"}
DEFAULT_CACHE_DIR = Path(".dqwidgets") / "embeddings"


@dataclass
class Embedded:
    """Features for the graph, and which samples could not be embedded (and why)."""

    features: np.ndarray
    valid: np.ndarray
    flags: pd.DataFrame
    properties: pd.DataFrame
    embedder: str
    seconds: float = 0.0
    signatures: np.ndarray | None = None  # images: N x SIGNATURE_BYTES uint8 (dqwidgets.embed.signature)


@dataclass
class Dataset:
    frame: pd.DataFrame
    label: str | None = None
    split: str | None = None
    image: str | None = None
    text: str | None = None
    features: np.ndarray | None = None
    pred_probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    classes: list | None = None
    metadata_columns: list = field(default_factory=list)
    modality: str = "embedding"
    root: Path | None = None
    _content_hashes: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.classes is None and self.label is not None:
            self.classes = default_classes(self.frame[self.label], self.label)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, features, labels=None, metadata=None, split=None, ids=None,
                    pred_probs=None, logits=None, classes=None) -> "Dataset":
        """Precomputed embeddings: ``features`` N x D, ``labels`` N, ``metadata`` a DataFrame of N rows."""
        try:
            X = np.asarray(features)
        except ValueError as e:  # ragged rows
            raise ValueError(f"Dataset.from_arrays: features must be N x D with every row of the same length ({e})") from None
        if X.ndim != 2:
            raise ValueError(f"Dataset.from_arrays: features must be 2-D (N x D), got shape {X.shape}")
        n = len(X)
        frame = pd.DataFrame(index=_make_ids(ids, n, "from_arrays"))
        label_col = None
        if labels is not None:
            labels = _as_1d(labels, n, "labels")
            frame["label"] = labels
            label_col = "label"
        split_col = None
        if split is not None:
            frame["split"] = _as_1d(split, n, "split")
            split_col = "split"
        meta_cols = []
        if metadata is not None:
            meta = pd.DataFrame(metadata)
            if len(meta) != n:
                raise ValueError(f"Dataset.from_arrays: metadata has {len(meta)} rows but features has {n}")
            clash = [c for c in meta.columns if c in frame.columns]
            if clash:
                raise ValueError(f"Dataset.from_arrays: metadata columns {clash} clash with reserved names; rename them")
            meta.index = frame.index
            frame = pd.concat([frame, meta], axis=1)
            meta_cols = [str(c) for c in meta.columns]
        return cls(frame=frame, label=label_col, split=split_col, features=X, pred_probs=pred_probs,
                   logits=logits, classes=classes, metadata_columns=meta_cols, modality="embedding")

    @classmethod
    def from_image_folder(cls, path, split_folders: bool | None = None) -> "Dataset":
        """Images in class sub-folders (``root/cat/001.jpg``), optionally under split folders
        (``root/train/cat/001.jpg``; detected from the names train/val/valid/validation/test/dev,
        or forced with ``split_folders``). Images directly in the root are unlabelled. Ids are the
        paths relative to the root (``"train/cat/001.jpg"``). Folder symlinks are not followed.

        Every file with an image suffix (.jpg .jpeg .png .webp .bmp .tif .tiff .gif) is listed, even a
        broken one: unreadable files are flagged ``is_unreadable`` with a reason by ``embed``, not
        dropped silently."""
        root = Path(path).expanduser()
        if not root.exists():
            raise ValueError(f"Dataset.from_image_folder: {str(root)!r} does not exist")
        if not root.is_dir():
            raise ValueError(f"Dataset.from_image_folder: {str(root)!r} is not a folder; pass the folder "
                             "that holds the class sub-folders")
        root = root.resolve()
        subdirs = sorted(d.name for d in os.scandir(root) if d.is_dir(follow_symlinks=False)
                         and not d.name.startswith("."))
        if split_folders is None:
            split_folders = bool(subdirs) and all(d.lower() in SPLIT_NAMES for d in subdirs)
            named = [d for d in subdirs if d.lower() in SPLIT_NAMES]
            if named and not split_folders:
                import warnings

                others = [d for d in subdirs if d.lower() not in SPLIT_NAMES]
                warnings.warn(f"Dataset.from_image_folder: top folders {named[:3]} look like splits but {others[:3]} "
                              "do not, so every top folder is read as a class label. Pass split_folders=True to read "
                              "them as splits (their sub-folders as the labels)", stacklevel=2)
        rows = []
        for rel in _image_files(root):
            parts = rel.split("/")
            split_name = parts.pop(0) if split_folders and len(parts) > 1 else None
            label = parts[0] if len(parts) > 1 else None
            rows.append((rel, label, split_name))
        if not rows:
            raise ValueError(f"Dataset.from_image_folder: no image files ({', '.join(IMAGE_SUFFIXES)}) "
                             f"under {str(root)!r}")
        frame = pd.DataFrame(rows, columns=["path", "label", "split"], dtype=object)
        frame.index = pd.Index(frame["path"].to_numpy(), name="id")
        has_label = frame["label"].notna().any()
        has_split = frame["split"].notna().any()
        frame = frame[[c for c, keep in (("path", True), ("label", has_label), ("split", has_split)) if keep]]
        return cls(frame=frame, label="label" if has_label else None, split="split" if has_split else None,
                   image="path", modality="image", root=root)

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, image: str | None = None, text: str | None = None,
                       label: str | None = None, split: str | None = None, id: str | None = None,
                       root=None, pred_probs=None, logits=None, classes=None) -> "Dataset":
        """One row per sample. ``image``: a column of file paths (relative to ``root``, default the
        current folder), encoded bytes, PIL images or numpy arrays (e.g. 28 x 28 uint8); ``text``: a
        column of strings; neither = tabular data (numeric columns standardised, categoricals one-hot).
        All other columns are metadata for slices and the spurious-correlation search. Ids come from
        ``id``, else from unique image paths, else from the DataFrame's index."""
        where = "Dataset.from_dataframe"
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
        if image is not None and text is not None:
            raise ValueError(f"{where}: pass image= or text=, not both (one modality per dataset)")
        repeated = df.columns[df.columns.duplicated()].unique().tolist()
        if repeated:
            raise ValueError(f"{where}: column names must be unique; repeated: {list(map(str, repeated))}. "
                             "Rename them first, e.g. df.columns = [...] or df.loc[:, ~df.columns.duplicated()]")
        for role, col in (("image", image), ("text", text), ("label", label), ("split", split), ("id", id)):
            if col is not None and col not in df.columns:
                raise ValueError(f"{where}: {role} column {col!r} not found; columns are {list(map(str, df.columns))}")
        frame = df.copy()
        base = Path(root).expanduser().resolve() if root is not None else Path.cwd()
        if image is not None:
            kind = _image_column_kind(frame[image], image, where)
            if kind == "path":
                _check_some_paths_exist(frame[image], base, image, where)
        if text is not None:
            _check_text_column(frame[text], text, where)
        if label is not None:
            default_classes(frame[label], label)          # raises on mixed types
        ids = _dataframe_ids(frame, id, image, where)
        if id is not None:
            frame = frame.drop(columns=[id])
        frame.index = ids
        roles = {c for c in (image, text, label, split) if c is not None}
        meta = [c for c in frame.columns if c not in roles]
        modality = "image" if image else "text" if text else "tabular"
        if modality == "tabular":
            if not meta:
                raise ValueError(f"{where}: a table needs at least one feature column besides label/split/id; "
                                 f"columns are {list(map(str, df.columns))}")
            for c in meta:
                _check_uniform_types(frame[c], c, where)
        return cls(frame=frame, label=label, split=split, image=image, text=text, pred_probs=pred_probs,
                   logits=logits, classes=classes, metadata_columns=meta, modality=modality,
                   root=base if image else None)

    @classmethod
    def from_parquet(cls, paths, image: str | None = None, text: str | None = None, features: str | None = None,
                     label: str | None = None, split: str | None = None, id: str | None = None,
                     root=None) -> "Dataset":
        """Parquet files: one file, a folder of them or a glob (``"shards/*.parquet"``), local or on any
        filesystem pyarrow opens (``s3://``, ``gs://``, ...). ``features``: a list<float> column of
        embeddings (left in the files until an engine reads it); ``image``: paths (relative to ``root``,
        default the folder of the first file; may be URIs) or encoded bytes; ``text``: strings. Other
        columns are metadata. See ``dqwidgets.engine.parquet``."""
        from dqwidgets.engine.parquet import read_parquet_dataset

        return read_parquet_dataset(cls, paths, image=image, text=text, features=features, label=label,
                                    split=split, id=id, root=root)

    @classmethod
    def from_hf(cls, hf_dataset, image: str | None = None, text: str | None = None, label: str | None = None,
                split: str | None = None, id: str | None = None) -> "Dataset":
        """A Hugging Face ``datasets.Dataset`` or ``DatasetDict`` (its keys become the split column), or
        the path of one saved with ``save_to_disk``. Columns are detected from the features when not
        given: the first ``Image`` column, else a string column for ``text``; the first ``ClassLabel``
        (or a column named ``label``) for ``label``, whose integer codes become class names.
        Images are kept encoded (decoded only when embedded or shown)."""
        try:
            import datasets
        except ImportError:
            raise ValueError("Dataset.from_hf needs the datasets package: pip install datasets "
                             "(or: pip install 'dqwidgets[hf]')") from None
        if isinstance(hf_dataset, (str, os.PathLike)):
            if not Path(hf_dataset).exists():
                raise ValueError(f"Dataset.from_hf: {str(hf_dataset)!r} does not exist")
            hf_dataset = datasets.load_from_disk(str(hf_dataset))
        parts = dict(hf_dataset) if isinstance(hf_dataset, datasets.DatasetDict) else {None: hf_dataset}
        if not parts:
            raise ValueError("Dataset.from_hf: the DatasetDict holds no splits")
        first = next(iter(parts.values()))
        if not isinstance(first, datasets.Dataset):
            raise ValueError(f"Dataset.from_hf: expected a datasets.Dataset or DatasetDict, got {type(first).__name__}")
        feats = first.features
        image = image or next((c for c, f in feats.items() if isinstance(f, datasets.Image)), None)
        if image is None and text is None:
            strings = [c for c, f in feats.items() if getattr(f, "dtype", None) in ("string", "large_string")]
            text = next((c for c in strings if c.lower() in ("text", "sentence", "review", "content")),
                        strings[0] if strings else None)
        label = label or next((c for c, f in feats.items() if isinstance(f, datasets.ClassLabel)),
                              "label" if "label" in feats else None)
        frames = []
        for name, part in parts.items():
            if image is not None and isinstance(part.features.get(image), datasets.Image):
                part = part.cast_column(image, datasets.Image(decode=False))
            f = part.to_pandas()
            if name is not None and split is None:
                f["split"] = name
            frames.append(f)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if name is not None and split is None:
            split = "split"
        classes = None
        if label is not None and isinstance(feats.get(label), datasets.ClassLabel):
            names = feats[label].names
            codes = frame[label].to_numpy()
            frame[label] = pd.Series([names[int(c)] if not pd.isna(c) and c >= 0 else None for c in codes],
                                     dtype=object)
            classes = list(names)
        if id is None and frame.index.has_duplicates:
            frame = frame.reset_index(drop=True)
        return cls.from_dataframe(frame, image=image, text=text, label=label, split=split, id=id, classes=classes)

    # ------------------------------------------------------------------ views
    @property
    def ids(self) -> pd.Index:
        return self.frame.index

    @property
    def labels(self) -> pd.Series | None:
        return self.frame[self.label] if self.label else None

    @property
    def splits(self) -> pd.Series | None:
        return self.frame[self.split] if self.split else None

    @property
    def metadata(self) -> pd.DataFrame:
        return self.frame[self.metadata_columns]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha1(self.modality.encode())
        for i in sorted(map(str, self.ids)):
            h.update(i.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.frame)


    # ------------------------------------------------------------------ embeddings
    def embed(self, embedder="auto", device="auto", cache_dir=None, progress: bool = True,
              batch_size: int | None = None, num_workers: int | None = None) -> "Embedded":
        """Features for the graph, with flags and per-sample properties (see ``Embedded``).

        ``embedder``: "auto" (EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for texts), a model name
        ("timm:...", "open_clip:...", "transformers:...", "sentence-transformers:..."), a
        ``torch.nn.Module`` or a callable. Tables are encoded without a model ("tabular"), precomputed
        features are used as given ("precomputed"). ``cache_dir``: where embeddings are cached by
        content hash (default ``.dqwidgets/embeddings``; ``False`` = no cache)."""
        from dqwidgets.compute.device import resolve_device
        from dqwidgets.embed.pipeline import embed_images, embed_texts
        from dqwidgets.embed.resolve import resolve_embedder

        empty_props = pd.DataFrame(index=self.ids)
        if self.modality == "embedding":
            X = np.asarray(self.features, dtype=np.float32)
            reasons = ["" if ok else "features contain NaN or infinite values" for ok in np.isfinite(X).all(axis=1)]
            X = np.where(np.isfinite(X), X, 0).astype(np.float32)
            return self._embedded(X, reasons, reasons_empty=None, properties=empty_props, name="precomputed",
                                  seconds=0.0)
        if self.modality == "tabular":
            from dqwidgets.embed.tabular import TABULAR_VERSION, tabular_features
            X, _ = tabular_features(self.frame, self.metadata_columns)
            return self._embedded(X, None, None, empty_props, f"tabular@{TABULAR_VERSION}", 0.0)
        dev = resolve_device(device)
        emb = resolve_embedder(embedder, self.modality)
        cache = None if cache_dir is False else Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR)
        if self.modality == "image":
            out = embed_images(self.frame[self.image].tolist(), self.root, emb, dev, cache, progress,
                               batch_size, num_workers)
            self._content_hashes = np.array(out.hashes, dtype=object)
            unreadable, empty = out.reasons, None
        else:
            texts = [t if isinstance(t, str) else None for t in self.frame[self.text].tolist()]
            out = embed_texts(texts, emb, dev, cache, progress, batch_size)
            unreadable, empty = None, out.reasons
        props = pd.DataFrame(out.properties, index=self.ids, columns=out.property_names)
        if "is_grayscale" in props:
            props["is_grayscale"] = props["is_grayscale"].map({1.0: True, 0.0: False}).astype("boolean")
        embedded = self._embedded(out.features, unreadable, empty, props, f"{emb.name}@{emb.version}", out.seconds)
        embedded.signatures = out.signatures
        return embedded

    def _embedded(self, X, reasons_unreadable, reasons_empty, properties, name, seconds) -> "Embedded":
        n = len(self)
        flags = pd.DataFrame(index=self.ids)
        unreadable = reasons_unreadable or [""] * n
        empty = reasons_empty or [""] * n
        flags["is_unreadable"] = np.array([bool(r) for r in unreadable]) if self.modality != "embedding" \
            else np.zeros(n, bool)
        flags["is_empty"] = np.array([bool(r) for r in empty])
        labels = self.labels
        flags["is_unlabeled"] = labels.isna().to_numpy() if labels is not None else np.zeros(n, bool)
        # a missing label leaves the sample in the graph (map, OOD, duplicates, accuracy estimates), unscored for labels
        why = [[r for r in (u, e) if r] for u, e in zip(unreadable, empty)]
        flags["invalid_reason"] = ["; ".join(w) for w in why]
        flags["is_invalid"] = flags["invalid_reason"] != ""
        flags = flags[["is_unreadable", "is_empty", "is_unlabeled", "is_invalid", "invalid_reason"]]
        return Embedded(features=np.ascontiguousarray(X, dtype=np.float32), valid=~flags["is_invalid"].to_numpy(),
                        flags=flags, properties=properties, embedder=name, seconds=float(seconds))

    def content_hashes(self) -> np.ndarray | None:
        """sha1 (hex) of each sample's raw data: file bytes, encoded image bytes, array pixels or the text's
        UTF-8; ``None`` in a row that has no readable data; ``None`` overall for tables and embeddings.
        The hashes computed by the last ``embed`` call are reused."""
        if self.modality == "image":
            if self._content_hashes is None or len(self._content_hashes) != len(self):
                from dqwidgets.embed.pipeline import hash_images
                hashes, _ = hash_images(self.frame[self.image].tolist(), self.root)
                self._content_hashes = np.array(hashes, dtype=object)
            return self._content_hashes
        if self.modality == "text":
            return np.array([hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest()
                             if isinstance(t, str) and t.strip() else None for t in self.frame[self.text]],
                            dtype=object)
        return None

    # ------------------------------------------------------------------ media for the widgets
    def thumbnail(self, id, size: int = 96, format: str = "WEBP") -> bytes:
        """The image of sample ``id`` shrunk to fit ``size`` x ``size`` (never enlarged), as WebP (or
        ``format="JPEG"``) bytes. An unreadable image raises ``ValueError`` with the reason (the grid
        shows a placeholder with that reason); hostile files are refused before decoding."""
        if self.image is None:
            raise ValueError(f"Dataset.thumbnail: this is a {self.modality} dataset without images; "
                             "use text_of(id) for texts")
        value = self._value(id, self.image)
        try:
            img, _ = open_image(value, self.root, draft_size=size)
        except UnreadableImage as e:
            raise ValueError(f"sample {id!r} has no readable image: {e}") from None
        img = to_rgb(img)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        fmt = format.upper()
        img.save(buf, format=fmt, quality=80, **({"method": 4} if fmt == "WEBP" else {}))
        return buf.getvalue()

    def text_of(self, id) -> str | None:
        """The full text of sample ``id`` (``None`` when it is missing or the dataset holds no texts)."""
        if self.text is None:
            return None
        value = self._value(id, self.text)
        return value if isinstance(value, str) else None

    def _value(self, id, column):
        try:
            return self.frame.at[id, column]
        except KeyError:
            raise ValueError(f"no sample with id {id!r} in this dataset") from None

def _make_ids(ids, n, where) -> pd.Index:
    if ids is None:
        return pd.RangeIndex(n, name="id")
    ids = list(ids) if not isinstance(ids, (np.ndarray, pd.Index, pd.Series)) else ids
    odd = None if getattr(ids, "dtype", object) != object else \
        next((v for v in ids if isinstance(v, (tuple, list, dict, set, np.ndarray))), None)
    if odd is not None:
        raise ValueError(f"Dataset.{where}: ids must be single values (str or int), got {type(odd).__name__} {odd!r}; "
                         "join its parts into one string, e.g. '/'.join(map(str, id))")
    idx = pd.Index(ids, name="id", tupleize_cols=False)
    if len(idx) != n:
        raise ValueError(f"Dataset.{where}: {len(idx)} ids for {n} samples")
    if idx.has_duplicates:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise ValueError(f"Dataset.{where}: ids must be unique; repeated: {dup}")
    return idx


def _as_1d(values, n, name):
    arr = np.asarray(values, dtype=object) if not isinstance(values, (pd.Series, np.ndarray)) else values
    arr = arr.to_numpy() if isinstance(arr, pd.Series) else arr
    if arr.ndim != 1:
        raise ValueError(f"Dataset.from_arrays: {name} must be 1-D, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"Dataset.from_arrays: {name} has {len(arr)} values but features has {n} rows")
    return arr


def default_classes(labels: pd.Series, column: str) -> list:
    """Sorted unique labels; a ValueError names the column when its labels mix types."""
    present = labels.dropna()
    _check_uniform_types(present, column, "Dataset")
    try:
        return sorted(pd.unique(present).tolist())
    except TypeError:
        return sorted(pd.unique(present).tolist(), key=str)


def _value_type(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    return "str" if isinstance(v, str) else type(v).__name__


def _check_uniform_types(values: pd.Series, column: str, where: str) -> None:
    if values.dtype != object:
        return
    present = values.dropna()
    kinds = present.map(_value_type)
    if kinds.nunique() > 1:
        first = kinds.iloc[0]
        odd = kinds[kinds != first].index[0]
        raise ValueError(f"{where}: column {column!r} mixes types ({', '.join(sorted(kinds.unique()))}); "
                         f"e.g. row {odd!r} holds {present[odd]!r}. Convert it to one type first, e.g. "
                         f"df[{column!r}] = df[{column!r}].astype(str)")


def _image_column_kind(values: pd.Series, column: str, where: str) -> str:
    kinds = values.map(source_kind)
    present = kinds.dropna()
    if present.empty:
        raise ValueError(f"{where}: image column {column!r} is empty")
    bad = present[~present.isin(["path", "bytes", "hf", "pil", "array"])]
    if len(bad):
        raise ValueError(f"{where}: image column {column!r} holds {bad.iloc[0]} values (row {bad.index[0]!r}); "
                         "use file paths, bytes, PIL images or numpy arrays")
    if present.nunique() > 1:
        raise ValueError(f"{where}: image column {column!r} mixes {', '.join(sorted(present.unique()))}; "
                         "use one kind of image value per column")
    return present.iloc[0]


def _check_some_paths_exist(values: pd.Series, base: Path, column: str, where: str) -> None:
    sample = [Path(p) for p in values.dropna().iloc[:200]]
    if sample and not any((p if p.is_absolute() else base / p).exists() for p in sample):
        raise ValueError(f"{where}: none of the first {len(sample)} paths in column {column!r} exists "
                         f"(first: {str(sample[0])!r}, relative to {str(base)!r}); pass root= the folder they "
                         "are relative to")


def _check_text_column(values: pd.Series, column: str, where: str) -> None:
    present = values.dropna()
    odd = present[~present.map(lambda v: isinstance(v, str))]
    if len(odd):
        raise ValueError(f"{where}: text column {column!r} holds a {type(odd.iloc[0]).__name__} in row "
                         f"{odd.index[0]!r} ({odd.iloc[0]!r}); texts must be strings (missing = None/NaN)")


def _dataframe_ids(frame: pd.DataFrame, id_col, image_col, where) -> pd.Index:
    if id_col is not None:
        ids = frame[id_col]
        if ids.isna().any():
            raise ValueError(f"{where}: id column {id_col!r} has missing values (row {ids[ids.isna()].index[0]!r})")
        return _make_ids(ids.to_numpy(), len(frame), "from_dataframe")
    if image_col is not None:
        paths = frame[image_col]
        if paths.map(source_kind).eq("path").all() and not paths.map(str).duplicated().any():
            return pd.Index(paths.map(lambda p: Path(p).as_posix()).to_numpy(), name="id")
    if isinstance(frame.index, pd.MultiIndex):
        raise ValueError(f"{where}: the frame has a MultiIndex ({list(frame.index.names)}); ids must be single values. "
                         "Call frame.reset_index() first, or pass id=<a column of unique values>")
    if frame.index.has_duplicates:
        return pd.RangeIndex(len(frame), name="id")
    return frame.index.rename("id")


def _image_files(root: Path) -> list[str]:
    """Relative posix paths of every non-folder entry with an image suffix (hidden names skipped)."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append((rel / name).as_posix())
    return found
