"""The Explorer's evidence panel: ``an.explain`` of the clicked card, with what the browser needs
to show the neighbours (their row numbers, for thumbnails; their snippets, for texts and tables)."""

from __future__ import annotations

import numpy as np

from dqwidgets.widgets import grid, review_panel


def evidence_message(an, row: int) -> dict:
    """The reply to the browser's ``explain`` request for grid row ``row`` of ``an.samples``."""
    sample_id = review_panel.ids_of_rows(an, [int(row)])[0]
    ev = an.explain(sample_id)
    index = an.samples.index
    body = ev.to_dict()
    body["lines"] = [[h, t] for h, t in ev.lines()]
    body["neighbour_rows"] = [int(r) for r in index.get_indexer([n.id for n in ev.neighbours])]
    body["modality"] = modality = getattr(an.dataset, "modality", "embedding")
    if modality != "image":
        frame = grid.page_frame(an, index.get_indexer([sample_id] + [n.id for n in ev.neighbours]).astype("int64"),
                                None, set(), np.zeros(len(index), dtype=bool))
        snippets = [str(s) for s in frame["snippet"].tolist()] if "snippet" in frame.columns else []
        body["snippet"], body["neighbour_snippets"] = (snippets[0], snippets[1:]) if snippets else ("", [])
    # ids go to the browser as text (it shows them; the kernel keeps the real ids)
    body["id"] = str(body["id"])
    body["duplicates"] = [str(i) for i in body["duplicates"]]
    for n in body["neighbours"]:
        n["id"], n["label"] = str(n["id"]), None if n["label"] is None else str(n["label"])
    for key in ("label", "current_label", "suggested_label"):
        body[key] = None if body[key] is None else str(body[key])
    body["top_classes"] = [[str(c), p] for c, p in body["top_classes"]]
    return body

