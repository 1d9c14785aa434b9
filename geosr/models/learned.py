"""Common plumbing of the online-learned methods (MMSR, RobSelf, ...).

A learned method only says how to build its network; options that drive the shared
loop (``geosr.optimize``) are declared once here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .base import Method, MethodOptions


@dataclasses.dataclass(frozen=True)
class LearnedOptions(MethodOptions):
    iterations: int = 1000
    lr: float = 2e-3
    seed: int | None = 0
    device: str = "auto"
    early_stop: int | None = None
    bf16: str = "auto"

    def __post_init__(self) -> None:
        self.optim_config()  # validates

    def optim_config(self) -> Any:
        from ..optimize import OptimConfig

        return OptimConfig(
            iterations=self.iterations,
            lr=self.lr,
            seed=self.seed,
            device=self.device,
            early_stop=self.early_stop,
            bf16=self.bf16,
        )


class LearnedMethod(Method):
    deterministic = False
    Options = LearnedOptions

    def build_model(self, guide_channels: int, scale: int) -> Any:
        raise NotImplementedError

    def optim_overrides(self) -> dict[str, Any]:
        """Loop settings that differ from the MMSR/RobSelf defaults (e.g. no lr decay)."""
        return {}

    def fit(self, lr, guide, scale, mask, *, progress=None, snapshot_steps=()):
        """Run the shared loop; returns :class:`geosr.optimize.FitResult`."""
        from ..optimize import fit, seeded

        cfg = dataclasses.replace(self.options.optim_config(), **self.optim_overrides())
        with seeded(cfg.seed):
            model = self.build_model(guide.shape[0], scale)
            return fit(
                model, lr, guide, scale, mask, cfg, progress=progress,
                snapshot_steps=snapshot_steps,
            )

    def run(self, lr, guide, scale, mask, *, progress):  # type: ignore[override]
        return self.fit(lr, guide, scale, mask, progress=progress).prediction.astype(np.float32)
