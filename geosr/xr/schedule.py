"""Computing a dask result block row by block row in bounded memory."""

from __future__ import annotations

import functools
import re
from typing import Any

from geosr.memory import trim_heap
from geosr.xr.graph import constant

_STATS_READ = re.compile(r"^geosr-stats-(lr|guide)-[0-9a-f]+-([0-9]+)$")


def compute_by_rows(stored: Any, *, axis: int = -2, num_workers: int | None = None,
                    per_call: int | None = None) -> None:
    """Compute a ``dask.array.store(..., compute=False)`` result a few chunks at a time.

    Left to itself, dask's threaded scheduler runs the statistics' reads of a
    :func:`super_resolve_xr` graph on every thread at once (on a big scene each holds a
    large piece of the guide in memory), then computes the tiles in a centre-out order
    that keeps hundreds of finished tiles waiting for their other output blocks (1225
    tiles of a 16384^2 output: up to ~250 held). Here the work is cut into successive
    calls of the threaded scheduler (``num_workers`` threads): first the statistics'
    reads, one at a time, then the output chunks in row-major order (along ``axis``, the
    rows' axis of the stored array), ``per_call`` at a time (default: a row). What a later
    call also needs (the statistics, the tiles that straddle two calls) is kept and given
    to it; everything else is released (and the C heap trimmed). Memory is then that of a
    few tiles plus one row of tiles (~50 held in that example), whatever the raster's
    height. Any dask array store works; the statistics are recognised by their keys.
    """
    import dask
    import dask.threaded
    from dask.core import flatten, get_dependencies

    # not optimised: a super_resolve_xr graph is low-level already, and an optimised copy
    # of it would only take memory
    dsk = dict(stored.__dask_graph__())
    if hasattr(stored, "key"):  # a Delayed: the chunks' store tasks are its dependencies
        targets = list(get_dependencies(dsk, stored.key))
    else:  # an array of store tasks (dask >= 2025)
        targets = list(flatten(stored.__dask_keys__()))
    if not targets or not all(isinstance(k, tuple) and len(k) >= 3 and -len(k) < axis < len(k)
                              for k in targets):
        dask.compute(stored, scheduler="threads", num_workers=num_workers)
        return
    rows: dict[Any, list[Any]] = {}
    for k in sorted(targets, key=lambda k: k[1:]):
        rows.setdefault(k[axis if axis < 0 else axis + 1], []).append(k)
    stats = {}
    for k in dsk:
        m = _STATS_READ.match(k) if isinstance(k, str) else None
        if m:
            stats[k] = (m.group(1), int(m.group(2)))
    # one statistics read at a time: a read of a big scene's decimated guide holds an
    # in-memory GeoTIFF of a full-resolution piece of it (~50 MB for a 16384^2 output)
    groups = [[k] for k in sorted(stats, key=stats.__getitem__)]
    for r in sorted(rows):
        row = rows[r]
        size = per_call or len(row)
        groups.extend(row[i : i + size] for i in range(0, len(row), size))

    def dependencies(key: Any) -> set[Any]:
        return get_dependencies(dsk, key)  # not cached: the graph can be big

    # the last call that needs each key (a key computed by an earlier call is given to a
    # later one as a value: what it was computed from is not needed there)
    last_use: dict[Any, int] = {}
    computed: set[Any] = set()
    for i, group in enumerate(groups):
        stack = list(group)
        while stack:
            k = stack.pop()
            if last_use.get(k) == i:
                continue
            last_use[k] = i
            if k not in computed:
                computed.add(k)
                stack.extend(dependencies(k))
    kept: dict[Any, Any] = {}
    for i, group in enumerate(groups):
        sub: dict[Any, Any] = {}
        stack = list(group)
        while stack:
            k = stack.pop()
            if k in sub:
                continue
            if k in kept:  # computed by an earlier call: a constant here
                sub[k] = (functools.partial(constant, kept[k]),)
                continue
            sub[k] = dsk[k]
            stack.extend(dependencies(k))
        keep = [k for k in sub if last_use[k] > i and k not in kept]
        values = dask.threaded.get(sub, [*group, *keep], num_workers=num_workers)
        kept.update(zip(keep, values[len(group):], strict=True))
        kept = {k: v for k, v in kept.items() if last_use[k] > i}
        del sub, values  # nothing but ``kept`` holds results between calls
        trim_heap()
