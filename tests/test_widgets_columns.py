"""The bytes the Explorer sends and reads: selection encodings, map columns, grid order, table pages."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dqwidgets.widgets import grid, map as map_columns, table
from dqwidgets.widgets.arrow_pages import frame_to_ipc, sort_page
from dqwidgets.widgets.selection import Selection, decode_rows, encode_rows


def test_selection_round_trips_in_the_smaller_encoding():
    n = 1_000_000
    few = np.array([5, 3, 999_999])
    enc, data = encode_rows(few, n)
    assert enc == "indices" and len(data) == 12
    assert decode_rows(enc, data, n).tolist() == [3, 5, 999_999]
    everything = np.arange(n)
    enc, data = encode_rows(everything, n)
    assert enc == "bitmask" and len(data) == 125_000  # 1M selected rows: 125 kB, far under the 10 MB cap
    assert np.array_equal(decode_rows(enc, data, n), everything)


def test_selection_rejects_rows_outside_the_table():
    with pytest.raises(ValueError, match="outside 0..9"):
        encode_rows([10], 10)
    with pytest.raises(ValueError, match="unknown encoding"):
        decode_rows("json", b"", 10)


def test_selection_model_rows_property():
    sel = Selection(n=100)
    sel.rows = [7, 2, 2, 50]
    assert sel.count == 3 and sel.rows.tolist() == [2, 7, 50]
    sel.rows = []
    assert sel.count == 0 and sel.rows.tolist() == []


def test_positions_keep_aspect_and_fill_the_square():
    xy, notice = map_columns.normalised_positions([0, 10, 5], [0, 2, 1])
    xy = xy.reshape(-1, 2)
    assert notice == ""
    assert xy.dtype == np.float32 and np.isclose(xy[:, 0].min(), -0.95) and np.isclose(xy[:, 0].max(), 0.95)
    assert np.isclose(xy[1, 1] - xy[0, 1], 2 / 5 * 0.95)  # y spans a fifth of x: not stretched
    xy, notice = map_columns.normalised_positions([np.nan, np.nan], [np.nan, np.nan])
    assert "no layout" in notice and not xy.any()


def test_colour_columns_are_one_byte_per_sample():
    samples = pd.DataFrame({"label_issue_score": [0.0, 0.5, 1.0, np.nan], "slice_id": [2, 0, 2, 1],
                            "is_label_issue": [False, False, True, False], "is_ood": [False, True, False, False]},
                           index=pd.Index(list("abcd"), name="id"))
    c = map_columns.colour_column(samples, "label_issue_score", None, None)
    assert c.continuous and c.codes.dtype == np.uint8 and c.codes.tolist() == [0, 128, 255, 0]
    c = map_columns.colour_column(samples, "slice_id", None, None)
    assert not c.continuous and c.categories == ["0", "1", "2"] and c.codes.tolist() == [2, 0, 2, 1]
    c = map_columns.colour_column(samples, "issue", None, np.array([False, False, False, True]))
    assert [c.categories[k] for k in c.codes] == ["fine", "out of distribution", "label issue", "dropped"]
    with pytest.raises(ValueError, match="cannot colour by 'nope'"):
        map_columns.colour_column(samples, "nope", None, None)


def test_many_categories_fold_into_other():
    values = pd.Series([f"c{i}" for i in range(300)] + ["c0"] * 5)
    codes, names = map_columns.category_codes(values)
    assert len(names) == 255 and names[-1] == "other" and codes.max() == 254


def test_grid_shows_selection_or_worst_first_and_filters():
    samples = pd.DataFrame({"label_issue_score": [0.1, 0.9, 0.5, 0.7], "is_label_issue": [False, True, False, True],
                            "split": ["train", "test", "train", "train"]})
    labels = pd.Series(["a", "b", "a", "b"], index=samples.index)
    assert grid.order_rows(samples, None, None, "label_issue_score").tolist() == [1, 3, 2, 0]
    mask = grid.filter_mask(samples, labels, issue="label", split="train")
    assert grid.order_rows(samples, None, mask, "label_issue_score").tolist() == [3]
    assert grid.order_rows(samples, np.array([0, 2]), None, "label_issue_score").tolist() == [2, 0]
    with pytest.raises(ValueError, match="no labels"):
        grid.filter_mask(samples, None, label="a")


def test_pages_are_arrow_ipc_and_text_stays_text():
    frame = pd.DataFrame({"label": ["<img src=x onerror=alert(1)>", None], "n": [3, 4], "s": [0.5, np.nan]})
    table_ = pa.ipc.open_stream(frame_to_ipc(frame)).read_all()
    assert table_.column("label").to_pylist() == ["<img src=x onerror=alert(1)>", None]
    assert table_.column("n").type == pa.int32()
    page = sort_page(frame, "s", True, 0, 1)
    assert page["n"].tolist() == [3]
    with pytest.raises(ValueError, match="no column 'x'"):
        sort_page(frame, "x", True, 0, 1)


class _SliceAnalysis:  # just the two frames rows_of_table_row reads
    def __init__(self):
        self.samples = pd.DataFrame({"slice_id": [0, 1, 1, 0, 1], "color": ["r", "g", "g", "r", "b"],
                                     "label": ["x", "y", "x", "x", "y"]})
        self.slices = pd.DataFrame({"slice_id": [0, 1], "size": [2, 3], "error_rate": [0.1, 0.6]})
        self.spurious = pd.DataFrame({"attribute": ["color"], "value": ["g"], "label": ["y"], "lift": [3.0]})


def test_table_rows_select_their_samples():
    an = _SliceAnalysis()
    page, sort = table.table_page(an, "slices", "", True, 0, 10)
    assert sort == "error_rate" and page["slice_id"].tolist() == [1, 0]
    key = int(page["_key"].iloc[0])
    assert table.rows_of_table_row(an, "slices", key).tolist() == [1, 2, 4]
    assert table.rows_of_table_row(an, "spurious", 0).tolist() == [1]
    with pytest.raises(ValueError, match="no row 5"):
        table.rows_of_table_row(an, "slices", 5)


def test_a_spurious_row_on_a_measured_property_selects_the_samples_in_its_bin():
    """Numbers are found as quantile bins ("<0.58") and few levels as formatted numbers ("28"): a
    plain string compare with the column matched nothing; invalid samples are outside the search."""
    an = _SliceAnalysis()
    an.samples = pd.DataFrame({"brightness": np.arange(30) / 10, "width": [28.0] * 15 + [30.0] * 15,
                               "label": ["x", "y"] * 15})
    an.valid = np.arange(30) != 2
    an.spurious = pd.DataFrame({"attribute": ["brightness", "width"], "value": ["<0.58", "28"],
                                "label": ["x", "y"], "lift": [2.0, 1.5]})
    assert table.rows_of_table_row(an, "spurious", 0).tolist() == [0, 4]
    assert table.rows_of_table_row(an, "spurious", 1).tolist() == [1, 3, 5, 7, 9, 11, 13]
    an.spurious.loc[0, "value"] = "<0.1"
    with pytest.raises(ValueError, match="no value '<0.1'"):
        table.rows_of_table_row(an, "spurious", 0)
