"""Where the Explorer's map draws each sample, computed independently of the page, for the browser tests.

The kernel sends ``normalised_positions(x, y)`` (the layout scaled into [-0.95, 0.95], aspect kept);
at the initial view (``data-view="1 0 0"``) the map's camera fits the square [-1, 1] to the plot's
shorter side, centred, y up. So a sample's page pixel follows from an.samples' x and y and the
canvas' box alone, and the ids inside a drawn polygon can be computed here and compared with
``explorer.selection``.
"""

from __future__ import annotations

import numpy as np

from dqwidgets.widgets.map import normalised_positions

EDGE_PX = 1.5  # points this close to an edge are decided by the pointer's sub-pixel position: not asserted


def screen_positions(page, x, y) -> tuple[np.ndarray, dict]:
    """Page pixel (x, y) of every sample at the map's initial view, and the canvas' bounding box."""
    assert page.locator(".dqx-map").get_attribute("data-view") == "1 0 0", "the map is not at its initial view"
    box = page.locator(".dqx-map canvas").first.bounding_box()
    xy, _ = normalised_positions(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    xy = xy.reshape(-1, 2).astype(np.float64)
    w, h = max(100, int(box["width"])), max(100, int(box["height"]))  # the camera's size: whole CSS px
    m = min(w, h)
    return np.column_stack([box["x"] + w / 2 + xy[:, 0] * m / 2, box["y"] + h / 2 - xy[:, 1] * m / 2]), box


def polygon_at(box: dict, fractions) -> np.ndarray:
    """Whole page pixels (where the pointer lands exactly) at fractions of the canvas' box."""
    return np.array([(round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"]))
                     for fx, fy in fractions], dtype=np.float64)


def inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of each point against the closed polygon (vectorised; not the code under test)."""
    x, y = points[:, :1], points[:, 1:]
    x0, y0 = polygon[None, :, 0], polygon[None, :, 1]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / (y1 - y0) + x0)
    return crosses.sum(axis=1) % 2 == 1


def near_edge(points: np.ndarray, polygon: np.ndarray, px: float = EDGE_PX) -> np.ndarray:
    a, b = polygon, np.roll(polygon, -1, axis=0)
    d = b - a
    t = np.clip(((points[:, None, :] - a[None]) * d[None]).sum(-1) / np.maximum((d * d).sum(-1), 1e-12)[None], 0, 1)
    nearest = a[None] + t[..., None] * d[None]
    return (np.linalg.norm(points[:, None, :] - nearest, axis=-1) < px).any(axis=1)


def assert_selection_is_polygon(px: np.ndarray, ids, polygon: np.ndarray, selected, also=()) -> None:
    """``selected`` holds every sample inside ``polygon`` (or any polygon of ``also``: a selection
    added to) and none outside all of them (edge pixels aside)."""
    ids = np.asarray([str(i) for i in ids])
    got = [str(i) for i in selected]
    is_in = np.zeros(len(px), dtype=bool)
    sure_in, maybe = np.zeros(len(px), dtype=bool), np.zeros(len(px), dtype=bool)
    for poly in [polygon, *also]:
        this, unsure = inside(px, poly), near_edge(px, poly)
        is_in |= this
        sure_in |= this & ~unsure
        maybe |= unsure
    sure_in, sure_out = set(ids[sure_in]), set(ids[~is_in & ~maybe])
    assert len(sure_in) >= 10, f"the polygon holds only {len(sure_in)} samples: a weak test"
    assert sure_in <= set(got), f"inside the polygon but not selected: {sorted(sure_in - set(got))[:10]}"
    assert not set(got) & sure_out, f"selected but outside the polygon: {sorted(set(got) & sure_out)[:10]}"
    assert len(got) == len(set(got)), "the selection holds an id twice"


def drag(page, polygon: np.ndarray, shift: bool = False) -> None:
    """Press at the first vertex, trace the polygon in small steps back to it, release."""
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for p in list(polygon[1:]) + [polygon[0]]:
        page.mouse.move(*p, steps=8)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def box_drag(page, rect: np.ndarray) -> None:
    """Press at one corner of ``rect`` and release at the opposite one (a box selection)."""
    page.mouse.move(*rect[0])
    page.mouse.down()
    page.mouse.move(*((rect[0] + rect[2]) / 2), steps=4)
    page.mouse.move(*rect[2], steps=4)
    page.mouse.up()


def worst_first(ids, scores, selected) -> list[str]:
    """The grid's order for a selection: by score, worst first; ties by row (as grid.order_rows)."""
    ids = [str(i) for i in ids]
    pos = {i: k for k, i in enumerate(ids)}
    rows = sorted(pos[str(i)] for i in selected)
    return [ids[r] for r in sorted(rows, key=lambda r: -np.nan_to_num(scores[r], nan=-1.0))]


def lonely_point(px: np.ndarray, box: dict, margin: float = 8.0, among: np.ndarray | None = None) -> int:
    """The on-screen sample (of those ``among`` marks, default all) farthest from its nearest
    neighbour: a click or hover there finds only it."""
    d = np.linalg.norm(px[:, None, :] - px[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    onscreen = (px[:, 0] > box["x"] + margin) & (px[:, 0] < box["x"] + box["width"] - margin) & \
        (px[:, 1] > box["y"] + margin) & (px[:, 1] < box["y"] + box["height"] - margin)
    if among is not None:
        onscreen &= among
    lonely = int(np.argmax(np.where(onscreen, d.min(axis=1), -1)))
    assert onscreen[lonely] and d[lonely].min() > margin, "no point stands alone enough to pick"
    return lonely
