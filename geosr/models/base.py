"""The one interface every super-resolution method implements.

A method is built from keyword options (validated, unknown ones rejected) and
called on *normalised* arrays::

    method = get_method("mmsr", preset="dem", iterations=500)
    hr = method(lr, guide, scale, mask=valid)

``lr`` is ``(1, h, w)`` float32, ``guide`` is ``(C, scale*h, scale*w)`` float32,
``mask`` is an optional ``(1, h, w)`` bool array of valid LR pixels (invalid pixels
hold an arbitrary finite value and must not influence the result). The return
value is ``(1, scale*h, scale*w)`` float32. Georeferencing never enters a method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from geosr.errors import OptionError


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """Base class of every method's options; subclasses add typed fields."""

    def __post_init__(self) -> None:  # pragma: no cover - overridden where needed
        pass


def check_odd_sizes(options: object, *names: str) -> None:
    """Neighbourhood sizes (``None`` = preset) must be odd and >= 1."""
    for name in names:
        v = getattr(options, name)
        if v is not None and (v < 1 or v % 2 == 0):
            raise ValueError(f"{name} must be an odd size >= 1, got {v}")


class Method:
    """Base class: subclasses set ``name``, ``Options`` and implement ``run``."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    #: True when the result depends only on the inputs (no optimisation, no seed).
    deterministic: ClassVar[bool] = True
    #: True when the method takes normalised inputs (z-scored LR and guide, as the papers);
    #: False for resamplers that work on the LR's own values (NaN = nodata), so that their
    #: output is bit-identical to the resampler's
    normalised: ClassVar[bool] = True
    #: True for plain resamplers of the LR (bicubic, cubic, lanczos): the yardsticks
    resampler: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise OptionError(
                f"unknown option(s) {unknown} for method {self.name!r}; "
                f"valid options are: {', '.join(sorted(fields)) or '(none)'}"
            )
        try:
            self.options = self.Options(**options)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"bad option for method {self.name!r}: {exc}") from exc

    def halo(self, scale: int) -> int:
        """LR pixels of context a tile needs on each side for a seam-free mosaic."""
        return 2

    def __call__(
        self,
        lr: np.ndarray,
        guide: np.ndarray,
        scale: int,
        *,
        mask: np.ndarray | None = None,
        progress: Any = None,
    ) -> np.ndarray:
        lr = np.asarray(lr, dtype=np.float32)
        guide = np.asarray(guide, dtype=np.float32)
        if mask is None:
            mask = np.ones(lr.shape, dtype=bool)
        out = self.run(lr, guide, int(scale), np.asarray(mask, dtype=bool), progress=progress)
        return np.ascontiguousarray(out, dtype=np.float32)

    def run(
        self, lr: np.ndarray, guide: np.ndarray, scale: int, mask: np.ndarray, *, progress: Any
    ) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"
