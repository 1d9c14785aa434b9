"""The contract every registered method keeps, on tiny inputs with a few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geosr import get_method, list_methods
from geosr.errors import OptionError
from geosr.models.backproject import back_project

# Few steps so the contract is checked quickly; quality is checked elsewhere.
FAST = {"iterations": 5, "width": 8}


def build(name: str, **extra):
    import dataclasses

    from geosr.models import get_method_class

    fields = {f.name for f in dataclasses.fields(get_method_class(name).Options)}
    opts = {k: v for k, v in FAST.items() if k in fields}
    opts.update(extra)
    return get_method(name, **opts)


def normalised(tiny_pair):
    lr, guide, scale = tiny_pair
    lr = (lr - lr.mean()) / lr.std()
    guide = (guide - guide.mean(axis=(1, 2), keepdims=True)) / guide.std(axis=(1, 2), keepdims=True)
    return lr.astype(np.float32), guide.astype(np.float32), scale


def test_registry__lists_the_foundation_methods():
    assert {"bicubic", "guided-filter", "mmsr"} <= set(list_methods())


@pytest.mark.parametrize("name", list_methods())
def test_method__shape_dtype_finite(name, tiny_pair):
    lr, guide, scale = normalised(tiny_pair)
    out = build(name)(lr, guide, scale)
    assert out.shape == (1, lr.shape[1] * scale, lr.shape[2] * scale)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


LEARNED = [n for n in list_methods() if not get_method(n).deterministic]


@pytest.mark.parametrize("name", LEARNED)
def test_learned__bf16_autocast_runs(name, tiny_pair):
    """bf16 autocast is the default on CUDA; ``bf16=on`` takes the same path on the CPU, so
    the mixed-precision code (the fused filter among it) is exercised without a GPU."""
    lr, guide, scale = normalised(tiny_pair)
    out = build(name, bf16="on", device="cpu")(lr, guide, scale)
    assert out.shape == (1, lr.shape[1] * scale, lr.shape[2] * scale)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", list_methods())
def test_method__constant_in_constant_out(name, rng):
    lr = np.zeros((1, 6, 7), np.float32)  # a constant normalises to 0
    guide = rng.normal(size=(3, 24, 28)).astype(np.float32)
    out = build(name)(lr, guide, 4)
    # The cycle loss pins the pooled output to the LR; learned methods get within a few
    # steps' tolerance, classical ones are exact.
    assert np.abs(out).max() < (1e-5 if build(name).deterministic else 0.25)


@pytest.mark.parametrize("name", list_methods())
def test_method__mask_respected(name, tiny_pair):
    """Values under invalid LR pixels must not change the result elsewhere... for learned
    methods: not at all (the loss ignores them); classical ones read only valid context
    once the invalid value equals the fill value the API uses (0)."""
    lr, guide, scale = normalised(tiny_pair)
    mask = np.ones_like(lr, dtype=bool)
    mask[0, 2:4, 3:5] = False
    a = lr.copy()
    a[~mask] = 0.0
    b = lr.copy()
    b[~mask] = 0.0
    method = build(name)
    out_a = method(a, guide, scale, mask=mask)
    if method.deterministic:
        np.testing.assert_array_equal(out_a, method(b, guide, scale, mask=mask))
        return
    b[~mask] = 50.0  # a wild value under the mask: the fit must ignore it
    out_b = method(b, guide, scale, mask=mask)
    # Only the network input (bilinear upsampling of the LR) sees b; check the loss did not
    # chase the masked value: the pooled output there stays far from 50.
    pooled = out_b[0].reshape(lr.shape[1], scale, lr.shape[2], scale).mean(axis=(1, 3))
    assert np.abs(pooled[2:4, 3:5]).max() < 25


def test_optimizer__cpu_flags_from_proc_cpuinfo():
    from geosr.models.optimize import cpu_flags

    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
    text += "processor\t: 1\nflags\t\t: fpu\n"
    assert cpu_flags(text) == {"fpu", "avx512f", "avx512_bf16"}  # the first processor's
    assert cpu_flags("processor : 0\nFeatures : fp asimd\n") == set()  # no x86 flags line


@pytest.mark.parametrize(
    "setting,device,native,want",
    [
        ("auto", "cuda", False, True),
        ("auto", "cpu", True, True),  # a CPU with AVX512-BF16 or AMX
        ("auto", "cpu", False, False),  # would be emulated: slower
        ("off", "cpu", True, False),
        ("off", "cuda", False, False),
        ("on", "cpu", False, True),
    ],
)
def test_optimizer__bf16_auto_follows_the_hardware(setting, device, native, want, monkeypatch):
    import torch

    from geosr.models import optimize

    monkeypatch.setattr(optimize, "cpu_has_bf16", lambda: native)
    cfg = optimize.OptimConfig(bf16=setting)
    assert optimize.uses_bf16(cfg, torch.device(device)) is want


@pytest.mark.parametrize("name", ["mmsr", "robself-re"])
def test_learned__average_tail_is_the_mean_of_the_last_predictions(name, tiny_pair):
    """``average_tail=0.5`` over 8 steps returns the mean of the predictions after steps 5,
    6, 7 and 8: the same seeded CPU run without averaging (``average_tail=0``, the paper's
    last-step output), observed every step, has them."""
    lr, guide, scale = normalised(tiny_pair)
    mask = np.ones_like(lr, dtype=bool)
    kw = {"iterations": 8, "seed": 1, "device": "cpu"}
    plain = build(name, average_tail=0.0, **kw).fit(lr, guide, scale, mask,
                                                    snapshot_steps=range(1, 9))
    averaged = build(name, average_tail=0.5, **kw).fit(lr, guide, scale, mask)
    want = np.mean([plain.snapshots[s] for s in (5, 6, 7, 8)], axis=0)
    np.testing.assert_allclose(averaged.prediction, want, rtol=0, atol=1e-6)
    assert not np.allclose(averaged.prediction, plain.prediction, rtol=0, atol=1e-4)
    assert averaged.losses == plain.losses  # the fit itself is unchanged


@pytest.mark.parametrize("name", ["mmsr", "p2p"])
def test_learned__back_project_makes_the_output_pool_to_the_lr(name, tiny_pair):
    """``back_project`` corrects the same fit's output (and snapshots) onto the valid LR:
    a 4-step fit's output does not pool back to the LR, the corrected one does."""
    lr, guide, scale = normalised(tiny_pair)
    mask = np.ones_like(lr, dtype=bool)
    mask[0, :2, :3] = False
    kw = {"iterations": 4, "seed": 1, "device": "cpu"}
    plain = build(name, back_project=0, **kw).fit(lr, guide, scale, mask, snapshot_steps=[2])
    bp = build(name, back_project=30, **kw).fit(lr, guide, scale, mask, snapshot_steps=[2])
    assert bp.losses == plain.losses  # the fit itself is unchanged

    def cycle_error(pred):
        down = torch.nn.functional.avg_pool2d(torch.from_numpy(pred)[None], scale)[0].numpy()
        return float(np.abs(down - lr)[mask].max())

    for got, before in ((bp.prediction, plain.prediction), (bp.snapshots[2], plain.snapshots[2])):
        assert cycle_error(before) > 0.05 and cycle_error(got) < 1e-3
    np.testing.assert_allclose(bp.prediction, back_project(plain.prediction, lr, mask, scale, 30))


def test_learned__back_projection_is_on_by_default_for_mmsr_and_robself():
    for name in ("mmsr", "robself-re", "robself-de"):
        assert get_method(name).options.back_project == 10
    assert get_method("p2p").options.back_project == 0  # not measured there


def test_optimizer__cosine_schedule_reaches_zero_at_the_last_step():
    import torch

    from geosr.models.optimize import OptimConfig, make_optimizer

    net = torch.nn.Conv2d(1, 1, 1)
    rates = {}
    for kind in ("step", "cosine"):
        opt, sched = make_optimizer(net, OptimConfig(iterations=10, lr_schedule=kind))
        seen = []
        for _ in range(10):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        rates[kind] = seen + [opt.param_groups[0]["lr"]]
    assert rates["step"][0] == rates["cosine"][0] == 2e-3
    assert rates["step"][-1] > 0.99 * 2e-3  # the papers' decay barely moves in 10 steps
    assert rates["cosine"][5] == pytest.approx(1e-3)  # half-way: half the rate
    assert rates["cosine"][-1] == pytest.approx(0.0, abs=1e-12)


def test_optimizer__warmup_ramps_the_rate_then_follows_the_schedule():
    import torch

    from geosr.errors import OptionError
    from geosr.models.optimize import OptimConfig, make_optimizer

    net = torch.nn.Conv2d(1, 1, 1)
    opt, sched = make_optimizer(net, OptimConfig(warmup=3, decay_every=1, lr_decay=0.5))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # ramp factors 1/4, 2/4, 3/4, 1, 1, 1 times the step decay 1, 1/2, 1/4, ...
    want = [2e-3 * r * 0.5**i for i, r in enumerate((0.25, 0.5, 0.75, 1, 1, 1))]
    assert seen == pytest.approx(want)
    with pytest.raises(OptionError, match="warmup"):
        get_method("mmsr", warmup=-1)


def spy_warmups(monkeypatch) -> list[int]:
    """The ``warmup`` of every optimiser the loop makes from now on, in order."""
    from geosr.models import optimize

    seen: list[int] = []
    make = optimize.make_optimizer

    def spy(model, cfg):
        seen.append(cfg.warmup)
        return make(model, cfg)

    monkeypatch.setattr(optimize, "make_optimizer", spy)
    return seen


def test_learned__warmup_only_for_fits_from_fitted_weights(tiny_pair, monkeypatch):
    """The default ramp (5 steps) applies when a fit starts from fitted weights (hybrid
    tiles, --network refits) and never to a fit from scratch."""
    from geosr.models.learned import dump_state

    seen = spy_warmups(monkeypatch)
    lr, guide, scale = normalised(tiny_pair)
    mask = np.ones_like(lr, bool)
    m = build("mmsr", iterations=2, device="cpu")
    assert m.options.warmup == 5
    m.fit(lr, guide, scale, mask)
    state = dump_state(m.build_model(guide.shape[0], scale))
    m.fit(lr, guide, scale, mask, init_state=state)
    build("mmsr", iterations=2, device="cpu", warmup=0).fit(lr, guide, scale, mask,
                                                            init_state=state)
    assert seen == [0, 5, 0]


def scale2_pair(tiny_pair):
    """tiny_pair's HR at x2: LR (1, 16, 20), so its coarse copy is (1, 8, 10)."""
    lr, guide, _ = normalised(tiny_pair)
    hr = np.kron(lr[0], np.ones((4, 4), np.float32))  # the x4 LR back on the HR grid
    return hr.reshape(16, 2, 20, 2).mean(axis=(1, 3))[None], guide, 2


def test_optimizer__coarse_copy_is_the_input_one_scale_down(rng):
    from geosr.models.optimize import coarse_copy

    lr = rng.normal(size=(1, 9, 11)).astype(np.float32)  # not a multiple of the scale
    guide = rng.normal(size=(3, 18, 22)).astype(np.float32)
    mask = rng.random((1, 9, 11)) > 0.2
    coarse, coarse_guide, target, target_mask = coarse_copy(lr, guide, mask, 2)
    assert coarse.shape == (1, 4, 5) and coarse_guide.shape == (3, 8, 10)
    np.testing.assert_array_equal(target, lr[:, :8, :10])
    np.testing.assert_array_equal(target_mask, mask[:, :8, :10])
    np.testing.assert_allclose(coarse[0, 1, 2], lr[0, 2:4, 4:6].mean(), rtol=1e-6)
    np.testing.assert_allclose(coarse_guide[1, 3, 4], guide[1, 6:8, 8:10].mean(), rtol=1e-6)
    assert coarse_copy(lr, guide, mask, 3) is None  # a 3x3 coarse copy is too small


@pytest.mark.parametrize("name", ["mmsr", "robself-re"])
def test_learned__prefit_on_the_coarse_copy(name, tiny_pair, monkeypatch):
    """The pre-fit learns the coarse copy's answer (the LR), and the fit that follows
    starts from its weights: its first cycle loss is far below a fresh network's, and
    it ramps its rate up as fits from fitted weights do."""
    from geosr.models import optimize
    from geosr.models.learned import dump_state

    lr, guide, scale = scale2_pair(tiny_pair)
    mask = np.ones_like(lr, bool)
    losses = []
    pre = optimize.prefit

    def spy(*args, **kwargs):
        losses.append(pre(*args, **kwargs))
        return losses[-1]

    kw = {"iterations": 3, "seed": 2, "device": "cpu", "back_project": 0}
    monkeypatch.setattr(optimize, "prefit", spy)
    build(name, prefit=1, **kw).fit(lr, guide, scale, mask)  # the coarse loss at the start
    (_, start), = losses
    losses.clear()
    warmups = spy_warmups(monkeypatch)
    fresh = build(name, **kw).fit(lr, guide, scale, mask)
    m = build(name, prefit=60, **kw)
    warm = m.fit(lr, guide, scale, mask)
    (steps, last), = losses
    assert steps == 60 and last < 0.2 * start
    assert warm.losses[0] < 0.5 * fresh.losses[0]
    assert warmups == [0, 0, 5]  # fresh fit; pre-fit (no ramp); the fit after it ramps
    # a fit from given weights (hybrid tiles, --network) does not pre-fit
    m.fit(lr, guide, scale, mask, init_state=dump_state(m.build_model(guide.shape[0], scale)))
    assert len(losses) == 1


def test_learned__prefit_skipped_when_the_input_is_too_small(tiny_pair):
    lr, guide, scale = normalised(tiny_pair)  # LR 8x10 at x4: a 2x2 coarse copy
    kw = {"iterations": 3, "seed": 2, "device": "cpu"}
    np.testing.assert_array_equal(build("mmsr", prefit=20, **kw)(lr, guide, scale),
                                  build("mmsr", **kw)(lr, guide, scale))


def test_learned__seed_makes_cpu_runs_bit_identical(tiny_pair):
    lr, guide, scale = normalised(tiny_pair)
    m = build("mmsr", seed=3, device="cpu")
    np.testing.assert_array_equal(m(lr, guide, scale), m(lr, guide, scale))
    other = build("mmsr", seed=4, device="cpu")(lr, guide, scale)
    assert not np.array_equal(other, m(lr, guide, scale))


def test_optimizer__slope_loss_compares_differences_of_valid_neighbours():
    from geosr.models.optimize import masked_cycle_loss, masked_slope_loss

    lr = torch.arange(16.0).reshape(1, 1, 4, 4)
    pred = torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")
    valid = torch.ones_like(lr, dtype=torch.bool)
    # an offset is a cycle error but no slope error
    assert float(masked_slope_loss(pred + 5, lr, valid, 2)) == 0.0
    assert float(masked_cycle_loss(pred + 5, lr, valid, 2)) == 5.0
    # one LR pixel off by 4: it is in 1 of the 12 row pairs and 1 of the 12 column pairs
    bumped = pred.clone()
    bumped[..., :2, :2] += 4
    assert float(masked_slope_loss(bumped, lr, valid, 2)) == pytest.approx(8 / 24)
    # masked out, that pixel's pairs no longer count
    valid[..., 0, 0] = False
    assert float(masked_slope_loss(bumped, lr, valid, 2)) == 0.0


def test_learned__slope_weight_changes_the_fit(tiny_pair):
    lr, guide, scale = normalised(tiny_pair)
    plain = build("mmsr", seed=3, device="cpu")(lr, guide, scale)
    np.testing.assert_array_equal(build("mmsr", seed=3, device="cpu", slope_weight=0.0)(
        lr, guide, scale), plain)
    assert not np.array_equal(build("mmsr", seed=3, device="cpu", slope_weight=1.0)(
        lr, guide, scale), plain)


def test_learned__early_stop_and_progress(tiny_pair):
    lr, guide, scale = normalised(tiny_pair)
    seen = []
    m = get_method("mmsr", iterations=400, width=8, early_stop=3, lr=1e-9)
    res = m.fit(lr, guide, scale, np.ones_like(lr, bool), progress=lambda s, n, loss: seen.append(s))
    assert res.steps < 400  # a tiny learning rate cannot improve the loss: stops early
    assert seen == list(range(1, res.steps + 1))


def test_mmsr__presets_and_overrides():
    assert get_method("mmsr").options.sizes == (11, 5)
    assert get_method("mmsr", preset="dem").options.sizes == (5, 3)
    assert get_method("mmsr", preset="thermal", n=7).options.sizes == (7, 3)


@pytest.mark.parametrize(
    "name,opts,match",
    [
        ("mmsr", {"preset": "lidar"}, "preset"),
        ("mmsr", {"n": 4}, "odd"),
        ("mmsr", {"iterations": 0}, "iterations"),
        ("mmsr", {"device": "tpu"}, "device"),
        ("mmsr", {"average_tail": 1.0}, "average_tail must be a fraction"),
        ("mmsr", {"lr_schedule": "linear"}, "lr_schedule must be step or cosine"),
        ("p2p", {"average_tail": 0.2}, "trained on whole images"),
        ("cmsr", {"average_tail": 0.2}, "trained on whole images"),
        ("mmsr", {"colour": 1}, "unknown option"),
        ("mmsr", {"back_project": -1}, "back_project must be >= 0"),
        ("mmsr", {"slope_weight": -0.5}, "slope_weight must be >= 0"),
        ("mmsr", {"prefit": -1}, "prefit must be >= 0"),
        ("p2p", {"prefit": 10}, "trained on whole images"),
        ("cmsr", {"prefit": 10}, "trained on whole images"),
        ("bicubic", {"iterations": 3}, "unknown option"),
        ("guided-filter", {"eps": -1.0}, "eps"),
        ("nearest", {}, "unknown method"),
    ],
)
def test_get_method__bad_options(name, opts, match):
    with pytest.raises(OptionError, match=match):
        get_method(name, **opts)
