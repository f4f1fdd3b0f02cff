"""Writing an export: tables, image folders, and the atomic swap into place.

Everything is written to a hidden sibling folder that is renamed to the target at the end; an
existing export is replaced only with ``overwrite=True`` and only when it is a dqwidgets export
(it has a ``manifest.json``). Partial folders of exports whose process died are removed.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.export.names import safe_name, unique_file_name
from dqwidgets.missing import is_missing


class ExportExistsError(FileExistsError, ValueError):
    """The export folder already exists and ``overwrite`` was not set."""


# ---------------------------------------------------------------------------------------- the folder
def existing_export_action(path: Path, overwrite: bool) -> str:
    """'create' (nothing there or an empty folder) or 'replace' (an earlier export, overwrite=True)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return "create"
    if not overwrite:
        raise ExportExistsError(f"export: {path} already exists; pass overwrite=True to replace it "
                                "or choose another folder")
    if not (path / "manifest.json").is_file():
        raise ExportExistsError(f"export: {path} is not a dqwidgets export (no manifest.json); "
                                "refusing to replace it even with overwrite=True")
    return "replace"


def partial_folder(path: Path) -> Path:
    """A new hidden sibling of ``path`` to write into (earlier abandoned ones are removed first)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_partials(path)
        tmp = path.parent / f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        tmp.mkdir()
    except OSError as err:  # a read-only or virtual file system, no permission, a full disk
        raise OSError(err.errno, f"export: cannot write into {path.parent} ({err.strerror or err}); choose a "
                                 "folder you can write to, e.g. an.export('clean')") from err
    return tmp


def _remove_abandoned_partials(path: Path) -> None:
    """Delete the temporary folders of earlier exports to ``path`` whose process is gone (killed mid-export)."""
    for partial in path.parent.glob(f".{path.name}.partial-*-*"):
        pid = partial.name.rsplit("-", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except PermissionError:     # alive, another user's
            pass


def move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    fsync(tmp)
    if existing_export_action(path, overwrite) == "create":
        if path.exists():
            path.rmdir()           # an empty folder
        os.rename(tmp, path)
    else:
        old = path.parent / f".{path.name}.replaced-{uuid.uuid4().hex[:10]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    fsync(path.parent)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- tables
def write_table(frame: pd.DataFrame, target: Path, format: str) -> None:
    if format == "parquet":
        _to_parquet(frame, target)
    elif format == "csv":
        frame.to_csv(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True, force_ascii=False)
    fsync(target)


def _as_text(values: pd.Series) -> pd.Series:
    """Each value's text, missing ones kept missing: how the export writes values its format cannot hold."""
    return values.map(lambda v: None if is_missing(v) else str(v))


def _to_parquet(frame: pd.DataFrame, target: Path) -> None:
    """``frame.to_parquet``; a column pyarrow cannot convert (complex numbers, cells of mixed or custom
    types) is written as its values' text instead, with a warning naming it: the export loses no row."""
    import warnings

    import pyarrow as pa

    try:
        frame.to_parquet(target, index=False)
        return
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    frame = frame.copy()
    as_text = []
    for col in frame.columns:
        try:
            pa.array(frame[col], from_pandas=True)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            frame[col] = _as_text(frame[col])
            as_text.append(str(col))
    warnings.warn(f"dqwidgets export: parquet cannot hold the values of column(s) {as_text}; they are written "
                  "as text", stacklevel=3)
    frame.to_parquet(target, index=False)


def table_columns(frame: pd.DataFrame, format: str, image_col) -> tuple[pd.DataFrame, dict]:
    """Columns that the format can hold; images as PNG bytes in parquet, values of other types as their
    text (warned). Returns (frame, omitted->why): only images in a format that cannot hold them."""
    omitted, as_text = {}, []
    for col in list(frame.columns):
        values = frame[col]
        if values.dtype != object:
            continue
        sample = next((v for v in values if not is_missing(v)), None)
        if sample is None or isinstance(sample, (str, int, float, bool, np.generic)):
            continue
        if _is_path(sample):
            frame[col] = values.map(lambda v: None if v is None else os.fspath(v))
        elif format == "parquet" and (col == image_col or isinstance(sample, (bytes, bytearray))):
            frame[col] = values.map(lambda v: None if v is None else png_bytes(v) if col == image_col else bytes(v))
        elif col == image_col:
            omitted[str(col)] = f"holds images, which {format} cannot store: export as parquet or imagefolder"
            frame = frame.drop(columns=col)
        else:  # values of the user's own types: their text, so that nothing is lost
            frame[col] = _as_text(values)
            as_text.append(f"{col} ({type(sample).__name__})")
    if as_text:
        import warnings

        warnings.warn(f"dqwidgets export: column(s) {as_text} hold values {format} cannot store; they are "
                      "written as text", stacklevel=3)
    return frame, omitted


# ---------------------------------------------------------------------------------------- images
def png_bytes(image) -> bytes:
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        image = bytes(image)
        if image.startswith(b"\x89PNG\r\n\x1a\n"):
            return image
        image = Image.open(io.BytesIO(image))
        image.load()
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            array = array.astype(np.float64)
            if np.nanmax(array) <= 1.0:
                array = array * 255.0
            array = np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _source_path(value, root) -> Path:
    p = Path(value)
    return p if p.is_absolute() or root is None else Path(root) / p


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_images(dataset, out: pd.DataFrame, tmp: Path, split_dirs: dict, label_dirs: dict, label_col: str) -> list:
    """``tmp/<split>/<label>/<file>`` for every row of ``out`` (files linked or copied, other images
    as PNG); the paths written, relative to ``tmp``."""
    column = dataset.frame[dataset.image].reindex(out["id"])
    missing = [i for i, v in column.items() if _is_path(v) and not _source_path(v, dataset.root).is_file()]
    if missing:
        raise ValueError(f"export: {len(missing)} image file(s) do not exist (first: {column[missing[0]]}); "
                         "drop them with an.review.drop(ids) and export again")
    root = tmp.resolve()
    taken: dict[Path, set] = {}
    files = []
    for sample_id, split, label, image in zip(out["id"], out["split"], out[label_col], column):
        folder = root / split_dirs[split] / label_dirs[label]
        if folder not in taken:
            folder.mkdir(parents=True, exist_ok=True)
            taken[folder] = set()
        if _is_path(image):
            source = _source_path(image, dataset.root)
            name = unique_file_name(safe_name(source.name), taken[folder])
            _link_or_copy(source, folder / name)
        elif image is None:
            raise ValueError(f"export: sample {sample_id!r} has no image; drop it with an.review.drop(ids)")
        else:
            name = unique_file_name(safe_name(sample_id) + ".png", taken[folder])
            (folder / name).write_bytes(png_bytes(image))
        files.append((folder / name).relative_to(root).as_posix())
    return files
