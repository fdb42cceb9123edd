"""Warmup and decay multipliers: exact values at chosen steps, and LambdaLR on a real optimizer."""

from __future__ import annotations

import itertools
import math
import pickle
from typing import Any

import pytest
import torch

from radam.schedules import (
    CIFAR_MILESTONES,
    WARMUPS,
    LrLambda,
    linear_warmup,
    lr_lambda,
    step_decay,
    untuned_exponential_warmup,
    untuned_linear_warmup,
    warmup_length,
)


def authors_adamw_lr(t: int, *, lr: float, warmup: int) -> float:
    """The authors' AdamW (RAdam repo, cifar_imagenet/utils/radam.py), t from 1 at the first update."""
    return 1e-6 + t * (lr - 1e-6) / warmup if warmup > t else lr


def test_contract_names() -> None:
    assert WARMUPS == ("none", "linear", "untuned_linear", "untuned_exponential")
    assert CIFAR_MILESTONES == (81, 122)


@pytest.mark.parametrize("step", [0, 1, 2, 99, 198, 199, 200, 5000])
def test_linear_warmup_matches_the_authors_adamw(step: int) -> None:
    lr, warmup = 0.1, 200
    expected = authors_adamw_lr(step + 1, lr=lr, warmup=warmup)
    assert linear_warmup(step, warmup_steps=warmup, base_lr=lr) * lr == pytest.approx(
        expected, rel=1e-12
    )


def test_linear_warmup_exact_values() -> None:
    # First update: 1e-6 + 1 * (0.1 - 1e-6) / 100, as a multiplier of 0.1.
    assert linear_warmup(0, warmup_steps=100, base_lr=0.1) == pytest.approx(
        (1e-6 + (0.1 - 1e-6) / 100) / 0.1, rel=1e-12
    )
    # Halfway (t = 50): 1e-6 + 0.5 * (0.1 - 1e-6).
    assert linear_warmup(49, warmup_steps=100, base_lr=0.1) == pytest.approx(
        (1e-6 + 0.5 * (0.1 - 1e-6)) / 0.1, rel=1e-12
    )
    assert linear_warmup(98, warmup_steps=100, base_lr=0.1) < 1.0
    assert linear_warmup(99, warmup_steps=100, base_lr=0.1) == 1.0  # t = warmup: full lr
    assert linear_warmup(0, warmup_steps=1, base_lr=0.1) == 1.0  # a 1-step warmup is no warmup


def test_linear_warmup_is_increasing_to_one() -> None:
    factors = [linear_warmup(s, warmup_steps=50, base_lr=3e-4) for s in range(60)]
    assert all(a < b for a, b in itertools.pairwise(factors[:50]))
    assert factors[49:] == [1.0] * 11


@pytest.mark.parametrize("beta2", [0.999, 0.99])
def test_untuned_linear_warmup_exact_values(beta2: float) -> None:
    length = 2 / (1 - beta2)  # 2000 iterations for 0.999, 200 for 0.99
    assert untuned_linear_warmup(0, beta2=beta2) == pytest.approx((1 - beta2) / 2, rel=1e-12)
    assert untuned_linear_warmup(9, beta2=beta2) == pytest.approx(10 * (1 - beta2) / 2, rel=1e-12)
    half = round(length / 2)
    assert untuned_linear_warmup(half - 1, beta2=beta2) == pytest.approx(0.5, rel=1e-9)
    assert untuned_linear_warmup(round(length) - 1, beta2=beta2) == pytest.approx(1.0, rel=1e-9)
    assert untuned_linear_warmup(round(length) + 10, beta2=beta2) == 1.0
    assert warmup_length("untuned_linear", beta2=beta2) == pytest.approx(length)


def test_untuned_exponential_warmup_exact_values() -> None:
    beta2 = 0.999
    assert untuned_exponential_warmup(0, beta2=beta2) == pytest.approx(
        1 - math.exp(-0.001), rel=1e-12
    )
    # t = 1/(1 - beta2) = 1000 is the time constant: 1 - 1/e.
    assert untuned_exponential_warmup(999, beta2=beta2) == pytest.approx(1 - math.exp(-1), rel=1e-9)
    assert untuned_exponential_warmup(9999, beta2=beta2) == pytest.approx(
        1 - math.exp(-10), rel=1e-9
    )
    assert untuned_exponential_warmup(10**6, beta2=beta2) == 1.0


def test_step_decay_at_the_papers_cifar_milestones() -> None:
    spe = 391  # CIFAR-10 at batch size 128
    kwargs: dict[str, Any] = {"steps_per_epoch": spe, "milestones": CIFAR_MILESTONES, "gamma": 0.1}
    assert step_decay(0, **kwargs) == 1.0
    assert step_decay(81 * spe - 1, **kwargs) == 1.0  # last iteration of epoch index 80
    assert step_decay(81 * spe, **kwargs) == pytest.approx(0.1)  # first of epoch index 81
    assert step_decay(122 * spe - 1, **kwargs) == pytest.approx(0.1)
    assert step_decay(122 * spe, **kwargs) == pytest.approx(0.01)
    assert step_decay(164 * spe - 1, **kwargs) == pytest.approx(0.01)


def test_step_decay_matches_torch_multisteplr_per_epoch() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3, 5], gamma=0.5)
    spe = 4
    for epoch in range(8):
        expected = optimizer.param_groups[0]["lr"]
        for step in range(epoch * spe, (epoch + 1) * spe):
            ours = 0.1 * step_decay(step, steps_per_epoch=spe, milestones=(3, 5), gamma=0.5)
            assert ours == pytest.approx(expected, rel=1e-12)
        optimizer.step()
        reference.step()


def test_lr_lambda_drives_lambdalr_on_a_real_optimizer() -> None:
    """The lr each optimizer update sees is the paper's warmup times the step decay."""
    base_lr, warmup, spe = 0.1, 6, 4
    schedule = lr_lambda(
        warmup="linear",
        warmup_steps=warmup,
        base_lr=base_lr,
        beta2=0.999,
        steps_per_epoch=spe,
        milestones=(2,),
        gamma=0.1,
    )
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    expected = [
        authors_adamw_lr(t, lr=base_lr, warmup=warmup) * (0.1 if (t - 1) // spe >= 2 else 1.0)
        for t in range(1, 13)
    ]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[0] == pytest.approx(1e-6 + (0.1 - 1e-6) / 6, rel=1e-12)  # the first update


@pytest.mark.parametrize("warmup", WARMUPS)
def test_lr_lambda_composes_warmup_and_decay(warmup: str) -> None:
    schedule = lr_lambda(
        warmup=warmup,
        warmup_steps=10 if warmup == "linear" else 0,
        base_lr=0.01,
        beta2=0.99,
        steps_per_epoch=100,
        milestones=(3, 5),
        gamma=0.2,
    )
    assert isinstance(schedule, LrLambda)
    for step in (0, 5, 150, 299, 300, 499, 500, 10_000):
        warm = {
            "none": 1.0,
            "linear": linear_warmup(step, warmup_steps=10, base_lr=0.01),
            "untuned_linear": untuned_linear_warmup(step, beta2=0.99),
            "untuned_exponential": untuned_exponential_warmup(step, beta2=0.99),
        }[warmup]
        decay = step_decay(step, steps_per_epoch=100, milestones=(3, 5), gamma=0.2)
        assert schedule(step) == pytest.approx(warm * decay, rel=1e-12)
    assert schedule(10_000) == pytest.approx(0.04, rel=1e-9)  # warmed up, decayed twice


def test_lr_lambda_pickles_for_ray() -> None:
    schedule = lr_lambda(
        warmup="untuned_exponential",
        warmup_steps=0,
        base_lr=1e-3,
        beta2=0.999,
        steps_per_epoch=50,
        milestones=CIFAR_MILESTONES,
        gamma=0.1,
    )
    copy = pickle.loads(pickle.dumps(schedule))
    assert copy == schedule
    assert [copy(s) for s in (0, 100, 4049, 4050)] == [schedule(s) for s in (0, 100, 4049, 4050)]


def test_untuned_kinds_ignore_warmup_steps() -> None:
    common: dict[str, Any] = {
        "base_lr": 0.1,
        "beta2": 0.999,
        "steps_per_epoch": 10,
        "milestones": (),
        "gamma": 0.1,
    }
    a = lr_lambda(warmup="untuned_linear", warmup_steps=0, **common)
    b = lr_lambda(warmup="untuned_linear", warmup_steps=500, **common)
    assert a(42) == b(42) == pytest.approx(43 * 0.001 / 2)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"warmup": "cosine"}, "warmup"),
        ({"warmup": "linear", "warmup_steps": 0}, "warmup_steps"),
        ({"warmup": "none", "warmup_steps": -1}, "warmup_steps"),
        ({"warmup": "none", "base_lr": 0.0}, "base_lr"),
        ({"warmup": "untuned_linear", "beta2": 1.0}, "beta2"),
        ({"warmup": "untuned_exponential", "beta2": -0.1}, "beta2"),
        ({"warmup": "none", "steps_per_epoch": 0}, "steps_per_epoch"),
        ({"warmup": "none", "milestones": (-1,)}, "milestones"),
        ({"warmup": "none", "gamma": 0.0}, "gamma"),
        ({"warmup": "linear", "warmup_steps": 5, "init_lr": -1.0}, "init_lr"),
    ],
)
def test_lr_lambda_rejects_bad_arguments_by_name(kwargs: dict[str, object], argument: str) -> None:
    full: dict[str, object] = {
        "warmup_steps": 0,
        "base_lr": 0.1,
        "beta2": 0.999,
        "steps_per_epoch": 10,
        "milestones": (),
        "gamma": 0.1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=argument):
        lr_lambda(**full)  # type: ignore[arg-type]


def test_functions_reject_bad_arguments_by_name() -> None:
    with pytest.raises(ValueError, match="step"):
        linear_warmup(-1, warmup_steps=10, base_lr=0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup(0, warmup_steps=0, base_lr=0.1)
    with pytest.raises(ValueError, match="beta2"):
        untuned_linear_warmup(0, beta2=1.5)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        step_decay(0, steps_per_epoch=0, milestones=(), gamma=0.1)
    with pytest.raises(ValueError, match="warmup"):
        warmup_length("cosine")


def test_warmup_length() -> None:
    assert warmup_length("none") == 0.0
    assert warmup_length("linear", warmup_steps=300) == 300.0
    assert warmup_length("untuned_linear", beta2=0.999) == pytest.approx(2000.0)
    assert warmup_length("untuned_exponential", beta2=0.999) == pytest.approx(1000.0)
