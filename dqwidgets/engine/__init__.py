"""Engines that run :func:`dqwidgets.analyze`.

``"local"`` (the default) is the in-process pipeline of ``dqwidgets.analysis``. ``"ray"`` runs the same
steps as Ray Data passes over Parquet shards under the workdir (``dqwidgets.engine.ray_engine``), for
datasets that outgrow one process; see docs/scale.md. Nothing here imports Ray until ``engine="ray"`` is
asked for: Ray is the optional extra ``pip install 'dqwidgets[ray]'``.
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def check_engine(engine) -> str:
    if engine not in ENGINES:
        raise ValueError(f"analyze: engine must be one of {ENGINES}, got {engine!r}")
    return engine


def run(engine: str, ds, **kwargs):
    """Run a non-local engine; returns the same :class:`dqwidgets.Analysis` as the local engine."""
    if check_engine(engine) == "ray":
        from dqwidgets.engine.ray_engine import analyze_ray

        return analyze_ray(ds, **kwargs)
    raise ValueError("dqwidgets.engine.run: the local engine runs in dqwidgets.analysis.analyze")
