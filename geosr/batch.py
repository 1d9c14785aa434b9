"""Batch jobs over a manifest of scenes, with per-scene status on disk and resume.

A manifest lists scenes, each with an LR raster, a guide and an output, plus optional
per-scene settings that override the batch defaults (the options of ``geosr sr``):

- CSV (``.csv``): a header row; columns ``lr,guide,output`` and any of ``SCENE_KEYS``;
  empty cells mean "use the default".
- JSON lines (``.jsonl``, ``.ndjson``): one object per line with the same keys.
- A STAC ItemCollection (``.json``/``.geojson`` with ``"type": "FeatureCollection"``): one
  item per scene with assets ``lr`` and ``guide``; the output is ``properties["geosr:output"]``
  or ``OUTPUT_DIR/<item id>.tif``; settings are ``properties["geosr:<key>"]``.

Relative paths are relative to the manifest's folder. ``options`` holds extra method
options (a JSON object, like ``-O``). A scene's ``id`` defaults to its output's stem.

The state folder (default ``<manifest stem>.geosr/`` next to the manifest) holds one
``scenes/<id>.json`` per scene (``status``: running, done or failed; ``seconds``,
``output``, ``error``) written atomically, and ``report.json``. With ``resume=True``,
scenes whose status is ``done`` and whose output exists are skipped, and the others
reuse the finished tiles of their tile stores. A failing scene is recorded with its
error and the others go on.

Parallelism is bounded: ``jobs`` scenes at once, each with ``workers`` tiles at once.
Without a dask client, scenes run in separate (spawned) processes when ``jobs > 1`` — a
crashing scene cannot take the others down, and learned methods never share a torch RNG;
with a client, scenes run in threads of this process and their tile tasks go to the
cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from geosr.errors import GeosrError, OptionError
from geosr.pipeline.config import SHARED_METHOD_SETTINGS, RunConfig, run_config
from geosr.pipeline.runner import run
from geosr.pipeline.stac import write_collection
from geosr.raster.atomic import atomic_write
from geosr.raster.io import is_local_path

logger = logging.getLogger(__name__)

#: per-scene settings a manifest may give (besides id, lr, guide, output)
SCENE_KEYS: dict[str, Callable[[Any], Any]] = {
    "scale": int,
    "method": str,
    "preset": lambda v: None if str(v).lower() in ("", "none") else str(v),
    "iterations": int,
    "seed": int,
    "device": str,
    "options": lambda v: json.loads(v) if isinstance(v, str) else dict(v),
    "lr_band": int,
    "guide_bands": lambda v: tuple(int(b) for b in (v.split(",") if isinstance(v, str) else v)),
    "nodata": float,
    "tile_size": int,
    "overlap": int,
    "guard": lambda v: _flag(v),
    "budget": str,
    "workers": int,
    "cog": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes"),
    "datetime": str,
    "mode": str,
    "scene_iterations": int,
    "scene_crop": int,
    "hybrid_iterations": int,
    "back_project": int,
    "prefit": int,
    "network": str,  # a network file, relative to the manifest's folder
    # how the guide is warped onto the output grid (GDAL's name; auto/empty: the default)
    "resampling": lambda v: None if str(v).strip().lower() in ("", "auto") else str(v).strip(),
}
STATUS_DIR = "scenes"
REPORT = "report.json"


@dataclasses.dataclass(frozen=True)
class Scene:
    """One line of a manifest: inputs, output and the settings it overrides."""

    id: str
    lr: str
    guide: str
    output: str
    settings: tuple[tuple[str, Any], ...] = ()
    #: the LR and the guide as the manifest writes them (the output's provenance tags)
    names: tuple[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "lr": self.lr, "guide": self.guide, "output": self.output,
                **dict(self.settings)}


# -- manifests ---------------------------------------------------------------------------
def _resolve(base: Path, href: str) -> str:
    if href.startswith("file://"):
        href = href[len("file://"):]
    if not is_local_path(href):  # /vsizip/..., https://..., s3://...: GDAL opens it as given
        return href
    p = Path(href).expanduser()
    return str(p if p.is_absolute() else base / p)


def _scene(rec: dict[str, Any], base: Path, where: str, output_dir: Path | None) -> Scene:
    rec = {k.strip(): v for k, v in rec.items() if k and v is not None and v != ""}
    missing = [k for k in ("lr", "guide") if k not in rec]
    if missing:
        raise OptionError(f"{where}: no {' or '.join(missing)}; every scene needs lr and guide")
    if "output" not in rec:
        if output_dir is None:
            raise OptionError(f"{where}: no output; give one or pass --output-dir")
        rec["output"] = str(output_dir / f"{rec.get('id') or Path(rec['lr']).stem}.tif")
    settings = {}
    for k, v in rec.items():
        if k in ("id", "lr", "guide", "output"):
            continue
        if k not in SCENE_KEYS:
            raise OptionError(
                f"{where}: unknown setting {k!r}; a scene may set id, lr, guide, output, "
                f"{', '.join(SCENE_KEYS)}"
            )
        try:
            settings[k] = _resolve(base, str(v)) if k == "network" else SCENE_KEYS[k](v)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{where}: bad value {v!r} for {k!r} ({exc})") from exc
    out = _resolve(base, str(rec["output"]))
    return Scene(
        id=str(rec.get("id") or Path(out).stem),
        lr=_resolve(base, str(rec["lr"])),
        guide=_resolve(base, str(rec["guide"])),
        output=out,
        settings=tuple(sorted(settings.items())),
        names=(str(rec["lr"]), str(rec["guide"])),
    )


def _stac_records(doc: dict[str, Any], base: Path, path: Path) -> list[tuple[dict, Path]]:
    out = []
    for i, item in enumerate(doc.get("features", [])):
        where = f"{path}: item {item.get('id', i)!r}"
        assets = item.get("assets", {})
        missing = [k for k in ("lr", "guide") if k not in assets]
        if missing:
            raise OptionError(f"{where} has no asset {' or '.join(missing)!r}; name the "
                              "inputs' assets 'lr' and 'guide'")
        props = item.get("properties", {})
        rec: dict[str, Any] = {"id": item.get("id"), "lr": assets["lr"]["href"],
                               "guide": assets["guide"]["href"]}
        if props.get("datetime"):
            rec["datetime"] = props["datetime"]
        elif props.get("start_datetime") and props.get("end_datetime"):
            rec["datetime"] = f"{props['start_datetime']}/{props['end_datetime']}"
        rec.update({k[len("geosr:"):]: v for k, v in props.items() if k.startswith("geosr:")})
        self_href = next((ln["href"] for ln in item.get("links", []) if ln.get("rel") == "self"),
                         None)
        item_base = Path(_resolve(base, self_href)).parent if self_href else base
        out.append((rec, item_base))
    return out


def read_manifest(
    path: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None
) -> list[Scene]:
    """Parse a CSV, JSON-lines or STAC ItemCollection manifest into scenes."""
    p = Path(path)
    if not p.is_file():
        raise OptionError(f"the manifest {str(p)!r} does not exist; check the path")
    base = p.resolve().parent
    odir = Path(output_dir).resolve() if output_dir else None
    text = p.read_text()
    records: list[tuple[dict[str, Any], Path, str]] = []
    suffix = p.suffix.lower()
    if suffix == ".csv":
        rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
        records = [(r, base, f"{p}: row {i + 2}") for i, r in enumerate(rows)]
    else:
        stripped = text.lstrip()
        doc = None
        if suffix in (".json", ".geojson") or stripped.startswith("{\n"):
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
        if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
            records = [(r, b, f"{p}: item {r.get('id')!r}") for r, b in _stac_records(doc, base, p)]
        else:
            for i, line in enumerate(text.splitlines()):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise OptionError(
                        f"{p}: line {i + 1} is not JSON ({exc}); a manifest is CSV (.csv), "
                        "JSON lines (.jsonl) or a STAC ItemCollection"
                    ) from exc
                records.append((rec, base, f"{p}: line {i + 1}"))
    scenes = [_scene(r, b, where, odir) for r, b, where in records]
    if not scenes:
        raise OptionError(f"the manifest {str(p)!r} lists no scene")
    for attr in ("id", "output"):
        seen: dict[str, int] = {}
        for s in scenes:
            seen[getattr(s, attr)] = seen.get(getattr(s, attr), 0) + 1
        dup = [k for k, n in seen.items() if n > 1]
        if dup:
            raise OptionError(f"{p}: scenes share the {attr} {dup[0]!r}; each needs its own")
    return scenes


# -- state ---------------------------------------------------------------------------------
def state_dir_for(manifest: str | os.PathLike[str]) -> Path:
    """Default state folder of a manifest: ``<stem>.geosr/`` next to it."""
    m = Path(manifest).resolve()
    return m.with_name(m.stem + ".geosr")


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(obj, indent=2, default=str))


def _status_path(state_dir: Path, scene_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in scene_id)
    return state_dir / STATUS_DIR / f"{safe}.json"


def read_status(state_dir: str | os.PathLike[str], scene_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(_status_path(Path(state_dir), scene_id).read_text())
    except (OSError, ValueError):
        return None


# -- one scene -----------------------------------------------------------------------------
def scene_config(scene: Scene, defaults: dict[str, Any]) -> RunConfig:
    """The run configuration of a scene: the batch's settings, overridden by the scene's
    own manifest columns, through the same :func:`~geosr.pipeline.config.run_config` as
    the CLI's flags. STAC items are on unless a scene or the batch says otherwise."""
    s = {**defaults, **dict(scene.settings)}
    if not s.get("scale"):
        raise OptionError(f"scene {scene.id!r} has no scale; pass --scale or set it per scene")
    method = s.get("method") or "mmsr"
    # ``--set METHOD.KEY=VALUE`` of the command line, for the scenes of that method
    options = {**(s.get("method_sets") or {}).get(method, {}), **(s.get("options") or {})}
    return run_config(
        scale=s["scale"], method=method, options=options,
        guide_resampling=s.get("resampling"),
        **{k: s.get(k) for k in SHARED_METHOD_SETTINGS},
        lr_band=s.get("lr_band"), guide_bands=s.get("guide_bands"), nodata=s.get("nodata"),
        mode=s.get("mode"), scene_iterations=s.get("scene_iterations"),
        scene_crop=s.get("scene_crop"), hybrid_iterations=s.get("hybrid_iterations"),
        network=s.get("network"), tile_size=s.get("tile_size"), overlap=s.get("overlap"),
        workers=s.get("workers"), cog=s.get("cog", True), overwrite=s.get("overwrite"),
        creation_options=s.get("creation_options"), keep_tiles=s.get("keep_tiles"),
        stac=s.get("stac", True), guard=_flag(s.get("guard", True)), budget=s.get("budget"),
        input_names=scene.names, datetime=s.get("datetime"),
    )


def _flag(value: Any) -> bool:
    """A manifest's on/off value (on, off, true, false, yes, no, 1, 0)."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("on", "true", "yes", "1"):
            return True
        if v in ("off", "false", "no", "0"):
            return False
        raise OptionError(f"expected on or off, got {value!r}")
    return bool(value)


def run_scene(
    scene: Scene,
    defaults: dict[str, Any],
    state_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    client: Any = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run one scene, recording its status; never raises for a failing scene."""
    state = Path(state_dir)
    status_file = _status_path(state, scene.id)
    t0 = time.perf_counter()
    base = {"id": scene.id, "output": scene.output, "lr": scene.lr, "guide": scene.guide}
    if resume:
        old = read_status(state, scene.id)
        if old and old.get("status") == "done" and Path(scene.output).is_file():
            return {**base, "status": "skipped", "seconds": 0.0, "error": None,
                    "stac": old.get("stac"), "previous_seconds": old.get("seconds")}
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    _write_json(status_file, {**base, "status": "running", "started": started})
    try:
        config = scene_config(scene, defaults)
        summary = run(
            scene.lr, scene.guide, scene.output, config, resume=resume, client=client,
            progress=progress.tiles if progress is not None else None,
            on_stage=progress.stage if progress is not None else None,
        )
        result = {**base, "status": "done", "error": None, "stac": summary.get("stac"),
                  "tiles": summary.get("tiles")}
    except Exception as exc:  # recorded; the batch goes on
        logger.debug("scene %s failed", scene.id, exc_info=True)
        msg = str(exc) if isinstance(exc, GeosrError) else f"{type(exc).__name__}: {exc}"
        result = {**base, "status": "failed", "error": msg}
    result["seconds"] = round(time.perf_counter() - t0, 3)
    _write_json(status_file, {**result, "started": started,
                              "finished": dt.datetime.now(dt.timezone.utc).isoformat()})
    return result


def _scene_in_child(scene: Scene, defaults: dict[str, Any], state_dir: str, resume: bool,
                    log_level: int) -> dict[str, Any]:
    """Entry point of a spawned scene process."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("geosr").setLevel(log_level)
    return run_scene(scene, defaults, state_dir, resume=resume)


# -- the batch -----------------------------------------------------------------------------
def run_batch(
    scenes: Sequence[Scene],
    defaults: dict[str, Any],
    *,
    state_dir: str | os.PathLike[str],
    jobs: int = 1,
    resume: bool = False,
    client: Any = None,
    report_path: str | os.PathLike[str] | None = None,
    on_scene: Callable[[dict[str, Any], int, int], None] | None = None,
    progress_factory: Callable[[Scene, int], Any] | None = None,
    manifest: str | None = None,
    collection_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run every scene (``jobs`` at once); write and return the report.

    The STAC items of the finished scenes go into a STAC Collection (:func:`collection`)
    at ``collection_path`` (default ``collection.json`` in the folder the items share).

    ``on_scene(result, finished, total)`` is called as each scene ends (and with
    ``status="running"`` as it starts when running in this process); ``progress_factory
    (scene, index)`` gives per-scene tile/stage callbacks for scenes run in this process.
    """
    if jobs < 1:
        raise OptionError(f"--jobs must be >= 1, got {jobs}")
    state = Path(state_dir).resolve()
    (state / STATUS_DIR).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    total = len(scenes)
    results: dict[str, dict[str, Any]] = {}

    def finished(res: dict[str, Any]) -> None:
        results[res["id"]] = res
        if on_scene is not None:
            on_scene(res, len(results), total)

    def in_process(i: int, sc: Scene) -> dict[str, Any]:
        if on_scene is not None:
            on_scene({"id": sc.id, "status": "running", "output": sc.output}, len(results),
                     total)
        prog = progress_factory(sc, i) if progress_factory is not None else None
        return run_scene(sc, defaults, state, resume=resume, client=client, progress=prog)

    if jobs == 1:
        for i, sc in enumerate(scenes):
            finished(in_process(i, sc))
    elif client is not None:  # tiles go to the cluster; scenes in threads
        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = [pool.submit(in_process, i, sc) for i, sc in enumerate(scenes)]
            for f in cf.as_completed(futs):
                finished(f.result())
    else:
        _run_in_processes(scenes, defaults, str(state), resume, jobs, finished)
    seconds = time.perf_counter() - t0
    ordered = [results[s.id] for s in scenes]
    counts = {"total": total}
    for st in ("done", "failed", "skipped"):
        counts[st] = sum(r["status"] == st for r in ordered)
    report = {
        "manifest": manifest,
        "started": started,
        "seconds": round(seconds, 3),
        "jobs": jobs,
        "counts": counts,
        "scenes_per_hour": round(counts["done"] / max(seconds, 1e-9) * 3600, 1),
        "scenes": ordered,
        "collection": collection(ordered, collection_path, manifest or str(state)),
    }
    _write_json(Path(report_path) if report_path else state / REPORT, report)
    return report


def collection(results: Sequence[dict[str, Any]], path: str | os.PathLike[str] | None,
               name: str) -> str | None:
    """Write the STAC Collection of the scenes' items (done or skipped scenes whose item
    exists) at ``path``, or ``collection.json`` in the folder the items share; its id is
    the stem of ``name`` (the manifest). Returns its path; None without items."""
    items = [Path(r["stac"]) for r in results
             if r.get("status") in ("done", "skipped") and r.get("stac")
             and Path(r["stac"]).is_file()]
    if not items:
        return None
    target = (Path(path) if path is not None else
              Path(os.path.commonpath([str(p.resolve().parent) for p in items]))
              / "collection.json")
    cid = Path(name).stem.removesuffix(".geosr") or "geosr"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(write_collection(items, target, collection_id=cid))
    except (OSError, ValueError) as exc:  # the scenes' outputs stand; say what failed
        logger.warning("could not write the STAC collection %s: %s", target, exc)
        return None


def _run_in_processes(scenes: Sequence[Scene], defaults: dict[str, Any], state: str,
                      resume: bool, jobs: int,
                      finished: Callable[[dict[str, Any]], None]) -> None:
    """At most ``jobs`` scenes at once in spawned processes; a dead process fails only the
    scenes it was running (the pool is rebuilt for the rest)."""
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    level = logging.getLogger("geosr").getEffectiveLevel()
    queue = list(scenes)
    ctx = mp.get_context("spawn")
    while queue:
        with cf.ProcessPoolExecutor(max_workers=min(jobs, len(queue)), mp_context=ctx) as pool:
            running: dict[cf.Future, Scene] = {}
            broken = False
            while (queue or running) and not broken:
                while queue and len(running) < jobs:
                    sc = queue.pop(0)
                    running[pool.submit(_scene_in_child, sc, defaults, state, resume,
                                        level)] = sc
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    sc = running.pop(f)
                    try:
                        finished(f.result())
                    except BrokenProcessPool:
                        broken = True
                        finished(_died(sc, state))
            for f, sc in running.items():  # in flight when the pool broke
                try:
                    finished(f.result())
                except BrokenProcessPool:
                    finished(_died(sc, state))


def _died(sc: Scene, state: str) -> dict[str, Any]:
    res = {"id": sc.id, "output": sc.output, "lr": sc.lr, "guide": sc.guide,
           "status": "failed", "seconds": None,
           "error": "the process running this scene died (a crash or out of memory); "
                    "rerun with --resume"}
    _write_json(_status_path(Path(state), sc.id), res)
    return res
