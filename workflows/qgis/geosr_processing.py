"""QGIS Processing script: guided super-resolution of a DEM/DSM or a thermal band with geosr.

Install: Processing Toolbox > Scripts > Add Script to Toolbox... and pick this file (or copy
it into the ``processing/scripts`` folder of your QGIS profile). The algorithm runs the
``geosr`` command line (``geosr dem-sr`` / ``geosr thermal-sr``) in a child process, so
geosr and torch live in their own Python environment; QGIS finds the executable in
``$GEOSR_EXECUTABLE``, the setting ``geosr/executable`` (QgsSettings), or on the ``PATH``.

The CLI's ``--progress json`` events (NDJSON on stderr) drive the progress bar; Cancel kills
the process (its tile store stays next to the output, so rerunning the same job reuses the
finished tiles); a failure raises ``QgsProcessingException`` with geosr's message.

``build_argv`` and ``ProgressParser`` are plain Python (tested without QGIS).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

KINDS = (("dem-sr", "DEM / DSM (RGB orthophoto guide)"),
         ("thermal-sr", "Thermal band (RGB guide)"))
METHODS = ("mmsr", "robself-re", "robself-de", "guided-filter", "bicubic")
DEVICES = ("auto", "cpu", "cuda")
MODES = ("tile", "scene", "hybrid")


def build_argv(
    executable: str,
    *,
    kind: str,
    lr: str,
    guide: str,
    output: str,
    scale: int,
    method: str = "mmsr",
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    iterations: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    method_options: dict[str, Any] | None = None,
    mode: str = "tile",
    network: str | None = None,
    save_network: str | None = None,
) -> list[str]:
    """The ``geosr`` command line for one run (program first). ``mode``, ``network`` and
    ``save_network`` are ``--mode``, ``--network`` and ``--save-network`` (learned methods:
    one network for the scene, started from or kept in a network file)."""
    if kind not in {k for k, _ in KINDS}:
        raise ValueError(f"kind must be one of {[k for k, _ in KINDS]}, got {kind!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    argv = [executable, kind, "--lr", lr, "--guide", guide, "--scale", str(int(scale)),
            "--method", method, "-o", output, "--overwrite", "--progress", "json", "-q"]
    if lr_band:
        argv += ["--lr-band", str(int(lr_band))]
    if guide_bands:
        argv += ["--guide-bands", ",".join(str(int(b)) for b in guide_bands)]
    if iterations:
        argv += ["--iterations", str(int(iterations))]
    if device and device != "auto":
        argv += ["--device", device]
    if seed is not None:
        argv += ["--seed", str(int(seed))]
    for key, value in (method_options or {}).items():
        argv += ["-O", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    if mode != "tile":
        argv += ["--mode", mode]
    if network:
        argv += ["--network", network]
    if save_network:
        argv += ["--save-network", save_network]
    return argv


class ProgressParser:
    """Turn the CLI's stderr (NDJSON progress events mixed with log lines, arriving in
    arbitrary chunks) into a percentage and, on failure, an error message."""

    def __init__(self) -> None:
        self._buf = ""
        self.percent = 0.0
        self.error: str | None = None
        self.done = False
        self.log: list[str] = []  # non-JSON lines (warnings, tracebacks), last 50

    def feed(self, chunk: bytes | str) -> list[dict[str, Any]]:
        """Consume a chunk of stderr; return the complete events it finished."""
        if isinstance(chunk, bytes):
            chunk = chunk.decode("utf-8", errors="replace")
        self._buf += chunk
        *lines, self._buf = self._buf.split("\n")
        return [ev for ev in (self.line(ln) for ln in lines) if ev is not None]

    def line(self, text: str) -> dict[str, Any] | None:
        text = text.strip()
        if not text:
            return None
        ev = None
        if text.startswith("{"):
            try:
                ev = json.loads(text)
            except ValueError:
                ev = None
        if not isinstance(ev, dict) or "event" not in ev:
            self.log = (self.log + [text])[-50:]
            return None
        if isinstance(ev.get("percent"), (int, float)):
            self.percent = max(self.percent, float(ev["percent"]))
        if ev["event"] == "error":
            self.error = str(ev.get("message", "geosr failed"))
        elif ev["event"] == "done":
            self.done = True
        return ev

    def failure_message(self, exit_code: int) -> str:
        """What to tell the user when the process exited with ``exit_code`` != 0."""
        self.feed("\n")
        if self.error:
            return self.error
        tail = [ln for ln in self.log if not ln.startswith(("Usage:", "Try "))][-5:]
        return f"geosr exited with status {exit_code}" + (": " + " ".join(tail) if tail else "")


def geosr_executable() -> str | None:
    """``$GEOSR_EXECUTABLE``, QgsSettings ``geosr/executable`` or ``geosr`` on the PATH."""
    exe = os.environ.get("GEOSR_EXECUTABLE")
    if not exe:
        try:
            from qgis.core import QgsSettings

            exe = QgsSettings().value("geosr/executable", "") or None
        except ImportError:
            exe = None
    return exe or shutil.which("geosr")


try:
    from qgis.core import (
        QgsBlockingProcess,
        QgsProcessingAlgorithm,
        QgsProcessingException,
        QgsProcessingParameterBand,
        QgsProcessingParameterDefinition,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFile,
        QgsProcessingParameterFileDestination,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterDestination,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QProcess

    HAVE_QGIS = True
except ImportError:  # plain Python: only the functions above
    HAVE_QGIS = False


if HAVE_QGIS:

    class GeosrSuperResolution(QgsProcessingAlgorithm):
        """Guided super-resolution of a DEM/DSM or thermal raster with an RGB guide."""

        KIND, LR, LR_BAND, GUIDE, SCALE, METHOD = "KIND", "LR", "LR_BAND", "GUIDE", "SCALE", "METHOD"
        ITERATIONS, DEVICE, SEED, OUTPUT = "ITERATIONS", "DEVICE", "SEED", "OUTPUT"
        MODE, NETWORK, SAVE_NETWORK = "MODE", "NETWORK", "SAVE_NETWORK"

        def name(self) -> str:
            return "geosr_superresolution"

        def displayName(self) -> str:
            return "Guided super-resolution (DEM / thermal)"

        def group(self) -> str:
            return "geosr"

        def groupId(self) -> str:
            return "geosr"

        def shortHelpString(self) -> str:
            return (
                "Super-resolves a low-resolution DEM/DSM or thermal raster by an integer "
                "scale, guided by a high-resolution RGB image (any CRS; the output is on "
                "the LR grid refined by the scale, in the LR CRS). Runs the geosr command "
                "line; learned methods (mmsr, robself-*) fit a small network per tile and "
                "are slow on a CPU: try guided-filter first."
            )

        def createInstance(self) -> GeosrSuperResolution:
            return GeosrSuperResolution()

        def initAlgorithm(self, config: Any = None) -> None:
            self.addParameter(QgsProcessingParameterEnum(
                self.KIND, "Raster kind", options=[label for _, label in KINDS], defaultValue=0))
            self.addParameter(QgsProcessingParameterRasterLayer(
                self.LR, "Low-resolution raster (DEM/DSM or thermal)"))
            self.addParameter(QgsProcessingParameterBand(
                self.LR_BAND, "LR band", parentLayerParameterName=self.LR, optional=True))
            self.addParameter(QgsProcessingParameterRasterLayer(
                self.GUIDE, "High-resolution guide (RGB)"))
            self.addParameter(QgsProcessingParameterNumber(
                self.SCALE, "Scale (integer factor)", QgsProcessingParameterNumber.Integer,
                defaultValue=4, minValue=2, maxValue=16))
            self.addParameter(QgsProcessingParameterEnum(
                self.METHOD, "Method", options=list(METHODS), defaultValue=0))
            advanced = [
                QgsProcessingParameterNumber(
                    self.ITERATIONS, "Iterations per tile (learned methods; 0 = default)",
                    QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0),
                QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES),
                                           defaultValue=0),
                QgsProcessingParameterNumber(
                    self.SEED, "Random seed (learned methods)",
                    QgsProcessingParameterNumber.Integer, defaultValue=0),
                QgsProcessingParameterEnum(
                    self.MODE, "Mode (learned methods): a network per tile, one for the "
                    "scene, or one fine-tuned per tile", options=list(MODES), defaultValue=0),
                QgsProcessingParameterFile(
                    self.NETWORK, "Start from a network file (scene/hybrid mode)",
                    extension="pt", optional=True),
                QgsProcessingParameterFileDestination(
                    self.SAVE_NETWORK, "Save the scene network to (scene/hybrid mode)",
                    fileFilter="geosr network (*.pt)", optional=True,
                    createByDefault=False),
            ]
            for p in advanced:
                p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
                self.addParameter(p)
            self.addParameter(QgsProcessingParameterRasterDestination(
                self.OUTPUT, "Super-resolved raster"))

        def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict:
            exe = geosr_executable()
            if not exe:
                raise QgsProcessingException(
                    "the geosr command was not found: install geosr (pip install geosr) and "
                    "set GEOSR_EXECUTABLE or the QGIS setting geosr/executable to its path")
            lr = self.parameterAsRasterLayer(parameters, self.LR, context)
            guide = self.parameterAsRasterLayer(parameters, self.GUIDE, context)
            output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
            band = self.parameterAsInt(parameters, self.LR_BAND, context)
            argv = build_argv(
                exe,
                kind=KINDS[self.parameterAsEnum(parameters, self.KIND, context)][0],
                lr=lr.source(),
                guide=guide.source(),
                output=output,
                scale=self.parameterAsInt(parameters, self.SCALE, context),
                method=METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
                lr_band=band if band > 0 and lr.bandCount() > 1 else None,
                iterations=self.parameterAsInt(parameters, self.ITERATIONS, context) or None,
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                seed=self.parameterAsInt(parameters, self.SEED, context),
                mode=MODES[self.parameterAsEnum(parameters, self.MODE, context)],
                network=self.parameterAsFile(parameters, self.NETWORK, context) or None,
                save_network=self.parameterAsFileOutput(
                    parameters, self.SAVE_NETWORK, context) or None,
            )
            feedback.pushCommandInfo(" ".join(argv))
            parser = ProgressParser()

            def on_stderr(data: Any) -> None:
                for ev in parser.feed(bytes(data)):
                    if ev["event"] == "stage":
                        feedback.setProgressText(f"geosr: {ev.get('stage')}")
                feedback.setProgress(parser.percent)

            def on_stdout(data: Any) -> None:
                pass

            # the handlers must outlive run(): sip does not keep a reference to them
            proc = QgsBlockingProcess(argv[0], argv[1:])
            proc.setStdErrHandler(on_stderr)
            proc.setStdOutHandler(on_stdout)
            code = proc.run(feedback)
            if feedback.isCanceled():
                feedback.reportError("cancelled: geosr was stopped", False)
                return {}
            if proc.exitStatus() == QProcess.CrashExit or code != 0:
                raise QgsProcessingException(parser.failure_message(code))
            feedback.setProgress(100)
            return {self.OUTPUT: output}
