"""The ``residual`` option of MMSR and RobSelf: the network corrects bicubic upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geosr import get_method
from geosr.models.optimize import seeded


def bicubic_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """PyTorch's bicubic, which the networks add in (``geosr.models.classical`` computes
    the same in numpy, equal to float32 rounding)."""
    t = torch.nn.functional.interpolate(torch.from_numpy(lr)[None], scale_factor=scale,
                                        mode="bicubic", align_corners=False)
    return t[0].numpy()


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((1, 10, 12), dtype=np.float32), rng.random((3, 40, 48), dtype=np.float32)


def _forward(method: str, residual: bool) -> np.ndarray:
    lr, g = _inputs()
    with seeded(3):
        net = get_method(method, residual=residual, width=8, preset="dem").build_model(3, 4)
    with torch.no_grad():
        out = net(torch.from_numpy(lr)[None], torch.from_numpy(g)[None])
    out = out[0] if isinstance(out, tuple) else out
    return out[0].numpy()


def test_mmsr_residual__starts_exactly_at_bicubic() -> None:
    lr, _ = _inputs()
    np.testing.assert_array_equal(_forward("mmsr", True), bicubic_upsample(lr, 4))
    assert np.abs(_forward("mmsr", False) - bicubic_upsample(lr, 4)).max() > 0.1


@pytest.mark.parametrize("method", ["robself-re", "robself-de"])
def test_robself_residual__adds_bicubic_to_the_prediction(method: str) -> None:
    lr, _ = _inputs()
    diff = _forward(method, True) - _forward(method, False)
    np.testing.assert_allclose(diff, bicubic_upsample(lr, 4), atol=1e-5)


def test_residual__is_an_option_that_defaults_off() -> None:
    assert get_method("mmsr").options.residual is False
    assert get_method("robself-re", residual=True).options.residual is True
