"""Machine-readable progress: NDJSON events (one JSON object per line) on a text stream.

``geosr dem-sr ... --progress json`` writes these on stderr (stdout stays free for
``--json`` / ``--dry-run``); GUIs such as the QGIS Processing script turn them into a
progress bar. Every event has ``"event"`` and ``"percent"`` (0..100, never decreasing
within one run)::

    {"event": "stage", "stage": "stats", "percent": 2.0}
    {"event": "scene", "step": 10, "total": 500, "loss": 0.081, "percent": 3.04}  (--mode scene)
    {"event": "tiles", "done": 3, "total": 9, "percent": 31.0}
    {"event": "stage", "stage": "mosaic", "percent": 90.0}
    {"event": "done", "output": "out.tif", "percent": 100.0}
    {"event": "error", "message": "the LR file ... does not exist; check the path",
     "exit_code": 2, "percent": ...}

``geosr batch`` adds ``scene`` events (``id``, ``status``, ``index``, ``scenes``).
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

#: where each stage of one run starts, in percent; tiles fill the span up to the mosaic
STAGE_PERCENT = {"stats": 2.0, "scene": 3.0, "tiles": 5.0, "mosaic": 90.0, "cog": 95.0}


class JsonProgress:
    """Write NDJSON progress events for one run (or one scene of ``span`` of a batch)."""

    def __init__(self, stream: IO[str], *, span: tuple[float, float] = (0.0, 100.0),
                 extra: dict[str, Any] | None = None) -> None:
        self.stream = stream
        self.span = span
        self.extra = dict(extra or {})
        self.percent = span[0]
        self._lock = threading.Lock()

    def _scaled(self, pct: float) -> float:
        lo, hi = self.span
        return lo + (hi - lo) * pct / 100.0

    def emit(self, event: str, pct: float | None = None, **fields: Any) -> None:
        with self._lock:
            if pct is not None:
                self.percent = max(self.percent, round(self._scaled(pct), 2))
            rec = {"event": event, **self.extra, **fields, "percent": self.percent}
            # one write per line: lines of concurrent writers stay whole
            self.stream.write(json.dumps(rec, default=str) + "\n")
            self.stream.flush()

    # callbacks for geosr.pipeline.run
    def stage(self, name: str) -> None:
        self.emit("stage", STAGE_PERCENT.get(name), stage=name)

    def tiles(self, done: int, total: int) -> None:
        lo, hi = STAGE_PERCENT["tiles"], STAGE_PERCENT["mosaic"]
        self.emit("tiles", lo + (hi - lo) * done / max(total, 1), done=done, total=total)

    def scene(self, step: int, total: int, loss: float) -> None:
        """Steps of the scene network's fit (``--mode scene|hybrid``)."""
        if step % 10 and step != total:  # every 10th step is enough for a GUI
            return
        lo, hi = STAGE_PERCENT["scene"], STAGE_PERCENT["tiles"]
        self.emit("scene", lo + (hi - lo) * step / max(total, 1), step=step, total=total,
                  loss=round(loss, 6))

    def done(self, **fields: Any) -> None:
        self.emit("done", 100.0, **fields)

    def error(self, message: str, exit_code: int) -> None:
        self.emit("error", None, message=message, exit_code=exit_code)
