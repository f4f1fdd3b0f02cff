"""dqwidgets: find and fix what is wrong with a dataset without leaving the notebook."""

from dqwidgets.dataset import Dataset
from dqwidgets.analysis import Analysis, analyze
from dqwidgets.training import TrainingRecorder
from dqwidgets._version import __version__


def __getattr__(name):  # the widget stack (anywidget, plotly) loads only when a widget is asked for
    if name == "Explorer":
        from dqwidgets.widgets.explorer import Explorer

        return Explorer
    raise AttributeError(f"module 'dqwidgets' has no attribute {name!r}")


__all__ = ["Analysis", "Dataset", "Explorer", "TrainingRecorder", "analyze", "__version__"]
