"""What counts as a missing value, and a value as a plain JSON-safe Python scalar."""

from __future__ import annotations

import numpy as np
import pandas as pd


def is_missing(value) -> bool:
    """None, NaN (float or numpy float), ``pd.NA`` or ``pd.NaT``."""
    if isinstance(value, np.floating):
        return bool(np.isnan(value))
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def plain_scalar(value):
    """``value`` with numpy scalars unwrapped and missing values as None."""
    if is_missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
