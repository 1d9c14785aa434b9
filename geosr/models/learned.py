"""Common plumbing of the online-learned methods (MMSR, RobSelf, ...).

A learned method only says how to build its network; options that drive the shared
loop (``geosr.models.optimize``) are declared once here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from geosr.errors import OptionError
from geosr.models.backproject import back_project
from geosr.models.base import Method, MethodOptions
from geosr.models.settings import LoopOptions, OptimConfig


@dataclasses.dataclass(frozen=True)
class LearnedOptions(LoopOptions, MethodOptions):
    """Options of every learned method: the loop's (:class:`LoopOptions`, declared once
    there) and the two that act around the fit."""

    #: fits that start from fitted weights ramp the rate up over 5 steps: hybrid mode's
    #: per-tile fits and --network with --scene-iterations
    #: (docs/benchmarks/modes.md#reusing-a-network-on-another-scene). Fits from scratch
    #: never ramp. 0 = none
    warmup: int = 5
    #: iterations of back-projection of the output onto the LR
    #: (:func:`geosr.models.backproject.back_project`: the output then average-pools back
    #: to the LR); 0 = the papers' output. Short fits gain most
    #: (docs/benchmarks/modes.md#short-fits-back-projected); the pipeline's
    #: --back-project does the same per tile
    back_project: int = 0
    #: steps of a pre-fit on the input's own coarser copy (the LR pooled by the scale,
    #: the guide pooled to the LR grid, the LR as the answer:
    #: :func:`geosr.models.optimize.prefit`) before the cycle-loss fit; each costs
    #: ~1/scale² of a fit step. Fits that start from given weights (hybrid mode,
    #: --network) skip it. 0 = none (the papers)
    prefit: int = 0
    #: remove the LR's least-squares plane before normalising and add it back to the
    #: output (:class:`geosr.normalize.Plane`), so that the network and the statistics see
    #: the relief about the regional slope: for a DEM/DSM of sloping terrain. On the
    #: default command's fit at x4 it lowered RMSE by 3 % on a DSM whose plane explains
    #: half the variance, and raised it on a vegetation-height raster (heights above
    #: ground have no trend): docs/benchmarks/quality.md#levers-on-the-default-fit
    detrend: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.back_project < 0:
            raise OptionError(f"back_project must be >= 0 iterations, got {self.back_project}")
        if self.prefit < 0:
            raise OptionError(f"prefit must be >= 0 steps, got {self.prefit}")

    def optim_config(self) -> OptimConfig:
        return OptimConfig.of(self)


class LearnedMethod(Method):
    deterministic = False
    Options = LearnedOptions
    #: whether one network may be fitted on a whole scene and applied to every tile
    #: (``--mode scene|hybrid``), and whether ``average_tail`` applies: true for models
    #: trained on the full-image cycle loss
    scene_modes: bool = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for option in ("average_tail", "prefit"):
            if getattr(self.options, option) and not self.scene_modes:

                raise OptionError(
                    f"bad option for method {self.name!r}: {option} needs a method trained "
                    "on whole images; this one trains on samples of one image: leave "
                    f"{option} at 0")

    def build_model(self, guide_channels: int, scale: int) -> Any:
        raise NotImplementedError

    def optim_overrides(self) -> dict[str, Any]:
        """Loop settings that differ from the MMSR/RobSelf defaults (e.g. no lr decay)."""
        return {}

    def optim_config(self, *, from_weights: bool = False, **changes: Any) -> Any:
        """The loop's settings for a fit from scratch, or with ``from_weights`` for one that
        starts from fitted weights: only those ramp the rate up (``warmup``)."""
        if not from_weights:
            changes = {"warmup": 0, **changes}
        return dataclasses.replace(
            self.options.optim_config(), **{**self.optim_overrides(), **changes}
        )

    def fit(self, lr, guide, scale, mask, *, progress=None, snapshot_steps=(), init_state=None):
        """Run the shared loop; returns :class:`geosr.models.optimize.FitResult`.

        ``init_state``: weights to start from (bytes of :meth:`fit_scene`) instead of a
        fresh initialisation (the ``hybrid`` mode's per-tile fits). Otherwise, with the
        ``prefit`` option, the weights come from a pre-fit on the input's coarser copy.
        """
        from geosr.models.optimize import fit, prefit, seeded

        with seeded(self.options.seed):
            model = self.build_model(guide.shape[0], scale)
            prefitted = 0
            if init_state is not None:
                model.load_state_dict(load_state(init_state))
            elif self.options.prefit:
                prefitted, _ = prefit(model, lr, guide, scale, mask, self.optim_config(),
                                      self.options.prefit)
            cfg = self.optim_config(from_weights=init_state is not None or prefitted > 0)
            res = fit(
                model, lr, guide, scale, mask, cfg, progress=progress,
                snapshot_steps=snapshot_steps,
            )
        if self.options.back_project:

            def bp(pred: np.ndarray) -> np.ndarray:
                return back_project(pred, lr, mask, scale, self.options.back_project)

            res = dataclasses.replace(res, prediction=bp(res.prediction),
                                      snapshots={k: bp(v) for k, v in res.snapshots.items()})
        return res

    def fit_scene(self, draw, guide_channels: int, scale: int, *, iterations=None,
                  progress=None, init_state=None) -> tuple[bytes, dict[str, Any]]:
        """Fit one network on samples ``draw(step) -> (lr, guide, mask)`` (random crops of a
        scene), from ``init_state`` (weights as bytes) when given; returns its weights as
        bytes and a summary (steps, loss, seconds)."""
        from geosr.models.optimize import fit_samples, seeded

        changes = {} if iterations is None else {"iterations": int(iterations)}
        cfg = self.optim_config(from_weights=init_state is not None, **changes)
        with seeded(cfg.seed):
            model = self.build_model(guide_channels, scale)
            if init_state is not None:
                model.load_state_dict(load_state(init_state))
            steps, loss, seconds = fit_samples(model, draw, scale, cfg, progress=progress)
        return dump_state(model), {"steps": steps, "loss": loss, "seconds": round(seconds, 3)}

    def predict_from(self, state: bytes, lr, guide, scale: int) -> np.ndarray:
        """Apply a fitted network (bytes of :meth:`fit_scene`) to one input, no fitting."""
        from geosr.models.optimize import infer

        model = self.build_model(guide.shape[0], scale)
        model.load_state_dict(load_state(state))
        return infer(model, lr, guide, self.optim_config()).astype(np.float32)

    def run(self, lr, guide, scale, mask, *, progress):  # type: ignore[override]
        return self.fit(lr, guide, scale, mask, progress=progress).prediction.astype(np.float32)


def dump_state(model: Any) -> bytes:
    """A model's weights as bytes (CPU tensors): picklable, hashable, device-free."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def load_state(state: bytes) -> dict[str, Any]:
    import io

    import torch

    return torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
