"""Engines that run :func:`dqwidgets.analyze`.

``"local"`` (the default) is the in-process pipeline of ``dqwidgets.analysis``. ``"ray"`` runs the same
steps as Ray Data passes over Parquet shards under the workdir (``dqwidgets.engine.ray_engine``), for
datasets that outgrow one process; see docs/scale.md. Nothing here imports Ray until ``engine="ray"`` is
asked for: Ray is the optional extra ``pip install 'dqwidgets[ray]'``.
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def run_engine(engine, ds, engine_options: dict | None = None, **kwargs):
    """``analyze(ds, engine=...)`` for an engine other than "local": the same :class:`dqwidgets.Analysis`."""
    if engine not in ENGINES:
        raise ValueError(f"analyze: engine must be one of {ENGINES}, got {engine!r}")
    if engine_options is not None and not isinstance(engine_options, dict):
        raise ValueError(f"analyze: engine_options must be a dict, got {type(engine_options).__name__}")
    if engine == "ray":
        from dqwidgets.engine.ray_engine import analyze_ray

        return analyze_ray(ds, **kwargs, **(engine_options or {}))
    raise ValueError("analyze: engine='local' runs in dqwidgets.analysis.analyze")
