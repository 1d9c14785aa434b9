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
import math
import types
import typing
from typing import Any, ClassVar

import numpy as np

from geosr.errors import OptionError


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """Base class of every method's options; subclasses add typed fields."""

    def __post_init__(self) -> None:  # pragma: no cover - overridden where needed
        pass


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


def _type_name(tp: Any) -> str:
    return {bool: "a boolean (true/false, yes/no, on/off, 1/0)", int: "an integer",
            float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce_option(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the declared type ``hint`` (bool, int, float, str, or ``X | None``).

    Values come typed from Python callers, or as JSON literals or plain strings from
    ``-O key=value`` and batch manifests. Booleans take true/false, yes/no, on/off, 1/0;
    integers refuse fractions; ``X | None`` takes none/null. Anything else raises
    :class:`OptionError` naming the option and the type it takes."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return value
        hint = rest[0]
    if hint not in (bool, int, float, str):
        return value
    text = value.strip() if isinstance(value, str) else None
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if text is not None and text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if text is not None:
                return int(text)
        elif hint is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out = float(value)
            elif text is not None:
                out = float(text)
            else:
                out = math.nan
            if math.isfinite(out):
                return out
        elif isinstance(value, bool):
            return str(value).lower()
        elif isinstance(value, (str, int, float)):
            return str(value)
    except ValueError:
        pass
    shown = "none" if value is None else value
    raise OptionError(
        f"method option {name!r} takes {_type_name(hint)}"
        f"{' or none' if args and type(None) in args else ''}, got {shown!r}"
    )


def coerce_options(options_class: type[MethodOptions], options: dict[str, Any],
                   method: str) -> dict[str, Any]:
    """``options`` checked by name and converted to the types ``options_class`` declares."""
    fields = {f.name for f in dataclasses.fields(options_class)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise OptionError(
            f"unknown option(s) {unknown} for method {method!r}; "
            f"valid options are: {', '.join(sorted(fields)) or '(none)'}"
        )
    hints = typing.get_type_hints(options_class)
    return {k: coerce_option(k, v, hints.get(k, Any)) for k, v in options.items()}


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
        options = coerce_options(self.Options, options, self.name)
        try:
            self.options = self.Options(**options)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"bad option for method {self.name!r}: {exc}") from exc

    def halo(self, scale: int) -> int:
        """LR pixels of context a tile needs on each side for a seam-free mosaic."""
        return 2

    def resolved_options(self, scale: int) -> dict[str, Any]:
        """Every option as this method runs at ``scale``: the defaults filled in and the
        options left to a preset or to the scale (``None``) resolved (the provenance of
        an output). Subclasses with such options resolve them."""
        return dataclasses.asdict(self.options)

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
