"""Settings of the optimisation loop, declared once (no torch here).

:class:`LoopOptions` are the loop settings a user sets as method options (``geosr
methods``, ``-O iterations=500``); every learned method's options embed them
(:class:`geosr.models.learned.LearnedOptions` derives from it). :class:`OptimConfig` is
what the loop (:mod:`geosr.models.optimize`) runs with: those options plus the schedule
and loss constants that a method may change (:meth:`LearnedMethod.optim_overrides`) but a
user does not.
"""

from __future__ import annotations

import dataclasses

from geosr.errors import OptionError


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """The loop settings that are method options."""

    iterations: int = 1000
    lr: float = 2e-3
    seed: int | None = 0
    device: str = "auto"
    #: stop when the loss has not improved by ``early_stop_tol`` (relative) for this many steps
    early_stop: int | None = None
    #: bf16 autocast: "auto" = on CUDA and on CPUs that compute bf16 natively
    #: (AVX512-BF16 or AMX: :func:`geosr.models.optimize.cpu_has_bf16`); "on"/"off" force
    #: it. On such a CPU it halves the memory of a step and makes it ~1.4x faster at the
    #: same RMSE (docs/benchmarks/speed-and-memory.md#bf16-on-the-cpu); elsewhere the CPU
    #: would emulate it, slowly
    bf16: str = "auto"
    #: run the training steps through ``torch.compile`` (inductor); needs a C++ compiler on
    #: CPU. The first steps pay the compilation (tens of seconds).
    compile: bool = False
    #: on CPU, hand the heap pages freed by each step back to the system (glibc
    #: ``malloc_trim``, :mod:`geosr.memory`) after the forward pass and after the update.
    #: glibc keeps them otherwise, and their holes make a long run's resident peak creep
    #: far above what a step needs; no effect on results
    trim_memory: bool = True
    #: return the mean of the predictions of the last ``average_tail`` fraction of the
    #: steps (and the final one) instead of the last step's alone. The papers' schedule
    #: keeps the rate near 2e-3 to the end, so the last steps oscillate and a single one can
    #: be far from its neighbours; the training passes already compute these predictions,
    #: so averaging them costs one HR accumulator. 0 = the papers' last-step output.
    #: In :func:`~geosr.models.optimize.fit_samples` (scene mode), which draws a new sample
    #: each step and has no prediction of one image to average, the *weights* of those
    #: steps are averaged instead (the network applied to the tiles is their mean)
    average_tail: float = 0.0
    #: "step": the papers' ×lr_decay every decay_every steps (near-constant over 1000
    #: steps); "cosine": half a cosine from lr down to 0 at the last step
    lr_schedule: str = "step"
    #: ramp the learning rate up linearly over the first ``warmup`` steps (0: none). Meant
    #: for fits that start from fitted weights (``--network``, hybrid mode): Adam's first
    #: steps move every weight by about ``lr`` whatever its gradient's size, which can undo
    #: much of a fitted network before the fit improves it
    warmup: int = 0
    #: add this weight times the cycle loss in the gradient domain (the L1 between the
    #: row and column differences of the pooled prediction and of the LR;
    #: :func:`geosr.models.optimize.masked_slope_loss`) to the loss. 0: the papers' loss.
    #: Weight 1 was worse on both real DSMs at x4
    #: (docs/benchmarks/quality.md#levers-on-the-default-fit)
    slope_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("step", "cosine"):
            raise OptionError(f"lr_schedule must be step or cosine, got {self.lr_schedule!r}")
        if self.warmup < 0:
            raise OptionError(f"warmup must be >= 0 steps, got {self.warmup}")
        if not 0.0 <= self.average_tail < 1.0:
            raise OptionError(
                f"average_tail must be a fraction in [0, 1), got {self.average_tail}")
        if self.slope_weight < 0:
            raise OptionError(f"slope_weight must be >= 0, got {self.slope_weight}")
        if self.iterations < 1:
            raise OptionError(f"iterations must be >= 1, got {self.iterations}")
        if not self.lr > 0:
            raise OptionError(f"lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise OptionError(f"device must be auto, cpu or cuda, got {self.device!r}")
        # a boolean spelling (-O bf16=true, yes, 1) forces it like "on"/"off"
        bf16 = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off",
                "0": "off"}.get(str(self.bf16).lower(), self.bf16)
        object.__setattr__(self, "bf16", bf16)
        if self.bf16 not in ("auto", "on", "off"):
            raise OptionError(f"bf16 must be auto, on or off, got {self.bf16!r}")
        if self.early_stop is not None and self.early_stop < 1:
            raise OptionError(f"early_stop must be >= 1 steps or None, got {self.early_stop}")

    def loop_options(self) -> LoopOptions:
        """Just the loop's options of this object (e.g. of a method's options)."""
        return LoopOptions(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(LoopOptions)})


@dataclasses.dataclass(frozen=True)
class OptimConfig(LoopOptions):
    """What the loop runs with: the loop options, and the papers' schedule and loss
    constants (Adam, x``lr_decay`` every ``decay_every`` steps, weight decay on the
    parameters a model lists, ``aux_weight`` on auxiliary predictions)."""

    lr_decay: float = 0.9998
    decay_every: int = 5
    weight_decay: float = 5e-4
    aux_weight: float = 1.0
    early_stop_tol: float = 1e-3

    @classmethod
    def of(cls, options: LoopOptions, **changes: object) -> OptimConfig:
        """The loop configuration of ``options`` (any object embedding the loop options),
        with ``changes`` (e.g. a method's schedule overrides)."""
        base = {f.name: getattr(options, f.name) for f in dataclasses.fields(LoopOptions)}
        return cls(**{**base, **changes})
