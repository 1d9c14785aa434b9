"""The georeferenced pipeline: plan -> scene statistics -> (scene fit) -> tiles -> mosaic -> write.

The stages live in modules of their own (``docs/architecture.md`` draws the flow):
:mod:`~geosr.pipeline.config` (the run's settings), :mod:`~geosr.pipeline.plan`,
:mod:`~geosr.pipeline.stats`, :mod:`~geosr.pipeline.sources` (where pixels come from),
:mod:`~geosr.pipeline.scene` (one network for the scene), :mod:`~geosr.pipeline.tiles`
(the tile task and its executors), :mod:`~geosr.pipeline.mosaic` and
:mod:`~geosr.pipeline.runner`, which ties them together.
"""

from geosr.pipeline.config import (
    MODES,
    OutputConfig,
    RunConfig,
    SceneConfig,
    TilingConfig,
    is_deterministic,
    method_options_for,
    run_config,
)
from geosr.pipeline.plan import Plan, make_plan
from geosr.pipeline.runner import run
from geosr.pipeline.stats import compute_stats
from geosr.pipeline.tiles import predict_tile, run_tile, run_tiles

__all__ = [
    "MODES",
    "OutputConfig",
    "Plan",
    "RunConfig",
    "SceneConfig",
    "TilingConfig",
    "compute_stats",
    "is_deterministic",
    "make_plan",
    "method_options_for",
    "predict_tile",
    "run",
    "run_config",
    "run_tile",
    "run_tiles",
]
