"""The online, self-supervised optimisation loop shared by every learned method.

A model maps ``(lr_up_input, guide)`` tensors to an HR prediction (or to a tuple
``(prediction, [auxiliary predictions])``, optionally followed by a penalty). The loss is
the masked L1 *cycle* loss ``|avg_pool(pred, scale) - lr|`` over valid LR pixels, plus
``aux_weight`` times the same loss for each auxiliary prediction (RobSelf's translation
head), plus the penalty if the model returns one (RobSelf's optional field smoothness).
No other supervision: the network is fitted to this one input and thrown away.

Defaults follow the MMSR/RobSelf papers: Adam, lr 2e-3, x0.9998 every 5 steps,
1000 steps, weight decay only on the parameters a model lists as ``decayed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geosr import memory
from geosr.errors import OptionError
from geosr.models.settings import LoopOptions, OptimConfig

logger = logging.getLogger(__name__)

__all__ = ["LoopOptions", "OptimConfig"]  # declared torch-free in geosr.models.settings

#: ``progress(step, total, loss)``; called every step.
ProgressFn = Callable[[int, int, float], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(
            "device 'cuda' was asked for but PyTorch sees no CUDA GPU; use --device cpu "
            "(or auto), or install a CUDA build of PyTorch"
        )
    return torch.device(name)


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor listed in a Linux ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (x86 AVX512-BF16 or AMX-BF16; Linux only).

    Elsewhere, and on CPUs without it, oneDNN would emulate bf16 at a loss of speed.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return bool(cpu_flags(f.read()) & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False


def uses_bf16(cfg: OptimConfig, device: torch.device) -> bool:
    """Whether the loop runs under bf16 autocast (``cfg.bf16``; see :class:`OptimConfig`)."""
    if cfg.bf16 != "auto":
        return cfg.bf16 == "on"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())




def tidier(cfg: OptimConfig, device: torch.device) -> Callable[[], None]:
    """What the loop calls after each forward pass and update: ``malloc_trim`` or nothing."""
    release = memory.malloc_trim() if cfg.trim_memory and device.type == "cpu" else None
    return release if release is not None else (lambda: None)


def _runner(model: nn.Module, cfg: OptimConfig) -> nn.Module:
    """What the training steps call: ``model``, or a ``torch.compile`` view of it (same
    parameters; the final prediction runs eagerly, so eval mode costs no recompilation)."""
    if not cfg.compile:
        return model
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise OptionError(
            "compile=true needs a C++ compiler for torch.compile on this machine (none of "
            "c++, g++, clang++ is on PATH); install one (e.g. apt install g++) or leave "
            "compile off"
        )
    if next(model.parameters()).device.type == "cpu":
        _warn_cpu_compile()
    return torch.compile(model)


@functools.lru_cache(maxsize=1)
def _warn_cpu_compile() -> None:
    # each fitted network is a new module to compile (seen on the embedded example, 2 cores)
    logger.warning(
        "compile=true on the CPU compiles every network it fits (about a minute or more "
        "each: the self-check's, the scene network, each tile's in tile mode), which "
        "outweighs what it saves on short fits; it is meant for CUDA")


def masked_cycle_loss(
    pred: torch.Tensor, lr: torch.Tensor, mask: torch.Tensor, scale: int
) -> torch.Tensor:
    """Mean L1 between ``avg_pool(pred, scale)`` and ``lr`` over valid LR pixels."""
    down = F.avg_pool2d(pred.float(), scale)
    diff = (down - lr).abs() * mask
    return diff.sum() / mask.sum().clamp_min(1.0)


def masked_slope_loss(
    pred: torch.Tensor, lr: torch.Tensor, mask: torch.Tensor, scale: int
) -> torch.Tensor:
    """Mean L1 between the finite differences (along rows and columns) of
    ``avg_pool(pred, scale)`` and of ``lr``, over pairs of valid LR pixels: the cycle
    loss in the gradient domain."""
    down = F.avg_pool2d(pred.float(), scale)
    total = down.new_zeros(())
    count = down.new_zeros(())
    for dim in (-1, -2):
        n = down.shape[dim] - 1
        if n < 1:
            continue
        d_pred = down.narrow(dim, 1, n) - down.narrow(dim, 0, n)
        d_lr = lr.narrow(dim, 1, n) - lr.narrow(dim, 0, n)
        both = mask.narrow(dim, 1, n) * mask.narrow(dim, 0, n)
        total = total + ((d_pred - d_lr).abs() * both).sum()
        count = count + both.sum()
    return total / count.clamp_min(1.0)


@dataclasses.dataclass
class FitResult:
    prediction: np.ndarray  # (1, H, W) float32, normalised units
    steps: int
    loss: float
    seconds: float
    snapshots: dict[int, np.ndarray]
    losses: list[float]


def make_optimizer(
    model: nn.Module, cfg: OptimConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam over the model's weight-decay groups, with the papers' step decay (or a
    cosine one, ``cfg.lr_schedule``)."""
    if hasattr(model, "param_groups"):  # a model with its own weight-decay groups (P2P)
        groups = model.param_groups()
    else:
        decayed = set(getattr(model, "decayed_parameters", lambda: [])())
        groups = [
            {"params": [p for p in model.parameters() if p not in decayed], "weight_decay": 0.0},
            {"params": [p for p in model.parameters() if p in decayed],
             "weight_decay": cfg.weight_decay},
        ]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr)
    if cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iterations)
    else:
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=cfg.decay_every, gamma=cfg.lr_decay)
    if cfg.warmup:  # factors multiply: the ramp times the schedule
        ramp = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=1.0 / (cfg.warmup + 1), total_iters=cfg.warmup)
        sched = torch.optim.lr_scheduler.ChainedScheduler([ramp, sched], optimizer=opt)
    return opt, sched


def _tensors(device: torch.device, *arrays: np.ndarray) -> list[torch.Tensor]:
    """Float32 ``(1, ...)`` tensors on ``device``."""
    return [torch.from_numpy(np.ascontiguousarray(a, np.float32))[None].to(device)
            for a in arrays]


class Outputs(NamedTuple):
    """What a model's forward pass returns, in one shape for the loop."""

    pred: torch.Tensor
    aux: list[torch.Tensor]
    #: a regularisation term the model adds to its loss (e.g. RobSelf's field smoothness)
    penalty: torch.Tensor | None = None


def _outputs(out: object) -> Outputs:
    """A model's ``prediction``, ``(prediction, [auxiliary predictions])`` or
    ``(prediction, [auxiliary predictions], penalty)``."""
    if isinstance(out, tuple):
        return Outputs(out[0], list(out[1]), out[2] if len(out) > 2 else None)
    return Outputs(out, [])  # type: ignore[arg-type]


def _total_loss(out: Outputs, lr: torch.Tensor, mask: torch.Tensor, scale: int,
                cfg: OptimConfig) -> torch.Tensor:
    loss = masked_cycle_loss(out.pred, lr, mask, scale)
    if cfg.slope_weight:
        loss = loss + cfg.slope_weight * masked_slope_loss(out.pred, lr, mask, scale)
    for a in out.aux:
        loss = loss + cfg.aux_weight * masked_cycle_loss(a, lr, mask, scale)
    if out.penalty is not None:
        loss = loss + out.penalty
    return loss


def _descend(loss: torch.Tensor, opt: torch.optim.Optimizer, sched: object, step: int,
             tidy: Callable[[], None]) -> float:
    """One optimiser step on ``loss``; returns its value (an error when it is not finite).

    ``tidy`` runs once the forward pass is done and once the update is: the points where
    the most freed memory lies in the heap (glibc ``malloc_trim``, see ``OptimConfig.trim_memory``).
    """
    tidy()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()  # type: ignore[attr-defined]
    tidy()
    value = float(loss.detach())
    if not np.isfinite(value):
        raise FloatingPointError(
            f"the loss became {value} at step {step}; lower the learning rate or check "
            "the inputs for extreme values"
        )
    return value


class _EarlyStop:
    """True once the loss has not improved by ``tol`` (relative) for ``patience`` steps."""

    def __init__(self, patience: int | None, tol: float) -> None:
        self.patience, self.tol = patience, tol
        self.best, self.since = float("inf"), 0

    def __call__(self, value: float) -> bool:
        if self.patience is None:
            return False
        if value < self.best * (1.0 - self.tol):
            self.best, self.since = value, 0
            return False
        self.since += 1
        return self.since >= self.patience


def fit(
    model: nn.Module,
    lr: np.ndarray,
    guide: np.ndarray,
    scale: int,
    mask: np.ndarray,
    cfg: OptimConfig,
    *,
    progress: ProgressFn | None = None,
    snapshot_steps: Sequence[int] = (),
) -> FitResult:
    """Fit ``model`` to one (LR, guide) pair and return its HR prediction.

    ``lr`` (1, h, w) and ``guide`` (C, H, W) are normalised float32 arrays, ``mask`` the
    valid LR pixels. ``snapshot_steps``: also return predictions after these many steps.
    """
    device = resolve_device(cfg.device)
    use_bf16 = uses_bf16(cfg, device)
    lr_t, guide_t, mask_t = _tensors(device, lr, guide, mask)
    model = model.to(device)
    opt, sched = make_optimizer(model, cfg)
    train_step = _runner(model, cfg)
    tidy = tidier(cfg, device)

    def forward(net: nn.Module = model) -> Outputs:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return _outputs(net(lr_t, guide_t))

    # A model may train on something other than the full image (P2P: random LR pixels and
    # their guide patches) through ``training_loss``; it then predicts with ``predict``.
    custom_loss = getattr(model, "training_loss", None)

    def predict() -> torch.Tensor:
        if custom_loss is None:
            return forward().pred
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return model.predict(lr_t, guide_t, mask_t)

    if custom_loss is not None and cfg.average_tail > 0:
        raise OptionError(
            f"average_tail needs a model trained on whole images; {type(model).__name__} "
            "trains on samples and predicts once at the end: leave average_tail at 0")
    wanted = {int(s) for s in snapshot_steps if 0 < int(s) <= cfg.iterations}
    snapshots: dict[int, np.ndarray] = {}
    losses: list[float] = []
    stop = _EarlyStop(cfg.early_stop, cfg.early_stop_tol)
    tail_from = cfg.iterations - math.ceil(cfg.average_tail * cfg.iterations)
    tail_sum: torch.Tensor | None = None
    tail_count = 0
    t0 = time.perf_counter()
    step = 0
    model.train()
    for step in range(cfg.iterations):
        if custom_loss is not None:
            if step in wanted:
                with torch.no_grad():
                    snapshots[step] = predict().float()[0].cpu().numpy()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = custom_loss(lr_t, guide_t, mask_t, scale)
        else:
            out = forward(train_step)
            if step in wanted:
                snapshots[step] = out.pred.detach().float()[0].cpu().numpy()
            if step > tail_from:  # the prediction of the weights after ``step`` updates
                p = out.pred.detach().float()
                tail_sum = p.clone() if tail_sum is None else tail_sum.add_(p)
                tail_count += 1
            loss = _total_loss(out, lr_t, mask_t, scale, cfg)
        value = _descend(loss, opt, sched, step, tidy)
        losses.append(value)
        if progress is not None:
            progress(step + 1, cfg.iterations, value)
        if stop(value):
            logger.info("early stop at step %d (loss %.5g)", step + 1, value)
            break
    steps = step + 1
    model.eval()
    with torch.no_grad():
        last = predict().float()
        if tail_sum is not None:
            last = tail_sum.add_(last).div_(tail_count + 1)
        final = last[0].cpu().numpy()
    snapshots[steps] = final
    return FitResult(final, steps, losses[-1], time.perf_counter() - t0, snapshots, losses)


#: the smallest coarse copy (LR pixels per side after pooling) :func:`prefit` fits on
PREFIT_MIN_SIDE = 4


def coarse_copy(
    lr: np.ndarray, guide: np.ndarray, mask: np.ndarray, scale: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The input one scale coarser, with its own LR as the HR answer.

    Returns ``(coarse_lr, coarse_guide, target, target_mask)``: the LR average-pooled by
    ``scale`` (``(1, h//s, w//s)``), the guide pooled to the LR grid, and the LR (cropped
    to a multiple of ``scale``) with its mask, which the network's output on the coarse
    pair should equal. The same ``scale``-fold average pooling relates the coarse LR to
    the LR as relates the LR to the unknown HR. None when the coarse LR would be smaller
    than :data:`PREFIT_MIN_SIDE` pixels on a side.
    """
    h, w = (d // scale for d in lr.shape[-2:])
    if min(h, w) < PREFIT_MIN_SIDE:
        return None
    hs, ws = h * scale, w * scale
    target = np.ascontiguousarray(lr[:, :hs, :ws], np.float32)

    def pooled(a: np.ndarray) -> np.ndarray:  # (C, H, W), multiples of scale
        c, hh, ww = a.shape
        return a.reshape(c, hh // scale, scale, ww // scale, scale).mean(axis=(2, 4))

    guide = np.ascontiguousarray(guide[:, : hs * scale, : ws * scale], np.float32)
    return (pooled(target), pooled(guide), target,
            np.ascontiguousarray(mask[:, :hs, :ws], np.float32))


def prefit(
    model: nn.Module,
    lr: np.ndarray,
    guide: np.ndarray,
    scale: int,
    mask: np.ndarray,
    cfg: OptimConfig,
    steps: int,
) -> tuple[int, float]:
    """Fit ``model`` to the input's own coarser copy before the cycle-loss fit.

    The network maps the coarse pair of :func:`coarse_copy` to HR, and its output is
    compared (masked L1; auxiliary outputs and penalty as in :func:`fit`) with the LR
    itself: a *supervised* problem one scale down, made from the input alone (the
    internal learning of ZSSR and CMSR). A step costs about ``1/scale²`` of a full step,
    and the weights it leaves already pass the source through and follow the guide's
    edges, which a fit from scratch spends most of its first few hundred steps on
    (docs/benchmarks/modes.md#pre-fitting-on-the-inputs-coarser-copy). Adam with ``cfg.lr``, no decay;
    the fit that follows starts a fresh optimiser. Returns ``(steps run, last loss)``;
    ``(0, nan)`` when the input is too small for a coarse copy.
    """
    if steps < 1:
        return 0, float("nan")
    copy = coarse_copy(lr, guide, mask, scale)
    if copy is None:
        logger.info("no pre-fit: a %dx%d LR has no coarse copy of at least %d pixels a side",
                    lr.shape[-2], lr.shape[-1], PREFIT_MIN_SIDE)
        return 0, float("nan")
    device = resolve_device(cfg.device)
    use_bf16 = uses_bf16(cfg, device)
    x_t, g_t, target_t, mask_t = _tensors(device, *copy)
    model = model.to(device)
    opt, _ = make_optimizer(model, cfg)
    tidy = tidier(cfg, device)
    no_schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    value = float("nan")
    model.train()
    for step in range(steps):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = _outputs(model(x_t, g_t))
        # scale 1: the output is compared with the target pixel for pixel
        value = _descend(_total_loss(out, target_t, mask_t, 1, cfg), opt, no_schedule,
                         step, tidy)
    logger.info("pre-fit on the coarse copy: %d steps, loss %.4g", steps, value)
    return steps, value


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run with torch's CPU RNG seeded, restoring the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


#: one training sample of :func:`fit_samples`: normalised (lr, guide, mask) arrays
Sample = tuple[np.ndarray, np.ndarray, np.ndarray]


class WeightMean:
    """Running mean of a model's floating-point weights (float32, on the model's device)."""

    def __init__(self) -> None:
        self.mean: dict[str, torch.Tensor] = {}
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        self.count += 1
        for k, v in model.state_dict().items():
            if not v.is_floating_point():
                continue
            if k not in self.mean:
                self.mean[k] = v.detach().float().clone()
            else:
                self.mean[k].add_(v.float() - self.mean[k], alpha=1.0 / self.count)

    @torch.no_grad()
    def load_into(self, model: nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.mean.items():
            state[k].copy_(v)


def fit_samples(
    model: nn.Module,
    draw: Callable[[int], Sample],
    scale: int,
    cfg: OptimConfig,
    *,
    progress: ProgressFn | None = None,
) -> tuple[int, float, float]:
    """Fit ``model`` with the cycle loss on a different sample at every step.

    ``draw(step)`` returns the step's normalised ``(lr, guide, mask)`` (e.g. a random crop
    of a scene). The loss, optimiser and schedule are those of :func:`fit`; early stopping
    uses a running mean over 25 steps, since single-sample losses are noisy. With
    ``cfg.average_tail`` the weights after each of the last steps (that fraction of
    ``cfg.iterations``) are averaged, and ``model`` ends with their mean. Returns
    ``(steps, final running loss, seconds)``; the fitted weights stay in ``model``.
    """
    device = resolve_device(cfg.device)
    use_bf16 = uses_bf16(cfg, device)
    model = model.to(device)
    opt, sched = make_optimizer(model, cfg)
    train_step = _runner(model, cfg)
    tidy = tidier(cfg, device)
    t0 = time.perf_counter()
    window: list[float] = []
    stop = _EarlyStop(cfg.early_stop, cfg.early_stop_tol)
    running, step = float("nan"), 0
    tail_from = cfg.iterations - math.ceil(cfg.average_tail * cfg.iterations)
    tail = WeightMean()
    model.train()
    for step in range(cfg.iterations):
        lr_t, guide_t, mask_t = _tensors(device, *draw(step))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = _outputs(train_step(lr_t, guide_t))
        value = _descend(_total_loss(out, lr_t, mask_t, scale, cfg), opt, sched, step, tidy)
        if step >= tail_from:  # never when average_tail is 0
            tail.add(model)
        window = (window + [value])[-25:]
        running = float(np.mean(window))
        if progress is not None:
            progress(step + 1, cfg.iterations, running)
        if len(window) == 25 and stop(running):
            logger.info("early stop at step %d (running loss %.5g)", step + 1, running)
            break
    if tail.count > 1:
        tail.load_into(model)
    model.eval()
    return step + 1, running, time.perf_counter() - t0


def infer(model: nn.Module, lr: np.ndarray, guide: np.ndarray, cfg: OptimConfig) -> np.ndarray:
    """One forward pass of a fitted model: the ``(1, H, W)`` float32 HR prediction."""
    device = resolve_device(cfg.device)
    use_bf16 = uses_bf16(cfg, device)
    model = model.to(device).eval()
    lr_t, guide_t = _tensors(device, lr, guide)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        pred = _outputs(model(lr_t, guide_t)).pred
    return pred.float()[0].cpu().numpy()
