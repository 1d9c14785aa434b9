"""The memory-efficient local filter against the naive unfold formulation (the oracle)."""

from __future__ import annotations

import pytest
import torch

from geosr.models.layers import local_attention, local_attention_unfold

#: the fused kernel's device paths: CUDA runs where a GPU is present (skipped, and said so,
#: on the CPU-only CI machine)
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device on this machine")),
]


@pytest.mark.parametrize(
    "size,shape,block,cv",
    [
        (3, (1, 4, 9, 9), 8, 4),
        (5, (2, 3, 17, 13), 8, 3),  # blocks do not divide the image
        (11, (1, 8, 20, 23), 8, 8),  # neighbourhood larger than a block
        (7, (1, 5, 6, 31), 4, 2),  # separate values with another channel count
        (1, (1, 3, 5, 7), 8, 3),
        (13, (1, 2, 5, 4), 8, 2),  # neighbourhood larger than the image
    ],
)
def test_local_attention__matches_unfold_oracle(size, shape, block, cv):
    g = torch.Generator().manual_seed(size * 100 + shape[-1])
    b, c, h, w = shape
    q = torch.randn(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(b, cv, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    gout = torch.randn(b, cv, h, w, generator=g, dtype=torch.float64)

    ref = local_attention_unfold(q, k, v, size)
    ref_grads = torch.autograd.grad(ref, (q, k, v), gout)
    out = local_attention(q, k, v, size, block=block)
    grads = torch.autograd.grad(out, (q, k, v), gout)

    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_local_attention__shared_key_value_float32(device):
    """MMSR passes the same tensor as key and value; float32 at the 1e-5 tolerance."""
    g = torch.Generator().manual_seed(7)
    q, kv, gout = (torch.randn(1, 16, 19, 21, generator=g).to(device) for _ in range(3))
    q.requires_grad_(True)
    kv.requires_grad_(True)
    ref = local_attention_unfold(q * 0.2, kv, kv, 5)
    out = local_attention(q * 0.2, kv, kv, 5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    for got, want in zip(
        torch.autograd.grad(out, (q, kv), gout), torch.autograd.grad(ref, (q, kv), gout),
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_local_attention__fused_kernel_under_autocast_uses_bf16_gemms(device):
    """Under bf16 autocast (the CUDA default, ``bf16=on`` on a CPU) the fused filter runs
    its GEMMs in bf16 and the rest in float32: the result and gradients come back in the
    input's dtype, differ from float32 by bf16 rounding only, and do differ (so bf16 was
    used)."""
    g = torch.Generator().manual_seed(3)
    q, kv, gout = (torch.randn(1, 8, 13, 17, generator=g).to(device) for _ in range(3))
    q.requires_grad_(True)
    kv.requires_grad_(True)
    ref = local_attention(q, kv, kv, 5)
    ref_grads = torch.autograd.grad(ref, (q, kv), gout)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = local_attention(q, kv, kv, 5)
    grads = torch.autograd.grad(out, (q, kv), gout)
    assert out.dtype == torch.float32
    assert all(gr.dtype == torch.float32 for gr in grads)
    for got, want in zip((out, *grads), (ref, *ref_grads), strict=True):
        rel = ((got - want).norm() / want.norm()).item()
        assert 0 < rel < 2e-2, rel  # bf16 keeps 8 bits of mantissa: ~0.4 % per operand


def test_local_attention__even_size_rejected():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="odd"):
        local_attention(x, x, x, 4)


@pytest.mark.parametrize(
    "size,shape,block",
    [
        (3, (1, 4, 9, 9), 8),
        (5, (2, 3, 17, 13), 8),
        (11, (1, 8, 20, 23), 8),
        (7, (1, 5, 6, 31), 4),
        (13, (1, 2, 5, 4), 8),
        (5, (1, 3, 70, 9), 2),  # many block rows: several chunks of the fused kernel
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_local_attention__fused_shared_kv_matches_oracle(size, shape, block, device, monkeypatch):
    from geosr.models import layers

    monkeypatch.setattr(layers, "_CHUNK_BLOCKS", 8)  # force several chunks
    monkeypatch.setattr(layers, "_CUDA_CHUNK_BLOCKS", 8)
    g = torch.Generator().manual_seed(size * 10 + shape[-2])
    q, kv, gout = (
        torch.randn(*shape, generator=g, dtype=torch.float64).to(device) for _ in range(3))
    q.requires_grad_(True)
    kv.requires_grad_(True)
    ref = local_attention_unfold(q, kv, kv, size)
    out = local_attention(q, kv, kv, size, block=block)
    torch.testing.assert_close(out, ref.float(), atol=1e-5, rtol=0, check_dtype=False)
    for got, want in zip(
        torch.autograd.grad(out, (q, kv), gout), torch.autograd.grad(ref, (q, kv), gout),
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, check_dtype=False)
    with torch.no_grad():  # inference keeps no attention weights, same output
        torch.testing.assert_close(local_attention(q, kv, kv, size, block=block), out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "size,narrow_size,shape,block",
    [
        (7, 5, (1, 4, 12, 14), 8),
        (7, 3, (2, 3, 17, 13), 4),  # blocks do not divide the image, batch of two
        (11, 5, (1, 5, 40, 9), 2),  # many block rows: several chunks
        (5, 5, (1, 2, 9, 9), 8),  # same size: the narrow pixels see every tap
    ],
)
def test_local_attention__narrow_pixels_equal_selecting_between_two_kernels(
    size, narrow_size, shape, block, device, monkeypatch
):
    """RobSelf's per-pixel kernel choice in one pass: forward and gradients equal running
    both kernels and selecting per pixel (the gradient of the unselected one is zero)."""
    from geosr.models import layers

    monkeypatch.setattr(layers, "_CHUNK_BLOCKS", 8)
    monkeypatch.setattr(layers, "_CUDA_CHUNK_BLOCKS", 8)
    g = torch.Generator().manual_seed(size + shape[-1])
    q, kv, gout = (
        torch.randn(*shape, generator=g, dtype=torch.float64).to(device) for _ in range(3))
    q.requires_grad_(True)
    kv.requires_grad_(True)
    narrow = (torch.rand(shape[0], 1, *shape[2:], generator=g) < 0.5).to(device)
    sel = narrow.to(torch.float64)
    ref = (sel * local_attention(q, kv, kv, narrow_size, block=block)
           + (1 - sel) * local_attention(q, kv, kv, size, block=block))
    out = local_attention(q, kv, kv, size, block=block, narrow=narrow, narrow_size=narrow_size)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0, check_dtype=False)  # float32 sums
    for got, want in zip(
        torch.autograd.grad(out, (q, kv), gout), torch.autograd.grad(ref, (q, kv), gout),
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, check_dtype=False)


def test_local_attention__narrow_needs_the_fused_kernel_and_a_smaller_odd_size():
    x = torch.zeros(1, 2, 6, 6)
    mask = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match="same tensor as k and v"):
        local_attention(x, x, x.clone(), 5, narrow=mask, narrow_size=3)
    with pytest.raises(ValueError, match="narrow_size must be odd and <= size"):
        local_attention(x, x, x, 5, narrow=mask, narrow_size=7)
    with pytest.raises(ValueError, match=r"narrow must be \(B, 1, H, W\)"):
        local_attention(x, x, x, 5, narrow=mask[..., :5], narrow_size=3)
