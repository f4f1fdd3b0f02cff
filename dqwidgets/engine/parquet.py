"""Datasets stored as Parquet files: one file, a folder of files or a glob, on any filesystem pyarrow
opens (local paths, ``s3://``, ``gs://``, ``hdfs://``, ``abfs://`` ...).

``read_parquet_dataset`` is what ``Dataset.from_parquet`` calls. It reads the small columns (ids,
labels, splits, image paths, texts, metadata) into the Dataset's frame and leaves an embedding
column in the files: ``ParquetFeatures`` reads it only when an engine asks (the local engine all at
once, the Ray engine file by file in its workers). Every check names the file and the column and
says what to do.
"""

from __future__ import annotations

import difflib
import fnmatch
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_GLOB_CHARS = "*?["


def is_uri(path) -> bool:
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def filesystem_for(path):
    """(pyarrow filesystem, path inside it) for a local path or a URI."""
    import pyarrow.fs as pafs

    if is_uri(path):
        try:
            return pafs.FileSystem.from_uri(path)
        except Exception as err:  # unknown scheme, missing credentials library, bad bucket name
            raise ValueError(f"Dataset.from_parquet: cannot open the filesystem of {path!r} ({err}). Check the "
                             "URI (s3://bucket/key, gs://bucket/key) and that pyarrow was built with that filesystem") from None
    if isinstance(path, str) and path.startswith("file://"):
        path = path[len("file://"):]
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def _info(fs, path, original):
    try:
        return fs.get_file_info(path)
    except Exception as err:  # network error, permission denied
        raise ValueError(f"Dataset.from_parquet: cannot reach {original!r} ({type(err).__name__}: {err}). Check the "
                         "path, the network and the credentials (e.g. AWS_PROFILE / GOOGLE_APPLICATION_CREDENTIALS)") from None


def resolve_files(paths) -> list[tuple[str, str]]:
    """Every Parquet file named by ``paths`` (a path, a folder, a glob, or a list of them), as
    (uri-or-local path as given to the filesystem, display name), sorted, without repeats."""
    import pyarrow.fs as pafs

    if isinstance(paths, (str, Path)):
        paths = [paths]
    try:
        paths = [str(p) if isinstance(p, Path) else p for p in paths]
    except TypeError:
        raise ValueError(f"Dataset.from_parquet: paths must be a path, a glob or a list of them, got "
                         f"{type(paths).__name__}") from None
    if not paths:
        raise ValueError("Dataset.from_parquet: no paths given")
    out: list[str] = []
    for original in paths:
        if not isinstance(original, str):
            raise ValueError(f"Dataset.from_parquet: paths must be strings or Paths, got {type(original).__name__}")
        fs, p = filesystem_for(original)
        prefix = original[: original.index("://") + 3] if is_uri(original) else ""
        if any(ch in p for ch in _GLOB_CHARS):
            parts = p.split("/")
            first = next(i for i, s in enumerate(parts) if any(ch in s for ch in _GLOB_CHARS))
            base = "/".join(parts[:first]) or "/"
            if _info(fs, base, original).type != pafs.FileType.Directory:
                raise ValueError(f"Dataset.from_parquet: the folder {prefix + base!r} of the pattern {original!r} "
                                 "does not exist")
            found = [f.path for f in fs.get_file_info(pafs.FileSelector(base, recursive=True))
                     if f.type == pafs.FileType.File and fnmatch.fnmatchcase(f.path, p)]
            if not found:
                raise ValueError(f"Dataset.from_parquet: no file matches {original!r}")
        else:
            info = _info(fs, p, original)
            if info.type == pafs.FileType.NotFound:
                raise ValueError(f"Dataset.from_parquet: {original!r} does not exist; pass a Parquet file, a folder "
                                 "of them or a glob such as 'data/*.parquet'")
            if info.type == pafs.FileType.Directory:
                found = [f.path for f in fs.get_file_info(pafs.FileSelector(p, recursive=True))
                         if f.type == pafs.FileType.File and f.path.lower().endswith(PARQUET_SUFFIXES)
                         and not any(s.startswith((".", "_")) for s in f.path[len(p):].split("/") if s)]
                if not found:
                    raise ValueError(f"Dataset.from_parquet: the folder {original!r} holds no "
                                     f"{'/'.join(PARQUET_SUFFIXES)} files")
            else:
                found = [p]
        out.extend(prefix + f for f in sorted(found))
    return list(dict.fromkeys(out))


def open_file(name: str):
    fs, p = filesystem_for(name)
    return fs.open_input_file(p)


def read_bytes(name: str) -> bytes:
    """The bytes of one file on any filesystem pyarrow opens (the Ray engine's image reader)."""
    with open_file(name) as f:
        return f.read()


def _parquet_file(name: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(open_file(name))
    except Exception as err:
        raise ValueError(f"Dataset.from_parquet: {name!r} is not a readable Parquet file ({type(err).__name__}: "
                         f"{err}); remove it or rewrite it") from None


@dataclass
class ParquetFeatures:
    """An N x D embedding column left in its Parquet files; ``np.asarray`` reads it whole (the local
    engine), ``read_file`` one file at a time (the Ray engine's workers)."""

    files: list
    column: str
    rows: list  # rows per file
    dim: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(sum(self.rows)), self.dim)

    ndim = 2
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)

    def read_file(self, i: int, row_groups=None) -> np.ndarray:
        pf = _parquet_file(self.files[i])
        table = pf.read(columns=[self.column]) if row_groups is None else \
            pf.read_row_groups(row_groups, columns=[self.column])
        return embedding_matrix(table.column(self.column), self.files[i], self.column, self.dim)

    def __array__(self, dtype=None, copy=None):
        X = np.concatenate([self.read_file(i) for i in range(len(self.files))]) if self.files else \
            np.zeros((0, self.dim), np.float32)
        return X if dtype is None else X.astype(dtype, copy=False)


def embedding_matrix(column, file: str, name: str, dim: int | None) -> np.ndarray:
    """A list / fixed-size-list column as an N x D float32 matrix; a row of another length is an error
    that names the file, the column and the row. Missing rows (null or an empty list) become NaN (flagged
    as invalid later)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(col)
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        if dim is not None and width != dim:
            raise ValueError(f"Dataset.from_parquet: embeddings in column {name!r} of {file!r} have {width} values "
                             f"but other files have {dim}; embed every file with the same model")
        flat = col.flatten() if col.null_count == 0 else None
        if flat is not None:
            return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, width)
    lengths = _row_lengths(col)
    present = lengths > 0  # null or an empty list: a missing embedding
    want = dim if dim is not None else _mode_length(lengths)  # a few odd rows are named, not the majority
    bad = np.flatnonzero(present & (lengths != want))
    if len(bad):
        raise ValueError(f"Dataset.from_parquet: row {int(bad[0])} of {file!r} has an embedding of "
                         f"{int(lengths[bad[0]])} values in column {name!r}, other rows have {want}; every "
                         "embedding must have the same length (re-embed those rows or drop them)")
    out = np.full((n, want), np.nan, dtype=np.float32)
    if present.any():
        values = pc.list_flatten(col.filter(pa.array(present)))
        out[present] = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, want)
    return out


def _row_lengths(column) -> np.ndarray:
    """int64 per row of a list column: its number of values, 0 for a null row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    return np.nan_to_num(lengths.astype(float)).astype(np.int64)


def _mode_length(lengths: np.ndarray) -> int:
    """The most common of the non-zero ``_row_lengths`` (0 when there is none)."""
    lengths = lengths[lengths > 0]
    return int(np.bincount(lengths).argmax()) if len(lengths) else 0


def _list_dim(field, file, name):
    import pyarrow as pa

    t = field.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise ValueError(f"Dataset.from_parquet: features column {name!r} of {file!r} holds {t}, not a list of "
                         "numbers per row; store each embedding as a list<float> (e.g. pa.list_(pa.float32(), D))")
    if not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise ValueError(f"Dataset.from_parquet: features column {name!r} of {file!r} holds lists of "
                         f"{t.value_type}; embeddings must be numbers")
    return t.list_size if pa.types.is_fixed_size_list(t) else None


def _check_column(schema_names, col, role, file):
    if col is None or col in schema_names:
        return
    close = difflib.get_close_matches(col, schema_names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Dataset.from_parquet: {role} column {col!r} is not in {file!r}; its columns are "
                     f"{list(schema_names)}.{hint}")


def read_parquet_dataset(cls, paths, image=None, text=None, features=None, label=None, split=None, id=None,
                         root=None):
    """Build a ``cls`` (Dataset) from Parquet files; see ``Dataset.from_parquet``."""
    import pandas as pd
    import pyarrow as pa

    where = "Dataset.from_parquet"
    given = sum(c is not None for c in (image, text, features))
    if given > 1:
        raise ValueError(f"{where}: pass one of image=, text= or features= (one modality per dataset)")
    files = resolve_files(paths)
    pfs = [_parquet_file(f) for f in files]
    first = pfs[0].schema_arrow
    for f, pf in zip(files[1:], pfs[1:]):
        s = pf.schema_arrow
        if not s.equals(first, check_metadata=False):
            a, b = dict(zip(first.names, map(str, first.types))), dict(zip(s.names, map(str, s.types)))
            diff = sorted(set(a.items()) ^ set(b.items()))
            raise ValueError(f"{where}: {f!r} has a different schema than {files[0]!r} (differing columns: "
                             f"{diff[:6]}); rewrite the files with one schema or pass only the matching files")
    names = list(first.names)
    for role, col in (("image", image), ("text", text), ("features", features), ("label", label),
                      ("split", split), ("id", id)):
        _check_column(names, col, role, files[0])
    dim = None
    if features is not None:
        dim = _list_dim(first.field(features), files[0], features)
    small = [c for c in names if c != features]
    tables = []
    for f, pf in zip(files, pfs):
        try:
            tables.append(pf.read(columns=small))
        except Exception as err:
            raise ValueError(f"{where}: could not read {f!r} ({type(err).__name__}: {err}); remove or rewrite "
                             "that file") from None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    frame = table.to_pandas(types_mapper=None)
    rows = [pf.metadata.num_rows for pf in pfs]
    if len(frame) == 0:
        raise ValueError(f"{where}: the files hold no rows ({files[:3]})")
    if features is not None:
        if dim is None:  # variable-length lists: the length most rows of the first file's first row group have
            dim = _mode_length(_row_lengths(pfs[0].read_row_group(0, columns=[features]).column(features)))
            if not dim:
                raise ValueError(f"{where}: the first rows of {files[0]!r} hold no embedding in column "
                                 f"{features!r} (every one null or empty)")
        lazy = ParquetFeatures(files, features, rows, int(dim))
        ids = frame[id].to_numpy() if id is not None else None
        if id is not None:
            frame = frame.drop(columns=[id])
        meta = frame.drop(columns=[c for c in (label, split) if c is not None])
        ds = cls.from_arrays(np.zeros((len(frame), 0), np.float32), labels=frame[label] if label else None,
                             metadata=meta if len(meta.columns) else None,
                             split=frame[split] if split else None, ids=ids)
        ds.features = lazy
        ds.source_files = files
        return ds
    if image is not None and root is None:
        root = _default_root(files[0])
    if image is not None and is_uri(str(root)) or (image is not None and _any_uri(frame[image])):
        ds = _remote_image_dataset(cls, frame, image, label, split, id, str(root))
    else:
        ds = cls.from_dataframe(frame, image=image, text=text, label=label, split=split, id=id, root=root)
    ds.source_files = files
    return ds


def _default_root(first_file: str):
    """Relative image paths are relative to the folder of the (first) Parquet file."""
    return posixpath.dirname(first_file) if is_uri(first_file) else Path(first_file).parent


def _any_uri(values) -> bool:
    head = values.dropna().iloc[:200]
    return any(is_uri(v) for v in head if isinstance(v, str))


def _remote_image_dataset(cls, frame, image, label, split, id, root: str):
    """Image paths on a remote filesystem: kept as full URIs (read through pyarrow.fs when embedded)."""
    where = "Dataset.from_parquet"
    paths = frame[image]
    bad = paths[~paths.map(lambda v: v is None or isinstance(v, str))]
    if len(bad):
        raise ValueError(f"{where}: image column {image!r} mixes paths with {type(bad.iloc[0]).__name__} values")
    frame = frame.copy()
    frame[image] = paths.map(lambda v: v if v is None or is_uri(v) else posixpath.join(root, v))
    if id is not None:
        frame.index = frame.pop(id).to_numpy()
    elif not frame[image].duplicated().any():
        frame.index = frame[image].to_numpy()
    frame.index.name = "id"
    if frame.index.has_duplicates:
        raise ValueError(f"{where}: ids must be unique; pass id= a column of unique ids")
    roles = {c for c in (image, label, split) if c is not None}
    return cls(frame=frame, label=label, split=split, image=image,
               metadata_columns=[c for c in frame.columns if c not in roles], modality="image", root=None)
