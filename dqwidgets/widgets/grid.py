"""The sample grid's content: which samples it shows, in what order, and their cells page by page.

With a selection, the grid shows the selected samples; without one, the worst samples by the
chosen score. Filters (issue, split, class) narrow both. Thumbnails and text snippets come from
``an.dataset`` one visible cell at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dqwidgets.issues import ISSUES
from dqwidgets.widgets.map import score_columns

if TYPE_CHECKING:
    from dqwidgets.analysis import Analysis

SNIPPET_CHARS = 240
ISSUE_FILTERS = {i.filter_key: (i.flag_column, i.filter_text) for i in ISSUES}  # key -> (flag column, menu text)
QUEUE_FILTER = "queue"  # the grid shows an.review_queue(), in its order (dqwidgets.review_queue)
QUEUE_TEXT = "review queue (flags, then past them while likely wrong)"


def filter_mask(samples: pd.DataFrame, labels: pd.Series | None, issue: str = "", split: str = "",
                label: str = "") -> np.ndarray | None:
    """Boolean mask of the samples the filters keep (None = no filter)."""
    mask = None

    def narrow(m):
        nonlocal mask
        mask = m if mask is None else mask & m

    if issue:
        if issue not in ISSUE_FILTERS:
            raise ValueError(f"Explorer filter: unknown issue {issue!r}; expected one of {sorted(ISSUE_FILTERS)}")
        col = ISSUE_FILTERS[issue][0]
        narrow(samples[col].fillna(False).to_numpy(dtype=bool) if col in samples.columns
               else np.zeros(len(samples), dtype=bool))
    if split:
        if "split" not in samples.columns:
            raise ValueError("Explorer filter: the dataset has no split column")
        narrow(samples["split"].astype(str).to_numpy() == split)
    if label:
        if labels is None:
            raise ValueError("Explorer filter: the dataset has no labels to filter by")
        narrow(labels.reindex(samples.index).astype(str).to_numpy() == label)
    return mask


def order_rows(samples: pd.DataFrame, rows: np.ndarray | None, mask: np.ndarray | None, score: str | None) -> np.ndarray:
    """Row numbers the grid shows: ``rows`` (or all) kept by ``mask``, worst ``score`` first."""
    if rows is None:
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(samples))
    elif mask is not None:
        rows = rows[mask[rows]]
    if score and score in samples.columns and len(rows):
        values = np.nan_to_num(samples[score].to_numpy(dtype=np.float64)[rows], nan=-1.0)
        rows = rows[np.argsort(-values, kind="stable")]
    return rows


def default_score(samples: pd.DataFrame) -> str | None:
    scores = score_columns(samples)
    for preferred in ("label_issue_score", "ood_score"):
        if preferred in scores:
            return preferred
    return scores[0] if scores else None


def page_frame(an: Analysis, rows: np.ndarray, labels: pd.Series | None, dropped: set, flagged: np.ndarray) -> pd.DataFrame:
    """The cells for ``rows``: id, current label, suggestion, scores, flags and (for texts/tables) a snippet."""
    samples = an.samples
    sub = samples.iloc[rows]
    out = pd.DataFrame({"row": rows.astype(np.int64), "id": [str(i) for i in sub.index]})
    if labels is not None:
        out["label"] = labels.reindex(sub.index).to_numpy()
    if "suggested_label" in sub.columns:
        out["suggested_label"] = sub["suggested_label"].to_numpy()
    for c in score_columns(samples):
        out[c] = sub[c].to_numpy(dtype=np.float64)
    out["flagged"] = flagged[rows]
    out["dropped"] = [i in dropped for i in sub.index]
    modality = an.dataset.modality
    if modality == "text":
        out["snippet"] = [_snippet(an.dataset, i) for i in sub.index]
    elif modality != "image":
        meta = [c for c in an.dataset.metadata_columns if c in sub.columns][:6]
        out["snippet"] = [", ".join(f"{c}={v}" for c, v in zip(meta, vals)) for vals in sub[meta].itertuples(index=False)] \
            if meta else ["(embedding only)"] * len(sub)
    return out


def _snippet(dataset, sample_id) -> str:
    try:
        text = dataset.text_of(sample_id)
    except Exception as e:  # the grid shows why, instead of failing the page
        return f"(text unavailable: {e})"
    if text is None:
        return "(no text)"
    text = str(text)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def image_mime(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "application/octet-stream"


def thumbnails(dataset, ids: list, size: int) -> tuple[list[bytes], dict[int, str]]:
    """Thumbnail bytes for each id that has one, and the reason for each position that has not."""
    blobs, errors = [], {}
    for k, i in enumerate(ids):
        try:
            blobs.append(bytes(dataset.thumbnail(i, size=size)))
        except Exception as e:  # an unreadable image becomes a placeholder with the reason
            errors[k] = str(e) or type(e).__name__
            blobs.append(None)
    return blobs, errors
