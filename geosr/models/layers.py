"""Building blocks shared by the learned methods.

The key piece is :func:`local_attention`, the cross-domain adaptive filter of MMSR
(Dong et al., ECCV 2022, eq. 1-4) and of RobSelf's reference filter: for every pixel
``p``, weights are a softmax over a ``k x k`` neighbourhood ``N(p)`` of
``<query(p), key(p+o)>`` and the output is ``sum_o w_o * value(p+o)``; keys and values
outside the image are zero (the reference code's zero-padded ``F.unfold``).

The reference code materialises the unfolded ``C*k^2``-per-pixel tensor (~3 GiB per
tensor at 320^2, k=11). Here pixels are processed in square blocks of ``b x b``: one
batched GEMM computes the dot products of the block's queries with its
``(b+k-1)^2`` key region, the ``k^2`` that belong to each pixel's neighbourhood are
gathered, and the weighted sum is again one GEMM against the value region. With
separate keys and values this runs through standard differentiable ops (autograd gives
the gradients) and holds ``C*(b+k-1)^2/b^2`` floats per pixel instead of ``C*k^2``. When
keys and values are the same features (MMSR, RobSelf) a fused ``autograd.Function``
processes chunks of block rows with a hand-written backward and keeps only its output and
the ``k^2`` attention weights per pixel between the passes.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def local_attention_unfold(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: int):
    """Naive reference formulation with ``F.unfold`` (the oracle; memory ~ C*k^2 per pixel)."""
    b, c, h, w = q.shape
    pad = size // 2
    ku = F.unfold(k, size, padding=pad).view(b, c, size * size, h, w)
    vu = F.unfold(v, size, padding=pad).view(b, v.shape[1], size * size, h, w)
    logits = (q.unsqueeze(2) * ku).sum(1)  # (b, k^2, h, w)
    attn = torch.softmax(logits, dim=1)
    return (attn.unsqueeze(1) * vu).sum(2)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The gradient that flows back through the block-to-image permutation is strided;
    handing it to ``bmm``'s backward as is makes that copy once per block.
    """

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.contiguous()


@functools.lru_cache(maxsize=64)
def _gather_index(size: int, block: int) -> torch.Tensor:
    """For each pixel of a ``block x block`` tile, the flat positions of its ``size^2``
    neighbours inside the ``(block+size-1)^2`` region (row-major)."""
    region = block + size - 1
    py, px = torch.meshgrid(torch.arange(block), torch.arange(block), indexing="ij")
    oy, ox = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    idx = (py.reshape(-1, 1) + oy.reshape(1, -1)) * region + (px.reshape(-1, 1) + ox.reshape(1, -1))
    return idx  # (block^2, size^2)


def _index_on(size: int, block: int, device: torch.device) -> torch.Tensor:
    """:func:`_gather_index` on ``device``; under ``torch.compile`` it is traced into a
    constant instead of going through the cache (which dynamo would warn about)."""
    make = _gather_index.__wrapped__ if torch.compiler.is_compiling() else _gather_index
    return make(size, block).to(device)


def _regions(x: torch.Tensor, size: int, block: int, nh: int, nw: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B*nh*nw, C, R*R)``, the zero-padded key region of every block."""
    pad = size // 2
    region = block + size - 1
    h, w = x.shape[-2:]
    xp = F.pad(x, (pad, pad + nw * block - w, pad, pad + nh * block - h))
    r = xp.unfold(2, region, block).unfold(3, region, block)  # B,C,nh,nw,R,R
    bsz, c = x.shape[:2]
    return r.permute(0, 2, 3, 1, 4, 5).reshape(bsz * nh * nw, c, region * region)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: int, *, block: int = 8,
    narrow: torch.Tensor | None = None, narrow_size: int | None = None,
) -> torch.Tensor:
    """Local cross-domain attention, equal to :func:`local_attention_unfold` (see module doc).

    ``q``, ``k``: ``(B, C, H, W)``; ``v``: ``(B, Cv, H, W)``; ``size`` odd. Returns
    ``(B, Cv, H, W)``. When ``v is k`` (MMSR, RobSelf) a fused kernel is used that
    processes rows of blocks in chunks and recomputes the key regions in the backward pass,
    so it keeps only its output and the ``k^2`` attention weights per pixel.

    ``narrow`` (bool ``(B, 1, H, W)``, fused kernel only): pixels that use the centred
    ``narrow_size x narrow_size`` neighbourhood instead of ``size x size``; their softmax
    runs over those taps only. This is RobSelf's per-pixel choice of kernel in one pass,
    equal to filtering with both sizes and selecting per pixel.
    """
    if size % 2 != 1:
        raise ValueError(f"neighbourhood size must be odd, got {size}")
    block = max(1, min(block, q.shape[-2], q.shape[-1]))
    if narrow is not None:
        if v is not k:
            raise ValueError("narrow needs the fused kernel: pass the same tensor as k and v")
        if narrow_size is None or narrow_size % 2 != 1 or narrow_size > size:
            raise ValueError(f"narrow_size must be odd and <= size ({size}), got {narrow_size}")
        if narrow.shape != (q.shape[0], 1, *q.shape[-2:]):
            raise ValueError(f"narrow must be (B, 1, H, W) = {(q.shape[0], 1, *q.shape[-2:])}, "
                             f"got {tuple(narrow.shape)}")
    if v is k:
        return _FusedLocalAttention.apply(q, k, size, block, narrow, narrow_size)
    return _local_attention_autograd(q, k, v, size, block)


@functools.cache
def _outer_taps(size: int, inner: int) -> torch.Tensor:
    """Bool ``(size^2,)``: the taps of a ``size x size`` neighbourhood outside the centred
    ``inner x inner`` one (row-major, as :func:`_gather_index` orders them)."""
    r = torch.arange(size) - size // 2
    far = r.abs() > inner // 2
    return (far.view(-1, 1) | far.view(1, -1)).reshape(-1)


def _local_attention_autograd(q, k, v, size: int, block: int) -> torch.Tensor:
    bsz, c, h, w = q.shape
    cv = v.shape[1]
    nh, nw = -(-h // block), -(-w // block)
    n = bsz * nh * nw
    # Queries of each block: (n, b^2, C).
    qp = F.pad(q, (0, nw * block - w, 0, nh * block - h))
    qb = qp.view(bsz, c, nh, block, nw, block).permute(0, 2, 4, 3, 5, 1).reshape(n, block * block, c)
    kr = _regions(k, size, block, nh, nw)  # (n, C, R^2)
    idx = _index_on(size, block, q.device)
    scores = torch.bmm(qb, kr)  # (n, b^2, R^2)
    logits = scores.gather(2, idx.unsqueeze(0).expand(n, -1, -1))  # (n, b^2, k^2)
    attn = torch.softmax(logits, dim=-1)
    dense = torch.zeros_like(scores).scatter(2, idx.unsqueeze(0).expand(n, -1, -1), attn)
    vr = _regions(v, size, block, nh, nw)  # (n, Cv, R^2)
    out = _ContiguousGrad.apply(torch.bmm(dense, vr.transpose(1, 2)))  # (n, b^2, Cv)
    out = out.view(bsz, nh, nw, block, block, cv).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(bsz, cv, nh * block, nw * block)[:, :, :h, :w]


#: working memory of one chunk of the fused kernel, per buffer (bytes): a chunk holds
#: about five buffers of this size. Small chunks keep the step's peak low and, as
#: importantly, fit into the holes that freed feature maps leave in the heap (glibc does not
#: return those to the system), so the resident peak does not creep up over a long run.
#: (benchmarks/speed_and_memory/run_memory.py measures whole runs; step_time.py the step.)
_CHUNK_BYTES = 8 * 2**20
#: upper bound on the blocks of one chunk (tests lower it to force several chunks)
_CHUNK_BLOCKS = 512
#: the same two limits on CUDA. The caching allocator has no glibc holes to fit into, and
#: a small network's step is bound by kernel launches there, so chunks are made larger:
#: fewer, bigger GEMMs (benchmarks/speed_and_memory/results/step_time_320_x4_h100_chunk_sizes.json)
_CUDA_CHUNK_BYTES = 64 * 2**20
_CUDA_CHUNK_BLOCKS = 4096


def _rows(
    x: torch.Tensor, bi: int, r0: int, r1: int, left: int, right: int, dtype: torch.dtype
) -> torch.Tensor:
    """Rows ``r0:r1`` of ``x[bi]`` in ``dtype``, zero outside the image, columns padded by
    ``left``/``right`` zeros: ``(C, r1 - r0, left + W + right)``. Only the chunk is copied."""
    h = x.shape[-2]
    a, e = max(0, r0), min(h, r1)
    if (a, e, left, right) == (r0, r1, 0, 0):  # inside the image: a view (cast if needed)
        return x[bi, :, a:e].to(dtype)
    return F.pad(x[bi, :, a:e].to(dtype), (left, right, a - r0, r1 - e))


class _FusedLocalAttention(torch.autograd.Function):
    """``local_attention(q, kv, kv)`` with a hand-written, chunked, recomputing backward.

    Per chunk of block rows: ``S = Q R`` (queries against the key region), read the
    ``k^2`` logits of each pixel, softmax ``A``, write them into ``D``, ``O = D R^T``.
    Backward keeps ``A`` from the forward pass, recomputes ``R, D`` and uses
    ``dD = dO R``, ``dL = A (dA - sum A dA)``, ``dQ = dS R^T`` and
    ``dR = dO^T D + Q^T dS`` (key and value gradients together, computed channels last),
    summed back onto the image by :meth:`_fold`. The taps are read and written through a
    strided view (:meth:`_taps`), not ``gather``/``scatter``. The GEMMs run in float32, or
    in autocast's dtype (bf16) under autocast; the softmax, the kept weights and the
    summed key/value gradients are float32, and the output and the query gradient, each
    value of which comes from one GEMM, are made in the features' dtype. No padded copy of
    a whole feature map is made: each chunk pads its own rows, and results are written
    straight into ``(B, C, H, W)`` buffers.
    """

    @staticmethod
    def _chunks(nh: int, nw: int, c: int, size: int, block: int, cuda: bool):
        region = block + size - 1
        # bytes per block of the largest chunk buffers: D and dS (b^2 x R^2), R and dR (C x R^2)
        per_block = 4 * region * region * max(block * block, c)
        blocks, nbytes = ((_CUDA_CHUNK_BLOCKS, _CUDA_CHUNK_BYTES) if cuda
                          else (_CHUNK_BLOCKS, _CHUNK_BYTES))
        limit = max(1, min(blocks, nbytes // per_block))
        rows = max(1, limit // nw)
        for y0 in range(0, nh, rows):
            yield y0, min(nh, y0 + rows)

    @staticmethod
    def _buffer(q, nh, nw, c, size, block, dtype):
        """A zeroed ``(blocks, b^2, R^2)`` buffer for the largest chunk (the first)."""
        y0, y1 = next(_FusedLocalAttention._chunks(nh, nw, c, size, block, q.is_cuda))
        n, region = y1 - y0, block + size - 1
        return q.new_zeros((n * nw, block * block, region * region), dtype=dtype)

    @staticmethod
    def _taps(x, size, block):
        """The ``k^2`` neighbourhood entries of every pixel in a contiguous
        ``(n, b^2, R^2)`` block-by-region matrix, as a strided ``(n, b, b, k, k)`` view.

        Pixel ``(py, px)``'s tap ``(oy, ox)`` sits at row ``py*b + px``, column
        ``(py+oy)*R + px+ox``, so all of them are one ``as_strided`` view: reading or
        writing the taps is a plain strided copy (cheaper than ``gather``/``scatter``
        with an index tensor, and the copy can cast at the same time).
        """
        region = block + size - 1
        rr = region * region
        return x.as_strided(
            (x.shape[0], block, block, size, size),
            (x.stride(0), block * rr + region, rr + 1, region, 1),
            x.storage_offset(),
        )

    @staticmethod
    def _fold(grt, nr, nw, c, size, block):
        """Sum the channels-last ``(nr*nw, R^2, C)`` region gradients into
        ``((nr-1)*b+R, (nw-1)*b+R, C)`` (float32).

        ``F.fold`` would do it, but wants the regions as columns, i.e. a transposed copy;
        here the ``R x R`` region is cut into ``b x b`` tiles, and tile ``(ty, tx)`` of
        every block is added to the block ``ty`` rows and ``tx`` columns further on, one
        strided add per tile offset. Channels last, each add runs over ``b*C`` contiguous
        values at a time (and casts bf16 to float32 as it goes).
        """
        region = block + size - 1
        t = -(-region // block)
        acc = grt.new_zeros((nr + t - 1, block, nw + t - 1, block, c), dtype=torch.float32)
        g = grt.view(nr, nw, region, region, c)
        for ty in range(t):
            hs = min(block, region - ty * block)
            for tx in range(t):
                ws = min(block, region - tx * block)
                src = g[:, :, ty * block : ty * block + hs, tx * block : tx * block + ws]
                acc[ty : ty + nr, :hs, tx : tx + nw, :ws] += src.permute(0, 2, 1, 3, 4)
        acc = acc.view((nr + t - 1) * block, (nw + t - 1) * block, c)
        return acc[: (nr - 1) * block + region, : (nw - 1) * block + region]

    @staticmethod
    def _grid(q, block):
        h, w = q.shape[-2:]
        return h, w, -(-h // block), -(-w // block)

    @staticmethod
    def _chunk(q, kv, bi, y0, y1, nw, size, block, dense, attn=None, narrow=None):
        """Queries (n, C, b^2), regions (n, C, R^2), attention (n, b^2, k^2), dense D.

        ``dense`` is a zeroed ``(blocks, b^2, R^2)`` buffer reused across chunks: only the
        ``k^2`` taps of :meth:`_taps` are ever written, the same in every chunk, so the
        others stay zero and the buffer needs no refill. With ``attn`` given (backward
        pass) the scores and softmax are not recomputed. ``narrow``: ``(narrow pixel map,
        outer taps)``; the outer taps of narrow pixels get no weight (their logits are
        ``-inf``, so the softmax runs over the inner taps, and the backward pass, which
        reuses the weights, gives them no gradient).
        """
        c, w = q.shape[1], q.shape[-1]
        nr, region, pad = y1 - y0, block + size - 1, size // 2
        dt = dense.dtype
        qc = _rows(q, bi, y0 * block, y1 * block, 0, nw * block - w, dt)  # (C, nr*b, nw*b)
        qc = _FusedLocalAttention._blocks(qc, c, nr, nw, block)
        rc = _rows(kv, bi, y0 * block - pad, y1 * block + pad, pad, pad + nw * block - w, dt)
        rc = rc.unfold(1, region, block).unfold(2, region, block)  # C, nr, nw, R, R
        rc = rc.permute(1, 2, 0, 3, 4).reshape(nr * nw, c, region * region)
        n, taps = nr * nw, _FusedLocalAttention._taps
        if attn is None:
            scores = torch.bmm(qc.transpose(1, 2), rc)  # (n, b^2, R^2)
            logits = scores.new_empty((n, block * block, size * size), dtype=torch.float32)
            logits.view(n, block, block, size, size).copy_(taps(scores, size, block))
            if narrow is not None:
                pix, outer = narrow
                pix = _rows(pix, bi, y0 * block, y1 * block, 0, nw * block - w, pix.dtype)
                pix = _FusedLocalAttention._blocks(pix, 1, nr, nw, block)
                pix = pix.transpose(1, 2).bool()  # (n, b^2, 1)
                logits = logits.masked_fill(pix & outer, float("-inf"))
            attn = torch.softmax(logits, dim=-1)
        dense = dense[:n]
        taps(dense, size, block).copy_(attn.view(n, block, block, size, size))
        return qc, rc, attn, dense

    @staticmethod
    def _blocks(x, c, nr, nw, block):
        """(C, nr*b, nw*b) -> (nr*nw, C, b^2), one copy."""
        x = x.reshape(c, nr, block, nw, block).permute(1, 3, 0, 2, 4)
        return x.reshape(nr * nw, c, block * block)

    @staticmethod
    def _put(dst, x, bi, y0, nr, nw, block):
        """Write blocks ``x`` (nr*nw, C, b^2) into rows ``y0*b:`` of ``dst[bi]`` (C, H, W),
        clipped to the image; one (casting) copy when the blocks tile it exactly."""
        c, h, w = dst.shape[1:]
        x = x.view(nr, nw, c, block, block).permute(2, 0, 3, 1, 4)  # C, nr, b, nw, b
        r0, e = y0 * block, min(h, (y0 + nr) * block)
        if e - r0 == nr * block and w == nw * block:
            dst[bi, :, r0:e].view(c, nr, block, nw, block).copy_(x)
        else:
            dst[bi, :, r0:e] = x.reshape(c, nr * block, nw * block)[:, : e - r0, :w]

    @staticmethod
    def forward(ctx, q, kv, size, block, narrow=None, narrow_size=None):  # type: ignore[override]
        # The kernel does its own precision: the GEMMs in autocast's dtype when autocast is
        # on (bf16: far faster on a CPU with AVX512-BF16, and on the GPU's tensor cores), the
        # rest in float32. The backward pass runs outside the forward's autocast context,
        # so the dtype is kept on ``ctx``.
        dev = q.device.type
        ctx.dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else torch.float32
        with torch.autocast(dev, enabled=False):
            return _FusedLocalAttention._forward(ctx, q, kv, size, block, narrow, narrow_size)

    @staticmethod
    def _forward(ctx, q, kv, size, block, narrow, narrow_size):
        bsz, c = q.shape[:2]
        h, w, nh, nw = _FusedLocalAttention._grid(q, block)
        # Every output value is written once, from one GEMM: no float32 sum is needed, so
        # the output is made in the features' dtype (no cast copy of the whole map).
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        # The attention weights are small (k^2 per pixel); keeping them spares the
        # backward pass one GEMM and the softmax per chunk. They go into one buffer made
        # up front: chunk-sized pieces kept between short-lived temporaries would leave
        # holes in the heap that no feature map fits, and the resident peak would creep.
        # Inference (no gradient wanted) keeps none.
        keep = any(ctx.needs_input_grad[:2])
        attn_all = (q.new_empty((bsz, nh * nw, block * block, size * size), dtype=torch.float32)
                    if keep else None)
        buf = _FusedLocalAttention._buffer(q, nh, nw, c, size, block, ctx.dtype)
        masks = None
        if narrow is not None:
            outer = _outer_taps.__wrapped__ if torch.compiler.is_compiling() else _outer_taps
            masks = (narrow.to(torch.uint8), outer(size, narrow_size).to(q.device))
        for bi in range(bsz):
            for y0, y1 in _FusedLocalAttention._chunks(nh, nw, c, size, block, q.is_cuda):
                _, rc, attn, dense = _FusedLocalAttention._chunk(
                    q, kv, bi, y0, y1, nw, size, block, buf, narrow=masks
                )
                if attn_all is not None:
                    attn_all[bi, y0 * nw : y1 * nw] = attn
                o = torch.bmm(rc, dense.transpose(1, 2))  # (n, C, b^2)
                _FusedLocalAttention._put(out, o, bi, y0, y1 - y0, nw, block)
        ctx.save_for_backward(q, kv, attn_all)
        ctx.size, ctx.block = size, block
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        with torch.autocast(grad_out.device.type, enabled=False):
            return _FusedLocalAttention._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        q, kv, attn_all = ctx.saved_tensors
        size, block = ctx.size, ctx.block
        bsz, c = q.shape[:2]
        h, w, nh, nw = _FusedLocalAttention._grid(q, block)
        pad = size // 2
        gq = torch.empty_like(q, memory_format=torch.contiguous_format)  # written once
        gkv = q.new_zeros((bsz, c, h, w), dtype=torch.float32)
        buf = _FusedLocalAttention._buffer(q, nh, nw, c, size, block, ctx.dtype)
        gbuf = torch.zeros_like(buf)
        taps = _FusedLocalAttention._taps
        for bi in range(bsz):
            for y0, y1 in _FusedLocalAttention._chunks(nh, nw, c, size, block, q.is_cuda):
                nr = y1 - y0
                n = nr * nw
                qc, rc, attn, dense = _FusedLocalAttention._chunk(
                    q, kv, bi, y0, y1, nw, size, block, buf, attn_all[bi, y0 * nw : y1 * nw],
                )
                go = _rows(grad_out, bi, y0 * block, y1 * block, 0, nw * block - w, ctx.dtype)
                go = _FusedLocalAttention._blocks(go, c, nr, nw, block)  # (n, C, b^2)
                ga = attn.new_empty(attn.shape)  # dA, float32
                ga.view(n, block, block, size, size).copy_(
                    taps(torch.bmm(go.transpose(1, 2), rc), size, block))
                gl = attn * (ga - (attn * ga).sum(-1, keepdim=True))  # dL (softmax)
                gs = gbuf[:n]  # dS (zero off the taps, see _chunk)
                taps(gs, size, block).copy_(gl.view(n, block, block, size, size))
                _FusedLocalAttention._put(gq, torch.bmm(rc, gs.transpose(1, 2)), bi, y0, nr,
                                          nw, block)
                # dR = dO^T D + Q^T dS (key and value gradients of the shared features),
                # channels last: (n, R^2, C)
                grt = torch.bmm(dense.transpose(1, 2), go.transpose(1, 2))
                grt = grt.baddbmm_(gs.transpose(1, 2), qc.transpose(1, 2))
                # rows from y0*b - pad, columns from -pad
                folded = _FusedLocalAttention._fold(grt, nr, nw, c, size, block)
                r0 = y0 * block - pad
                a, e = max(0, r0), min(h, r0 + nr * block + size - 1)
                gkv[bi, :, a:e] += folded[a - r0 : e - r0, pad : pad + w].permute(2, 0, 1)
        return gq, gkv.to(kv.dtype), None, None, None, None


class ResBlock(nn.Module):
    """conv -> ReLU -> conv, plus identity (MMSR's block: no scaling, no final ReLU).

    ``dilation`` spaces the taps; ``leaky`` takes LeakyReLU (RobSelf's authors' extraction
    blocks) instead of ReLU."""

    def __init__(self, channels: int, kernel: int, dilation: int = 1, leaky: bool = False,
                 ) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=pad, dilation=dilation)
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.leaky:
            return x + self.conv2(F.leaky_relu(self.conv1(x)))
        # In place: the ReLU output is all the backward pass needs (saves one map per block).
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))
