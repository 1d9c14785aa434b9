"""Run settings: tiling, output, scene mode, and the one run configuration."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from geosr.errors import OptionError, require_extra
from geosr.models import get_method, get_method_class
from geosr.models.api import check_scale
from geosr.models.base import coerce_options
from geosr.raster.creation import check_creation_options

logger = logging.getLogger(__name__)


#: Scene statistics use every pixel up to this many per raster, a strided read above.
STATS_FULL_PIXELS = 4096 * 4096
#: Side of the blocks read for statistics (pixels of the decimated read).
STATS_BLOCK = 1024

#: Default tile side of deterministic methods, in HR pixels (tile_size = this // scale,
#: clamped to 64..256 LR px); the guided filter needs ~0.8 GB for a 1064^2 HR tile.
CLASSICAL_TILE_HR = 512
#: Default tile side of learned methods, in LR pixels.
LEARNED_TILE = 128

ProgressCallback = Callable[[int, int], None]
#: called with the name of each stage as it starts: stats, tiles, mosaic, cog
StageCallback = Callable[[str], None]

# -- configuration -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TilingConfig:
    """Tile layout and execution. ``None`` fields get method-dependent defaults.

    ``tile_size`` and ``overlap`` are in LR pixels: neighbouring tiles overlap by at least
    ``overlap`` pixels and are blended there with cosine ramps; ``tile_size`` must be at
    least twice the overlap. ``workers`` is the number of tiles run at once.
    """

    tile_size: int | None = None
    overlap: int | None = None
    workers: int | None = None
    #: side of the output blocks the mosaic writes at once (HR pixels)
    mosaic_block: int = 1024

    def __post_init__(self) -> None:
        if self.tile_size is not None and self.tile_size < 2:
            raise OptionError(f"tile size must be >= 2 LR pixels, got {self.tile_size}")
        if self.overlap is not None and self.overlap < 0:
            raise OptionError(f"overlap must be >= 0 LR pixels, got {self.overlap}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"workers must be >= 1, got {self.workers}")
        if self.mosaic_block < 16:
            raise OptionError(f"mosaic block must be >= 16 pixels, got {self.mosaic_block}")
        if self.tile_size is not None and self.overlap is not None:
            _check_tile_overlap(self.tile_size, self.overlap)

    def resolve(
        self, *, deterministic: bool, halo: int, scale: int = 4
    ) -> tuple[int, int, int]:
        """Concrete ``(tile_size, overlap, workers)`` for a method."""
        overlap = self.overlap if self.overlap is not None else max(halo, 8)
        tile = self.tile_size
        if tile is None:
            if deterministic:  # ~512 HR px a side: a few hundred MB per tile at most
                tile = min(256, max(64, CLASSICAL_TILE_HR // scale))
            else:
                tile = LEARNED_TILE
            tile = max(tile, 2 * overlap)
        _check_tile_overlap(tile, overlap)
        workers = self.workers
        if workers is None:
            # A tile's numpy/torch work already keeps ~2 cores busy; learned methods fit
            # one network at a time (torch uses every core for it).
            workers = max(1, min(4, (os.cpu_count() or 1) // 2)) if deterministic else 1
        return tile, overlap, workers


def _check_tile_overlap(tile: int, overlap: int) -> None:
    if tile < 2 * overlap or tile < 2:
        raise OptionError(
            f"tile size {tile} is too small for an overlap of {overlap} LR pixels: the tile "
            f"size must be at least twice the overlap; use --tile-size {max(2, 2 * overlap)} "
            f"or more, or a smaller --overlap"
        )


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """How the output is written."""

    cog: bool = True
    overwrite: bool = False
    compress: str = "DEFLATE"
    blocksize: int = 512
    #: extra GDAL creation options of the output's driver (COG, or GTiff when ``cog`` is
    #: false), e.g. (("LEVEL", "9"),); checked by GDAL when the config is made
    creation_options: tuple[tuple[str, str], ...] = ()
    #: keep ``<output>.tiles/`` after the run (it is reused by a rerun of the same plan)
    keep_tiles: bool = False

    def __post_init__(self) -> None:
        if self.blocksize < 16 or self.blocksize % 16:
            raise OptionError(f"blocksize must be a multiple of 16, got {self.blocksize}")
        if self.compress.upper() not in {"DEFLATE", "ZSTD", "LZW", "LZMA", "NONE"}:
            raise OptionError(
                f"compress must be one of DEFLATE, ZSTD, LZW, LZMA, NONE; got {self.compress!r}"
            )
        for kv in self.creation_options:
            if len(kv) != 2 or not kv[0]:
                raise OptionError(f"creation options are (KEY, VALUE) pairs, got {kv!r}")
        # GDAL only warns about options it does not take: ask it now, before any work
        check_creation_options(self.creation_options, cog=self.cog)


def method_options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options that ``method`` accepts (the CLI's shared options)."""
    fields = {f.name for f in dataclasses.fields(get_method_class(method).Options)}
    return {k: v for k, v in options.items() if k in fields}



#: GDAL's resampling methods that can warp the guide onto the output grid
#: (``gdalwarp -r``); None (the default) picks average where the guide is finer than the
#: output pixels, bilinear otherwise
GUIDE_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average",
                    "rms", "mode", "min", "max", "med", "q1", "q3", "sum")


#: ``auto`` picks one of the others from a time budget (:mod:`geosr.pipeline.auto`)
MODES = ("tile", "scene", "hybrid", "auto")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """How the scene network is fitted (``mode`` ``scene`` or ``hybrid``).

    ``iterations``: optimisation steps of the scene fit (None: the method's
    ``iterations``). ``crop``: side of the random crops in LR pixels. ``pool``: how many
    distinct crops are read (steps cycle through them in a shuffled order; more crops
    cover more of the scene but cost more reads). ``min_valid``: a crop needs at least
    this fraction of valid LR pixels. ``hybrid_iterations``: per-tile fine-tune steps of
    the ``hybrid`` mode. ``network``: a network file (:mod:`geosr.pipeline.network`) to start from
    instead of a fresh network: it is used as is, or, when ``iterations`` is given, fitted
    further on this scene for that many steps. ``back_project``: iterations of
    back-projection (:func:`back_project`) applied to each tile's prediction in scene and
    hybrid modes, so that it average-pools back to the tile's LR as a tile fit's output
    does (0: off).
    """

    mode: str = "tile"
    iterations: int | None = None
    crop: int = 48
    pool: int = 128
    min_valid: float = 0.5
    hybrid_iterations: int = 100
    network: str | None = None
    back_project: int = 10

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.network is not None and self.mode == "tile":
            raise OptionError(
                "--network needs --mode scene or hybrid (scene applies it to every tile, "
                "hybrid fine-tunes it per tile); tile mode fits a fresh network per tile")
        if self.iterations is not None and self.iterations < 1:
            raise OptionError(f"scene iterations must be >= 1, got {self.iterations}")
        if self.crop < 4:
            raise OptionError(f"scene crop must be >= 4 LR pixels, got {self.crop}")
        if self.pool < 1:
            raise OptionError(f"scene crop pool must be >= 1, got {self.pool}")
        if not 0 < self.min_valid <= 1:
            raise OptionError(f"min_valid must be in (0, 1], got {self.min_valid}")
        if self.hybrid_iterations < 1:
            raise OptionError(f"hybrid iterations must be >= 1, got {self.hybrid_iterations}")
        if self.back_project < 0:
            raise OptionError(f"back-projection iterations must be >= 0, got {self.back_project}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.mode != "hybrid":
            d.pop("hybrid_iterations")
        if self.network is None:
            d.pop("network")
        return d if self.mode != "tile" else {"mode": "tile"}


def check_mode(method: str, mode: str) -> None:
    """Scene and hybrid modes need a learned method whose network is image-agnostic."""
    if mode in ("tile", "auto"):
        return
    cls = get_method_class(method)
    if cls.deterministic:
        raise OptionError(
            f"--mode {mode} fits one network for the scene, but {method!r} has nothing to "
            "fit; use --mode tile (the default) with it"
        )
    if not getattr(cls, "scene_modes", False):
        raise OptionError(
            f"--mode {mode} is not available for {method!r} (its network is tied to one "
            "image); use --mode tile, or mmsr / robself-re / robself-de"
        )


def is_resampler(method: str) -> bool:
    """Whether ``method`` is a plain resampler of the LR (bicubic, cubic, lanczos)."""
    return bool(get_method_class(method).resampler)


def is_deterministic(method: str) -> bool:
    """True for classical methods (no optimisation, no seed)."""
    return bool(get_method_class(method).deterministic)


#: Flat settings that every learned method shares, each given to a method only where it
#: declares it (``--iterations`` means nothing to the guided filter).
SHARED_METHOD_SETTINGS = ("preset", "iterations", "device", "seed", "back_project", "prefit")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's output: one frozen, validated object per run.

    Built by :func:`run_config` from flat settings (the CLI's flags, a batch manifest's
    columns), or directly (as :func:`geosr.super_resolve_xr` does from its keywords). The
    user-facing defaults (``mode="auto"``, the guard on) are :func:`run_config`'s; a
    configuration built directly runs exactly what it names (tile mode, no guard). ``method_options``
    are the method's own options (``geosr methods``), kept as sorted ``(name, value)``
    pairs; they are checked against the method when the configuration is built, as are
    the scale and the mode.
    """

    scale: int
    method: str = "mmsr"
    method_options: tuple[tuple[str, Any], ...] = ()
    lr_band: int | None = None
    guide_bands: tuple[int, ...] | None = None
    #: LR nodata value that overrides the file's (also the output's nodata)
    nodata: float | None = None
    guide_resampling: str | None = None
    scene: SceneConfig = SceneConfig()
    tiling: TilingConfig = TilingConfig()
    output: OutputConfig = OutputConfig()
    #: also write a STAC item next to the output
    stac: bool = False
    #: also write the scene network (scene/hybrid modes) to this file
    save_network: str | None = None
    #: check the method on the input's coarser copy first and write GDAL's lanczos instead
    #: where it would not beat it (:mod:`geosr.pipeline.selfcheck`); resamplers skip it.
    #: Off in a ``RunConfig`` built directly (it runs what it says), on by default in
    #: :func:`run_config` (the CLI and batch manifests), as ``mode="auto"`` is
    guard: bool = False
    #: seconds that ``mode="auto"`` plans the run to take (None: 5 min on a CPU, 10 on a GPU)
    budget: float | None = None
    #: the LR and the guide as the user named them (e.g. a manifest's hrefs, before they
    #: are made absolute), for the output's provenance tags; None: the paths ``run`` gets
    input_names: tuple[str, str] | None = None
    #: when the inputs were acquired, for the STAC item: an ISO 8601 time, or a
    #: ``start/end`` interval (e.g. a STAC input item's); None: read from the inputs' tags
    datetime: str | None = None

    def __post_init__(self) -> None:
        items = self.method_options
        if isinstance(items, Mapping):
            items = items.items()
        typed = coerce_options(get_method_class(self.method).Options, dict(items), self.method)
        options = tuple(sorted(typed.items()))
        object.__setattr__(self, "method_options", options)
        object.__setattr__(self, "scale", check_scale(self.scale))
        if self.guide_bands is not None:
            object.__setattr__(self, "guide_bands", tuple(int(b) for b in self.guide_bands))
        if self.save_network is not None:
            object.__setattr__(self, "save_network", os.fspath(self.save_network))
        if self.input_names is not None:
            object.__setattr__(self, "input_names", tuple(str(n) for n in self.input_names))
        get_method(self.method, **dict(options))  # validates the options
        if self.guide_resampling is not None and self.guide_resampling not in GUIDE_RESAMPLING:
            raise OptionError(
                f"unknown guide resampling {self.guide_resampling!r}; choose one of "
                f"{', '.join(GUIDE_RESAMPLING)} (GDAL's names), or leave it out for the "
                "default (average where the guide is finer than the output, else bilinear)")
        if self.stac:
            for module in ("pystac", "rio_stac"):
                require_extra(module, "stac", "a STAC item (--stac)")
        check_mode(self.method, self.scene.mode)
        if self.save_network is not None and self.scene.mode == "tile":
            raise OptionError(
                "--save-network needs --mode scene or hybrid: tile mode fits a network per "
                "tile and has no scene network to save")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.method_options)


def run_config(
    *,
    scale: int,
    method: str | None = None,
    options: Mapping[str, Any] | None = None,
    preset: str | None = None,
    iterations: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    back_project: int | None = None,
    prefit: int | None = None,
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
    guide_resampling: str | None = None,
    mode: str | None = None,
    scene_iterations: int | None = None,
    scene_crop: int | None = None,
    hybrid_iterations: int | None = None,
    network: str | os.PathLike[str] | None = None,
    tile_size: int | None = None,
    overlap: int | None = None,
    workers: int | None = None,
    mosaic_block: int | None = None,
    cog: bool | None = None,
    overwrite: bool | None = None,
    creation_options: Sequence[tuple[str, str]] | None = None,
    keep_tiles: bool | None = None,
    stac: bool | None = None,
    save_network: str | os.PathLike[str] | None = None,
    guard: bool | None = None,
    budget: str | float | None = None,
    input_names: Sequence[str] | None = None,
    datetime: str | None = None,
) -> RunConfig:
    """The run configuration of flat settings: the one place where they become configs.

    ``None`` means "not given": the default applies. The shared method settings
    (``preset``, ``iterations``, ``device``, ``seed``, ``back_project``, ``prefit``) go to
    the method where it declares them; ``options`` (``-O KEY=VALUE``) go to it as given,
    override them, and an unknown one is an error. ``back_project`` also sets the scene
    network's back-projection in scene and hybrid modes.
    """
    method = method or "mmsr"
    shared = {"preset": preset, "iterations": iterations, "device": device, "seed": seed,
              "back_project": back_project, "prefit": prefit}
    opts = method_options_for(method, {k: v for k, v in shared.items() if v is not None})
    opts.update(options or {})
    scene_defaults = SceneConfig()
    scene = SceneConfig(
        mode=mode or "auto",
        iterations=scene_iterations,
        crop=scene_crop or scene_defaults.crop,
        hybrid_iterations=hybrid_iterations or scene_defaults.hybrid_iterations,
        back_project=scene_defaults.back_project if back_project is None else back_project,
        network=None if network is None else os.fspath(network),
    )
    tiling = TilingConfig(
        tile_size=tile_size, overlap=overlap, workers=workers,
        **({} if mosaic_block is None else {"mosaic_block": mosaic_block}),
    )
    out_defaults = OutputConfig()
    output = OutputConfig(
        cog=out_defaults.cog if cog is None else bool(cog),
        overwrite=bool(overwrite),
        creation_options=tuple(tuple(kv) for kv in (creation_options or ())),
        keep_tiles=bool(keep_tiles),
    )
    return RunConfig(
        scale=scale, method=method, method_options=tuple(opts.items()), lr_band=lr_band,
        guide_bands=None if guide_bands is None else tuple(guide_bands), nodata=nodata,
        guide_resampling=guide_resampling, scene=scene, tiling=tiling, output=output,
        stac=bool(stac), save_network=None if save_network is None else os.fspath(save_network),
        guard=True if guard is None else bool(guard), budget=parse_budget(budget),
        input_names=None if input_names is None else tuple(input_names), datetime=datetime,
    )


def parse_budget(text: str | float | None) -> float | None:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or a number of seconds -> seconds."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", s):
            value = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
            if not parts or "".join(a + u for a, u in parts) != s:
                raise OptionError(f"cannot read the budget {text!r}; write e.g. 10m, 90s or "
                                  "1h30m")
            value = sum(float(a) * {"h": 3600, "m": 60, "s": 1}[u] for a, u in parts)
    if not value > 0:
        raise OptionError(f"the budget must be > 0, got {text!r}")
    return value
