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
import time
from typing import IO, Any

#: where each stage of one run starts, in percent; tiles fill the span up to the mosaic
STAGE_PERCENT = {"stats": 1.0, "self-check": 2.0, "scene": 30.0, "tiles": 55.0,
                 "mosaic": 90.0, "cog": 95.0}
#: a fit reports at least this often (seconds), so that a GUI's bar keeps moving
FIT_EVENT_SECONDS = 1.0
#: with nothing else to say, an ``alive`` event goes out after this many seconds
HEARTBEAT_SECONDS = 1.5


class JsonProgress:
    """Write NDJSON progress events for one run (or one scene of ``span`` of a batch)."""

    def __init__(self, stream: IO[str], *, span: tuple[float, float] = (0.0, 100.0),
                 extra: dict[str, Any] | None = None) -> None:
        self.stream = stream
        self.span = span
        self.extra = dict(extra or {})
        self._last: dict[str, float] = {}
        self.percent = span[0]
        self._lock = threading.Lock()
        self._written = time.monotonic()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        """Emit ``alive`` events whenever nothing was written for :data:`HEARTBEAT_SECONDS`
        (a long step, a long read), until :meth:`done` or :meth:`error`."""
        if self._beat is not None:
            return

        def beat() -> None:
            while not self._stop.wait(0.25):
                if time.monotonic() - self._written >= HEARTBEAT_SECONDS:
                    self.emit("alive")

        self._beat = threading.Thread(target=beat, name="geosr-progress", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None

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
            self._written = time.monotonic()

    # callbacks for geosr.pipeline.run
    def stage(self, name: str) -> None:
        self.emit("stage", STAGE_PERCENT.get(name), stage=name)

    def tiles(self, done: int, total: int) -> None:
        lo, hi = STAGE_PERCENT["tiles"], STAGE_PERCENT["mosaic"]
        self.emit("tiles", lo + (hi - lo) * done / max(total, 1), done=done, total=total)

    def scene(self, step: int, total: int, loss: float) -> None:
        """Steps of the scene network's fit (``--mode scene|hybrid``)."""
        self._fit("scene", "tiles", step, total, loss)

    def check(self, step: int, total: int, loss: float) -> None:
        """Steps of the self-check's fits on the coarser copy."""
        self._fit("self-check", "scene", step, total, loss)

    def steps(self, step: int, total: int, loss: float) -> None:
        """Steps of the tiles' own fits (tile and hybrid modes), over all tiles."""
        self._fit("tiles", "mosaic", step, total, loss, event="steps")

    def _fit(self, stage: str, until: str, step: int, total: int, loss: float,
             event: str | None = None) -> None:
        now = time.monotonic()
        last = self._last.get(stage, 0.0)
        if step != total and step != 1 and now - last < FIT_EVENT_SECONDS:
            return
        self._last[stage] = now
        lo, hi = STAGE_PERCENT[stage], STAGE_PERCENT[until]
        self.emit(event or stage, lo + (hi - lo) * step / max(total, 1), step=step, total=total,
                  loss=round(float(loss), 6))
    def done(self, **fields: Any) -> None:
        self.stop_heartbeat()
        self.emit("done", 100.0, **fields)

    def error(self, message: str, exit_code: int) -> None:
        self.stop_heartbeat()
        self.emit("error", None, message=message, exit_code=exit_code)
