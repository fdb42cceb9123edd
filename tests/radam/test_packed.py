"""PackedOptimizer against K unpacked optimizers (make_optimizer + LambdaLR).

Each member trains its own small conv net (a 3x3 convolution, a tanh, a linear layer) on its
own fixed data; the pack's gradients come from autograd through the stacked leaves, the
reference's from the member's own tensors, so an error in one step shows in all later ones.
Comparisons run in float64 over 200 steps with warmup and step decay, and require 1e-10
relative agreement per member.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch.nn import functional as F
from torch.optim.lr_scheduler import LambdaLR

from radam.packed import Impl, MemberHparams, PackedOptimizer
from radam.schedules import lr_lambda

STEPS = 200
REL_TOL = 1e-10
STEPS_PER_EPOCH = 40
MILESTONES = (3, 4)  # lr x0.1 at steps 120 and 160

torch.set_num_threads(1)

SHAPES: list[tuple[int, ...]] = [(3, 2, 3, 3), (3,), (4, 3 * 4 * 4), (4,)]


def _forward(ps: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = torch.tanh(F.conv2d(x, ps[0], ps[1], padding=1))
    return F.linear(h.flatten(1), ps[2], ps[3])


@dataclass(frozen=True)
class Member:
    hp: MemberHparams
    warmup: str = "none"
    warmup_steps: int = 0

    def schedule(self) -> Callable[[int], float]:
        return lr_lambda(
            warmup=self.warmup,
            warmup_steps=self.warmup_steps,
            base_lr=self.hp.lr,
            beta2=self.hp.betas[1],
            steps_per_epoch=STEPS_PER_EPOCH,
            milestones=MILESTONES,
        )


def _data(k: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + k)
    x = torch.randn(24, 2, 4, 4, generator=gen, dtype=dtype)
    return x, torch.randint(0, 4, (24,), generator=gen)


def _init(k: int, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(k)
    return [0.5 * torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]


def _loss(ps: Sequence[torch.Tensor], k: int, dtype: torch.dtype) -> torch.Tensor:
    x, y = _data(k, dtype)
    return F.cross_entropy(_forward(ps, x), y)


# Which tensors get no gradient at a step: (step, k) -> bool per tensor index.
NoGrad = Callable[[int, int], bool]


def _no_grad_never(step: int, j: int) -> bool:
    return False


@dataclass
class Run:
    params: list[torch.Tensor]  # per member: its parameters, flattened and concatenated
    start: list[torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _reference(
    members: tuple[Member, ...],
    *,
    steps: int = STEPS,
    dtype: torch.dtype = torch.float64,
    no_grad: NoGrad = _no_grad_never,
    stop: tuple[int | None, ...] | None = None,
) -> Run:
    """Each member on its own: make_optimizer + LambdaLR; member k stops after stop[k] steps."""
    out, start = [], []
    for k, m in enumerate(members):
        ps = [t.requires_grad_() for t in _init(k, dtype)]
        start.append(torch.cat([p.detach().flatten() for p in ps]))
        opt = m.hp.make(ps)
        sched = LambdaLR(opt, m.schedule())
        last = steps if stop is None or stop[k] is None else stop[k]
        for step in range(last):
            opt.zero_grad()
            _loss(ps, k, dtype).backward()
            for j, p in enumerate(ps):
                if no_grad(step, j):
                    p.grad = None
            opt.step()
            sched.step()
        out.append(torch.cat([p.detach().flatten() for p in ps]))
    return Run(out, start)


def _stacked(k: int, dtype: torch.dtype) -> list[torch.Tensor]:
    inits = [_init(i, dtype) for i in range(k)]
    return [torch.stack([inits[i][j] for i in range(k)]).requires_grad_() for j in range(4)]


def _packed_steps(
    opt: PackedOptimizer,
    stacked: list[torch.Tensor],
    members: Sequence[Member],
    steps: range,
    *,
    dtype: torch.dtype = torch.float64,
    no_grad: NoGrad = _no_grad_never,
    freeze_at: dict[int, int] | None = None,
) -> None:
    schedules = [m.schedule() for m in members]
    for step in steps:
        for k, at in (freeze_at or {}).items():
            if step == at:
                opt.freeze(k)
        opt.zero_grad()
        loss = sum(_loss([p[k] for p in stacked], k, dtype) for k in range(len(members)))
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        for j, p in enumerate(stacked):
            if no_grad(step, j):
                p.grad = None
        opt.step([m.hp.lr * s(step) for m, s in zip(members, schedules, strict=True)])


def _packed(
    members: Sequence[Member],
    *,
    steps: int = STEPS,
    dtype: torch.dtype = torch.float64,
    no_grad: NoGrad = _no_grad_never,
    freeze_at: dict[int, int] | None = None,
    impl: Impl = "auto",
) -> tuple[Run, PackedOptimizer]:
    stacked = _stacked(len(members), dtype)
    opt = PackedOptimizer(stacked, [m.hp for m in members], impl=impl)
    start = _flat(stacked)
    _packed_steps(
        opt, stacked, members, range(steps), dtype=dtype, no_grad=no_grad, freeze_at=freeze_at
    )
    return Run(_flat(stacked), start, {"stacked": stacked}), opt


def _flat(stacked: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    k = stacked[0].shape[0]
    return [torch.cat([p.detach()[i].flatten() for p in stacked]).clone() for i in range(k)]


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def _assert_matches(out: Run, ref: Run, *, tol: float = REL_TOL, moved: bool = True) -> None:
    assert len(out.params) == len(ref.params)
    for k, (o, r) in enumerate(zip(out.params, ref.params, strict=True)):
        assert _rel(o, r) < tol, f"member {k}: {_rel(o, r):.3g}"
        if moved:  # agreement is not agreement on doing nothing
            assert _rel(o, out.start[k]) > 0.05, f"member {k} hardly moved"


IMPLS = ["fused", "foreach", "members"]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Impl:
    value: Impl = request.param
    return value


def _hp(name: str, lr: float, **kw: Any) -> MemberHparams:
    return MemberHparams(name=name, lr=lr, **kw)


KIND_PACKS: dict[str, list[Member]] = {
    "radam": [
        Member(_hp("radam", 1e-2, weight_decay=1e-2)),
        Member(_hp("radam", 3e-2), "linear", 40),
        Member(_hp("radam", 3e-3, betas=(0.8, 0.99), eps=1e-6), "untuned_linear"),
    ],
    "adam": [
        Member(_hp("adam", 1e-2, weight_decay=1e-2)),
        Member(_hp("adam", 3e-2), "linear", 40),
        Member(_hp("adam", 3e-3, betas=(0.8, 0.99), eps=1e-6), "untuned_exponential"),
    ],
    "adamw": [
        Member(_hp("adamw", 1e-2, weight_decay=1e-1)),
        Member(_hp("adamw", 3e-2), "linear", 40),
        Member(_hp("adamw", 3e-3, betas=(0.8, 0.99), eps=1e-6), "untuned_linear"),
    ],
    "sgd": [
        Member(_hp("sgd", 1e-1, weight_decay=1e-3)),
        Member(_hp("sgd", 3e-1), "linear", 40),
        Member(_hp("sgd", 3e-2, momentum=0.5)),
        Member(_hp("sgd", 1e-1, momentum=0.0, weight_decay=1e-2)),
    ],
}

MIXED: list[Member] = [
    Member(_hp("radam", 1e-2, weight_decay=1e-4)),
    Member(_hp("adamw", 3e-3, weight_decay=1e-4), "linear", 50),
    Member(_hp("sgd", 1e-1, weight_decay=1e-4)),
    Member(_hp("adam", 1e-2, weight_decay=1e-4), "linear", 20),
    Member(_hp("radam", 3e-2), "linear", 10),
    Member(_hp("sgd", 3e-2), "linear", 30),
]


@pytest.mark.parametrize("kind", list(KIND_PACKS))
def test_each_kind_matches_its_unpacked_optimizers(kind: str, impl: Impl) -> None:
    members = KIND_PACKS[kind]
    out, _ = _packed(members, impl=impl)
    _assert_matches(out, _reference(tuple(members)))


def test_a_mixed_pack_matches_its_unpacked_optimizers(impl: Impl) -> None:
    out, _ = _packed(MIXED, impl=impl)
    _assert_matches(out, _reference(tuple(MIXED)))


def test_frozen_members_stay_put_and_the_others_are_unaffected(impl: Impl) -> None:
    # Member 4 (RAdam) freezes at step 3, before its rectification starts at step 6, while
    # member 0 (RAdam, started together) goes on into rectified steps; member 2 (SGD)
    # freezes at step 120.
    freeze_at = {4: 3, 2: 120}
    steps_before = {k: at for k, at in freeze_at.items()}

    stacked = _stacked(len(MIXED), torch.float64)
    opt = PackedOptimizer(stacked, [m.hp for m in MIXED], impl=impl)
    snapshots: dict[int, tuple[torch.Tensor, dict[str, Any]]] = {}
    schedules_range = range(STEPS)
    for step in schedules_range:
        for k, at in freeze_at.items():
            if step == at:
                opt.freeze(k)
                snapshots[k] = (_flat(stacked)[k], _clone(opt.state_dict()["members"][k]))
        _packed_steps(opt, stacked, MIXED, range(step, step + 1))
    assert opt.active.tolist() == [True, True, False, True, False, True]
    ref = _reference(tuple(MIXED), stop=tuple(steps_before.get(k) for k in range(len(MIXED))))
    out = Run(_flat(stacked), ref.start)
    for k in range(len(MIXED)):
        assert _rel(out.params[k], ref.params[k]) < REL_TOL, k
    for k, (flat, sd) in snapshots.items():
        assert torch.equal(out.params[k], flat), f"frozen member {k} moved"
        _assert_same_state(opt.state_dict()["members"][k], sd)


def _clone(obj: Any) -> Any:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _assert_same_state(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_state(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    else:
        assert a == b


def test_none_and_zero_gradients_are_handled_as_torch_does(impl: Impl) -> None:
    # Tensor 1 (conv bias) has no gradient every third step, so its step count lags the
    # others' (RAdam's r_t and Adam's bias corrections differ between tensors); tensor 3
    # gets an all-zero gradient every fifth step (a step all the same: moments decay).
    # Not at step 0: torch's fused SGD (the reference on the CPU) fails on a first step
    # where some tensors have momentum buffers and others not (torch 2.14.1).
    def no_grad(step: int, j: int) -> bool:
        return j == 1 and step % 3 == 1

    members = MIXED
    ref = _reference(tuple(members), no_grad=no_grad)
    stacked = _stacked(len(members), torch.float64)
    opt = PackedOptimizer(stacked, [m.hp for m in members], impl=impl)
    start = _flat(stacked)
    schedules = [m.schedule() for m in members]
    for step in range(STEPS):
        opt.zero_grad()
        loss = sum(_loss([p[k] for p in stacked], k, torch.float64) for k in range(len(members)))
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        if no_grad(step, 1):
            stacked[1].grad = None
        opt.step([m.hp.lr * s(step) for m, s in zip(members, schedules, strict=True)])
    _assert_matches(Run(_flat(stacked), start), ref)

    # All-zero gradients: the reference, fed zeros for tensor 3 every fifth step.
    def zero_ref() -> list[torch.Tensor]:
        outs = []
        for k, m in enumerate(members):
            ps = [t.requires_grad_() for t in _init(k, torch.float64)]
            o = m.hp.make(ps)
            sched = LambdaLR(o, m.schedule())
            for step in range(100):
                o.zero_grad()
                _loss(ps, k, torch.float64).backward()
                if step % 5 == 0:
                    ps[3].grad.zero_()  # type: ignore[union-attr]
                o.step()
                sched.step()
            outs.append(torch.cat([p.detach().flatten() for p in ps]))
        return outs

    stacked = _stacked(len(members), torch.float64)
    opt = PackedOptimizer(stacked, [m.hp for m in members], impl=impl)
    for step in range(100):
        opt.zero_grad(set_to_none=False)
        loss = sum(_loss([p[k] for p in stacked], k, torch.float64) for k in range(len(members)))
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        if step % 5 == 0:
            stacked[3].grad.zero_()  # type: ignore[union-attr]
        opt.step([m.hp.lr * s(step) for m, s in zip(members, schedules, strict=True)])
    for k, (o, r) in enumerate(zip(_flat(stacked), zero_ref(), strict=True)):
        assert _rel(o, r) < REL_TOL, k


@pytest.mark.parametrize(
    ("impl", "impl2"),
    [
        ("fused", "fused"),
        ("foreach", "foreach"),
        ("members", "members"),
        ("members", "fused"),
        ("fused", "foreach"),
        ("foreach", "members"),
    ],
)
def test_a_resumed_pack_equals_the_uninterrupted_one_and_members_unpack(
    impl: Impl, impl2: Impl
) -> None:
    # Saved by one impl, resumed by either: the state dict is the same.
    members = MIXED
    full, _ = _packed(members, freeze_at={2: 50}, impl=impl2)

    stacked = _stacked(len(members), torch.float64)
    opt = PackedOptimizer(stacked, [m.hp for m in members], impl=impl)
    _packed_steps(opt, stacked, members, range(120), freeze_at={2: 50})
    saved = _clone({"opt": opt.state_dict(), "params": [p.detach() for p in stacked]})

    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt2 = PackedOptimizer(resumed, [m.hp for m in members], impl=impl2)
    opt2.load_state_dict(_clone(saved["opt"]))  # torch's load_state_dict keeps the tensors
    assert opt2.active.tolist() == opt.active.tolist()
    _packed_steps(opt2, resumed, members, range(120, STEPS))
    for k, (o, r) in enumerate(zip(_flat(resumed), full.params, strict=True)):
        if impl == impl2:
            assert torch.equal(o, r), f"member {k} differs after resume"
        else:  # the first 120 steps ran on the other impl
            assert _rel(o, r) < REL_TOL, f"member {k} differs after resume"

    # A member's state is its unpacked optimizer's: member 0 goes on alone from step 120.
    k = 0
    ps = [p[k].clone().requires_grad_() for p in saved["params"]]
    alone = members[k].hp.make(ps)
    alone.load_state_dict(saved["opt"]["members"][k])
    schedule = members[k].schedule()
    for step in range(120, STEPS):
        for group in alone.param_groups:
            group["lr"] = members[k].hp.lr * schedule(step)
        alone.zero_grad()
        _loss(ps, k, torch.float64).backward()
        alone.step()
    flat = torch.cat([p.detach().flatten() for p in ps])
    assert _rel(flat, full.params[k]) < REL_TOL


def test_bad_arguments_raise_value_errors_naming_the_field() -> None:
    with pytest.raises(ValueError, match="Invalid name: 'lamb'; known: radam, adam"):
        MemberHparams(name="lamb", lr=0.1)
    for kw, field_name in [
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay"),
        ({"lr": 0.1, "momentum": -0.9}, "momentum"),
        ({"lr": 0.1, "betas": (0.9, 1.0)}, "betas"),
        ({"lr": 0.1, "betas": (0.9,)}, "betas"),
        ({"lr": 0.1, "eps": -1e-8}, "eps"),
    ]:
        with pytest.raises(ValueError, match=f"Invalid {field_name}: "):
            MemberHparams(name="adam", **kw)
    stacked = _stacked(2, torch.float64)
    hps = [_hp("adam", 0.1), _hp("sgd", 0.1)]
    with pytest.raises(ValueError, match="Invalid members: an empty pack"):
        PackedOptimizer(stacked, [])
    with pytest.raises(ValueError, match="Invalid params: no tensors"):
        PackedOptimizer([], hps)
    with pytest.raises(ValueError, match=r"Invalid params\[1\]: shape \(3, 3\) does not stack 2"):
        PackedOptimizer([stacked[0], torch.zeros(3, 3, requires_grad=True)], hps)
    with pytest.raises(ValueError, match=r"Invalid params\[0\]: can't optimize a non-leaf"):
        PackedOptimizer([stacked[0] * 2], hps)
    opt = PackedOptimizer(stacked, hps)
    with pytest.raises(ValueError, match="Invalid lrs: 3 learning rates for 2 members"):
        opt.step([0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"Invalid learning rate: -0.1 \(member 1\)"):
        opt.step(torch.tensor([0.1, -0.1], dtype=torch.float64))
    with pytest.raises(IndexError, match="Invalid member index: 2"):
        opt.freeze(2)
    opt.freeze(1)
    opt.step([0.1, -0.1])  # a frozen member's lr is not looked at


def test_float32_agreement_with_the_unpacked_optimizers() -> None:
    # The fused impl runs the unpacked optimizers' own kernels on the members' views: bit
    # for bit the same in float32. The foreach impl rounds differently (the lr enters as a
    # tensor, the update in separate operations): within 1e-5 relative after 200 steps
    # (measured: at most 4.4e-7 on this problem, torch 2.14.1, CPU).
    ref = _reference(tuple(MIXED), dtype=torch.float32)
    fused, _ = _packed(MIXED, dtype=torch.float32, impl="fused")
    for k, (o, r) in enumerate(zip(fused.params, ref.params, strict=True)):
        assert torch.equal(o, r), f"member {k}: {_rel(o, r):.3g}"
    foreach, _ = _packed(MIXED, dtype=torch.float32, impl="foreach")
    _assert_matches(foreach, ref, tol=1e-5)


def test_members_of_a_kind_with_one_lr_share_one_fused_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real_kernel = torch._fused_adamw_

    def counting(params: list[torch.Tensor], *args: Any, **kwargs: Any) -> None:
        calls.append(len(params))
        real_kernel(params, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adamw_", counting)
    # Members 0, 1 and 3 are AdamW at one lr (a run 0-1 and a run 3), member 2 another lr.
    members = [Member(_hp("adamw", 1e-2)), Member(_hp("adamw", 1e-2))]
    members += [Member(_hp("adamw", 3e-3)), Member(_hp("adamw", 1e-2))]
    out, opt = _packed(members, steps=5, impl="fused")
    assert calls == [2 * 4, 1 * 4] * 5  # views: runs x tensors, per distinct lr, per step
    _assert_matches(out, _reference(tuple(members), steps=5), moved=False)
    opt.freeze(1)
    calls.clear()
    _packed_steps(opt, out.extra["stacked"], members, range(5, 6))
    assert calls == [2 * 4, 1 * 4]  # members 0 and 3 (two runs of one), then member 2


def test_loading_a_state_of_other_members_or_hyperparameters_fails() -> None:
    stacked = _stacked(2, torch.float64)
    opt = PackedOptimizer(stacked, [_hp("adam", 0.1), _hp("sgd", 0.1)])
    sd = opt.state_dict()
    other = PackedOptimizer(stacked, [_hp("adam", 0.1, eps=1e-6), _hp("sgd", 0.1)])
    with pytest.raises(ValueError, match=r"member 0 was saved with eps=1e-08, this pack has"):
        other.load_state_dict(sd)
    three = PackedOptimizer(_stacked(3, torch.float64), [_hp("adam", 0.1)] * 3)
    with pytest.raises(ValueError, match="2 members' states for a pack of 3"):
        three.load_state_dict(sd)
    with pytest.raises(ValueError, match="Invalid impl: 'fast'"):
        PackedOptimizer(stacked, [_hp("adam", 0.1)] * 2, impl="fast")  # type: ignore[arg-type]
    ints = [torch.zeros(2, 3, dtype=torch.complex64, requires_grad=True)]
    with pytest.raises(ValueError, match="Invalid impl: 'fused' needs floating point"):
        PackedOptimizer(ints, [_hp("adam", 0.1)] * 2, impl="fused")


@pytest.mark.parametrize("impl", IMPLS)
def test_tensors_of_different_dtypes_in_one_pack(impl: Impl) -> None:
    # A float32 tensor among float64 ones: kernels take one dtype per call, so the pack
    # groups by dtype as torch's optimizers do; gradients depend on the parameters.
    hps = [_hp("radam", 1e-2), _hp("adamw", 1e-2), _hp("sgd", 1e-1), _hp("adam", 3e-3)]
    dtypes = [torch.float64, torch.float32, torch.float64]

    def grads(ps: Sequence[torch.Tensor]) -> None:
        for p in ps:
            p.grad = torch.sin(3 * p.detach()) + 0.1 * p.detach()

    gen = torch.Generator().manual_seed(0)
    stacked = [torch.randn(4, 5, 3, generator=gen).to(d).requires_grad_() for d in dtypes]
    alone = [[p[k].detach().clone().requires_grad_() for p in stacked] for k in range(4)]
    opt = PackedOptimizer(stacked, hps, impl=impl)
    refs = [hp.make(ps) for hp, ps in zip(hps, alone, strict=True)]
    for _ in range(60):
        grads(stacked)
        opt.step([hp.lr for hp in hps])
        for ref, ps in zip(refs, alone, strict=True):
            grads(ps)
            ref.step()
    for k in range(4):
        for p, q in zip(stacked, alone[k], strict=True):
            tol = REL_TOL if p.dtype == torch.float64 else 1e-5
            assert _rel(p.detach()[k], q.detach()) < tol, (k, p.dtype)


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_sgd_with_a_tensor_that_has_no_gradient_at_the_first_step(impl: Impl) -> None:
    # torch 2.14.1's fused SGD (make_optimizer's on the CPU) fails when some tensors have a
    # momentum buffer at a step and others not; the pack starts each tensor's buffer at its
    # first gradient, as torch's per-tensor SGD does.
    gen = torch.Generator().manual_seed(0)
    stacked = [torch.randn(2, 6, generator=gen, dtype=torch.float64).requires_grad_()]
    stacked.append(torch.randn(2, 3, generator=gen, dtype=torch.float64).requires_grad_())
    alone = [[p[k].detach().clone().requires_grad_() for p in stacked] for k in range(2)]
    hps = [_hp("sgd", 0.1, weight_decay=1e-2), _hp("sgd", 0.03, momentum=0.5)]
    opt = PackedOptimizer(stacked, hps, impl=impl)
    refs = [  # torch's per-tensor SGD (its CPU default when fused is not asked for)
        torch.optim.SGD(ps, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        for hp, ps in zip(hps, alone, strict=True)
    ]
    for step in range(30):
        for ps in [stacked, *alone]:
            for j, p in enumerate(ps):
                p.grad = None if j == 1 and step < 2 else torch.cos(p.detach()) - 0.5
        opt.step([hp.lr for hp in hps])
        for ref in refs:
            ref.step()
    for k in range(2):
        for p, q in zip(stacked, alone[k], strict=True):
            assert _rel(p.detach()[k], q.detach()) < REL_TOL
