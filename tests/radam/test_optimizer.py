"""RAdam against torch.optim.RAdam, against Algorithm 2 as printed, and across a resume.

Every comparison runs in float64 for 500 steps on a small real problem (an MLP on fixed
data, gradients from autograd) whose gradients depend on the parameters, so an error in one
step shows in all later ones.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from radam import RAdam
from radam.functional import rectification
from radam.optimizer import choose_path

STEPS = 500
REL_TOL = 1e-10
PATHS: dict[str, dict[str, bool]] = {
    "single": {"foreach": False, "fused": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}

torch.set_num_threads(1)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()


_gen = torch.Generator().manual_seed(1)
_X = torch.randn(48, 6, generator=_gen, dtype=torch.float64)
_Y = torch.randint(0, 3, (48,), generator=_gen)


def _loss(model: nn.Module) -> torch.Tensor:
    return nn.functional.cross_entropy(model(_X), _Y)


def _groups(model: nn.Module, *, several: bool) -> list[dict[str, Any]]:
    first, second = model[0], model[2]
    if not several:
        return [{"params": list(model.parameters())}]
    return [
        {"params": list(first.parameters()), "lr": 3e-3, "weight_decay": 0.05},
        {"params": list(second.parameters())},
    ]


def _train(
    make_opt: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    *,
    several: bool = False,
    steps: int = STEPS,
) -> torch.Tensor:
    model = _mlp()
    opt = make_opt(_groups(model, several=several))
    for _ in range(steps):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "coupled_decay": {"weight_decay": 0.1},
    "decoupled_decay": {"weight_decay": 0.1, "decoupled_weight_decay": True},
    "maximize": {"maximize": True},
    "coupled_maximize": {"weight_decay": 0.1, "maximize": True},
    "decoupled_maximize": {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
}


@pytest.mark.parametrize("several", [False, True], ids=["one_group", "several_groups"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("path", list(PATHS))
def test_each_path_matches_torch_radam_in_float64(path: str, option: str, several: bool) -> None:
    kw = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, **OPTIONS[option]}
    out = _train(lambda g: RAdam(g, **PATHS[path], **kw), several=several)
    assert _rel(out, _torch_reference(option, several)) < REL_TOL
    # The run moved far from the start, so agreement is not agreement on doing nothing.
    start = _train(lambda g: RAdam(g, **kw), steps=0)
    assert _rel(out, start) > 0.05


@functools.cache
def _torch_reference(option: str, several: bool) -> torch.Tensor:
    kw = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, **OPTIONS[option]}
    return _train(lambda g: torch.optim.RAdam(g, foreach=False, **kw), several=several)


def test_default_is_fused_on_cpu_and_respects_the_switches() -> None:
    floats = [torch.zeros(3, dtype=torch.float64), torch.zeros(2)]
    assert choose_path(floats, foreach=None, fused=None) == "fused"
    assert choose_path(floats, foreach=True, fused=None) == "foreach"
    assert choose_path(floats, foreach=False, fused=None) == "single"
    # torch has no foreach kernels for the CPU, so without fusion the loop is fastest there.
    assert choose_path(floats, foreach=None, fused=False) == "single"
    assert choose_path([torch.zeros(2, dtype=torch.complex128)], foreach=None, fused=None) in (
        "foreach",
        "single",
    )
    with pytest.raises(RuntimeError, match="fused=True"):
        choose_path([torch.zeros(2, dtype=torch.complex64)], foreach=None, fused=True)


def test_fused_path_runs_torchs_fused_kernel_for_every_rectified_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []
    real_kernel = torch._fused_adamw_

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs["lr"])
        real_kernel(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adamw_", counting)
    kw = {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}
    out = _train(lambda g: RAdam(g, **kw), steps=50)
    first_rectified = next(t for t in range(1, 50) if rectification(t, beta2=0.999, threshold=5.0))
    assert first_rectified == 6
    assert len(calls) == 50 - first_rectified + 1
    assert calls[0] < calls[-1] < 1e-2  # lr * r_t, r_t rising towards 1
    ref = _train(lambda g: torch.optim.RAdam(g, foreach=False, **kw), steps=50)
    assert _rel(out, ref) < REL_TOL


def test_float32_default_path_matches_torch_radam() -> None:
    torch.manual_seed(0)
    shapes = [(64, 32), (32,), (10, 64), (10,)]
    params = [torch.randn(s) for s in shapes]
    ours = [p.clone() for p in params]
    opt_ref = torch.optim.RAdam(params, lr=1e-3, weight_decay=0.01)
    opt = RAdam(ours, lr=1e-3, weight_decay=0.01)
    for step in range(100):
        gen = torch.Generator().manual_seed(step)
        for p, q in zip(params, ours, strict=True):
            q.grad = torch.randn(q.shape, generator=gen)
            p.grad = q.grad.clone()
        opt_ref.step()
        opt.step()
    for p, q in zip(params, ours, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", list(PATHS))
def test_tensors_with_different_step_counts_match_torch(path: str) -> None:
    # The second tensor has a gradient only every third step, so its step count lags and
    # its r_t differs from the first's within one step() call.
    def run(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> list[torch.Tensor]:
        torch.manual_seed(0)
        a = torch.randn(20, dtype=torch.float64)
        b = torch.randn(7, dtype=torch.float64)
        opt = make([a, b])
        for step in range(200):
            a.grad = torch.sin(a) + 0.1 * a
            b.grad = torch.cos(b) - 0.2 * b if step % 3 == 0 else None
            opt.step()
        return [a, b]

    ref = run(lambda ps: torch.optim.RAdam(ps, lr=1e-2, weight_decay=0.01, foreach=False))
    out = run(lambda ps: RAdam(ps, lr=1e-2, weight_decay=0.01, **PATHS[path]))
    for o, r in zip(out, ref, strict=True):
        assert _rel(o, r) < REL_TOL


def test_complex_parameters_match_torch() -> None:
    def run(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> torch.Tensor:
        torch.manual_seed(0)
        z = torch.randn(16, dtype=torch.complex128)
        opt = make([z])
        for _ in range(100):
            z.grad = z * z.conj() * z - (1 + 2j)
            opt.step()
        return torch.view_as_real(z)

    ref = run(lambda ps: torch.optim.RAdam(ps, lr=1e-2, foreach=False))
    assert _rel(run(lambda ps: RAdam(ps, lr=1e-2)), ref) < REL_TOL


# --- Algorithm 2, transcribed line by line in numpy ------------------------------------------


def _objective_grad(theta: np.ndarray, target: np.ndarray) -> np.ndarray:
    # A non-convex objective whose gradient depends on theta.
    return (theta - target) * (1.0 + 0.5 * np.cos(theta)) + 0.3 * np.sin(3.0 * theta)


def _algorithm2(
    theta0: np.ndarray,
    target: np.ndarray,
    *,
    steps: int,
    alpha: float,
    beta1: float,
    beta2: float,
    threshold: float,
    degenerate_to_sgd: bool,
    decay: float,
) -> np.ndarray:
    """Liu et al. 2019, Algorithm 2 (eps = 0, as printed), with the authors' code's options:
    a decoupled decay and, when not degenerating to SGD, no update before rectification.
    Returns the iterates of every step, stacked: the objective has minima both runs would
    settle in, so only the whole trajectory tells the variants apart."""
    theta = theta0.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    trajectory = []
    for t in range(1, steps + 1):
        g = _objective_grad(theta, target)
        v = beta2 * v + (1.0 - beta2) * g**2
        m = beta1 * m + (1.0 - beta1) * g
        m_hat = m / (1.0 - beta1**t)
        rho_t = rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)
        if rho_t > threshold:
            l_t = np.sqrt((1.0 - beta2**t) / v)
            r_t = np.sqrt(
                (rho_t - 4.0)
                * (rho_t - 2.0)
                * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
            )
            theta = theta * (1.0 - alpha * decay) - alpha * r_t * m_hat * l_t
        elif degenerate_to_sgd:
            theta = theta * (1.0 - alpha * decay) - alpha * m_hat
        trajectory.append(theta)
    return np.stack(trajectory)


def _radam_on_objective(
    theta0: np.ndarray, target: np.ndarray, *, steps: int, **kwargs: Any
) -> np.ndarray:
    """This RAdam on the same objective; the iterates of every step, stacked."""
    theta = torch.tensor(theta0)
    target_t = torch.tensor(target)
    opt = RAdam([theta], eps=0.0, decoupled_weight_decay=True, **kwargs)
    trajectory = []
    for _ in range(steps):
        theta.grad = (theta - target_t) * (1.0 + 0.5 * torch.cos(theta)) + 0.3 * torch.sin(
            3.0 * theta
        )
        opt.step()
        trajectory.append(theta.numpy().copy())
    return np.stack(trajectory)


ALGORITHM2_CASES = {
    "paper_threshold_4": {"threshold": 4.0, "degenerate_to_sgd": True, "decay": 0.0},
    "torch_threshold_5": {"threshold": 5.0, "degenerate_to_sgd": True, "decay": 0.0},
    "no_sgd_threshold_4": {"threshold": 4.0, "degenerate_to_sgd": False, "decay": 0.0},
    "no_sgd_threshold_5_decay": {"threshold": 5.0, "degenerate_to_sgd": False, "decay": 0.05},
}


@pytest.mark.parametrize("case", list(ALGORITHM2_CASES))
@pytest.mark.parametrize("path", list(PATHS))
def test_matches_a_transcription_of_algorithm_2(path: str, case: str) -> None:
    c = ALGORITHM2_CASES[case]
    rng = np.random.default_rng(3)
    theta0 = rng.normal(size=40)
    target = rng.normal(size=40) * 2.0
    hyper = {"alpha": 0.03, "beta1": 0.9, "beta2": 0.99}
    want = _algorithm2(theta0, target, steps=STEPS, **hyper, **c)
    got = _radam_on_objective(
        theta0,
        target,
        steps=STEPS,
        lr=hyper["alpha"],
        betas=(hyper["beta1"], hyper["beta2"]),
        weight_decay=c["decay"],
        rectify_threshold=c["threshold"],
        degenerate_to_sgd=c["degenerate_to_sgd"],
        **PATHS[path],
    )
    assert np.abs(got - want).max() / np.abs(want).max() < REL_TOL
    assert np.abs(got[-1] - theta0).max() > 0.1
    # The comparison tells the variants apart: the other threshold and the other fallback
    # are off by far more than the tolerance.
    for other in (
        {**c, "threshold": 9.0 - c["threshold"]},
        {**c, "degenerate_to_sgd": not c["degenerate_to_sgd"]},
    ):
        wrong = _algorithm2(theta0, target, steps=STEPS, **hyper, **other)
        assert np.abs(got - wrong).max() / np.abs(want).max() > 1e-4


def test_threshold_4_rectifies_one_step_earlier_than_5() -> None:
    # For beta2 = 0.999, rho_5 is about 4.99: Algorithm 2 (> 4) rectifies at t = 5, torch's
    # practice (> 5) at t = 6.
    assert rectification(4, beta2=0.999, threshold=4.0) is None
    assert rectification(5, beta2=0.999, threshold=4.0) is not None
    assert rectification(5, beta2=0.999, threshold=5.0) is None
    assert rectification(6, beta2=0.999, threshold=5.0) is not None
    r = rectification(10**6, beta2=0.999, threshold=5.0)
    assert r is not None and math.isclose(r, 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("path", list(PATHS))
def test_without_sgd_fallback_parameters_wait_but_moments_move(path: str) -> None:
    theta = torch.ones(5, dtype=torch.float64)
    opt = RAdam(
        [theta],
        lr=0.1,
        weight_decay=0.5,
        decoupled_weight_decay=True,
        degenerate_to_sgd=False,
        **PATHS[path],
    )
    for _ in range(5):  # steps 1..5: rho_t <= 5
        theta.grad = torch.full_like(theta, 2.0)
        opt.step()
    assert torch.equal(theta, torch.ones(5, dtype=torch.float64))
    assert opt.state[theta]["exp_avg"].abs().min() > 0
    theta.grad = torch.full_like(theta, 2.0)
    opt.step()
    assert (theta < 1.0).all()


# --- state dicts and resume ------------------------------------------------------------------


def _run_resumable(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    *,
    steps: int,
    stop_at: int | None,
    load_into: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None = None,
) -> torch.Tensor:
    model = _mlp()
    opt = make(list(model.parameters()))
    for step in range(steps):
        if step == stop_at:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
            buffer.seek(0)
            saved = torch.load(buffer)
            model = _mlp()
            model.load_state_dict(saved["model"])
            opt = (load_into or make)(list(model.parameters()))
            opt.load_state_dict(saved["opt"])
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("stop_at", [3, 40], ids=["before_rectification", "after"])
@pytest.mark.parametrize("path", list(PATHS))
def test_resumed_run_equals_uninterrupted_run(path: str, stop_at: int) -> None:
    def make(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
        return RAdam(ps, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, **PATHS[path])

    whole = _run_resumable(make, steps=60, stop_at=None)
    resumed = _run_resumable(make, steps=60, stop_at=stop_at)
    assert torch.equal(whole, resumed)


def test_state_dict_moves_between_torch_radam_and_this_one() -> None:
    def ours(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
        return RAdam(ps, lr=1e-2, weight_decay=0.1)

    def theirs(ps: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.RAdam(ps, lr=1e-2, weight_decay=0.1, foreach=False)

    reference = _run_resumable(theirs, steps=60, stop_at=None)
    assert _rel(_run_resumable(theirs, steps=60, stop_at=20, load_into=ours), reference) < REL_TOL
    assert _rel(_run_resumable(ours, steps=60, stop_at=20, load_into=theirs), reference) < REL_TOL

    model = _mlp()
    opt = ours(list(model.parameters()))
    _loss(model).backward()
    opt.step()
    state = opt.state_dict()["state"][0]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["step"].item() == 1.0


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1e-3}, "Invalid learning rate: -0.001"),
        ({"lr": float("nan")}, "Invalid learning rate"),
        ({"lr": torch.tensor([1e-3, 1e-3])}, "Invalid learning rate"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0"),
        ({"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        ({"eps": -1e-8}, "Invalid epsilon value"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
        ({"rectify_threshold": 3.9}, "Invalid rectify_threshold: 3.9"),
        ({"rectify_threshold": float("nan")}, "Invalid rectify_threshold"),
        ({"foreach": True, "fused": True}, "cannot both be True"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RAdam([torch.zeros(2, requires_grad=True)], **kwargs)


def test_accepts_the_edges() -> None:
    RAdam([torch.zeros(2)], lr=0.0, betas=(0.0, 0.0), eps=0.0, rectify_threshold=4.0)


def test_rejects_sparse_gradients() -> None:
    embedding = nn.Embedding(10, 3, sparse=True)
    opt = RAdam(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()


@pytest.mark.parametrize("path", list(PATHS))
def test_follows_a_learning_rate_schedule_like_torch(path: str) -> None:
    # A LambdaLR warmup rewrites group["lr"] every step; each step must read it afresh.
    def warmup(step: int) -> float:
        return min(1.0, (step + 1) / 50)

    def run(make: Callable[[list[dict[str, Any]]], torch.optim.Optimizer]) -> torch.Tensor:
        model = _mlp()
        opt = make(_groups(model, several=True))
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup)
        for _ in range(120):
            opt.zero_grad()
            _loss(model).backward()
            opt.step()
            schedule.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    ref = run(lambda g: torch.optim.RAdam(g, lr=1e-2, foreach=False))
    assert _rel(run(lambda g: RAdam(g, lr=1e-2, **PATHS[path])), ref) < REL_TOL
