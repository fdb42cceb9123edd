"""make_optimizer: the right optimizer, decay convention and path for each name."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from radam import OPTIMIZERS, RAdam, make_optimizer
from radam.optimizer import choose_path

torch.set_num_threads(1)


def test_names() -> None:
    assert OPTIMIZERS == ("radam", "adam", "adamw", "sgd")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("radam", RAdam),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
    ],
)
def test_each_name_builds_its_optimizer_with_the_hyperparameters(name: str, cls: type) -> None:
    model = nn.Linear(4, 2)
    opt = make_optimizer(
        name,
        model.parameters(),
        lr=0.05,
        weight_decay=5e-4,
        momentum=0.8,
        betas=(0.8, 0.99),
        eps=1e-6,
    )
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert len(group["params"]) == 2  # a generator of parameters is taken in full
    assert (group["lr"], group["weight_decay"]) == (0.05, 5e-4)
    if name == "sgd":
        assert group["momentum"] == 0.8
    else:
        assert (group["betas"], group["eps"]) == ((0.8, 0.99), 1e-6)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'lamb'; known: radam, adam, adamw, sgd"):
        make_optimizer("lamb", [torch.zeros(1)], lr=0.1)


def test_invalid_hyperparameters_raise_the_optimizers_value_error() -> None:
    for name in OPTIMIZERS:
        with pytest.raises(ValueError, match="Invalid learning rate"):
            make_optimizer(name, [torch.zeros(1)], lr=-0.1)


def test_fastest_paths_on_cpu() -> None:
    params = [torch.zeros(3, requires_grad=True)]
    assert make_optimizer("adam", params, lr=0.1).param_groups[0]["fused"] is True
    assert make_optimizer("adamw", params, lr=0.1).param_groups[0]["fused"] is True
    assert make_optimizer("sgd", params, lr=0.1).param_groups[0]["fused"] is True
    radam = make_optimizer("radam", params, lr=0.1)
    group = radam.param_groups[0]
    assert choose_path(group["params"], foreach=group["foreach"], fused=group["fused"]) == "fused"
    # No fused kernels for complex tensors, and no foreach kernels on the CPU: torch's loop.
    complex_params = [torch.zeros(3, dtype=torch.complex64, requires_grad=True)]
    adam = make_optimizer("adam", complex_params, lr=0.1)
    assert not adam.param_groups[0]["fused"] and not adam.param_groups[0]["foreach"]


def _one_step_from_zero_gradient(name: str) -> torch.Tensor:
    # With a zero gradient the only force is the decay, which shows its convention:
    # decoupled shrinks theta by lr * lambda * theta; coupled feeds lambda * theta to the
    # optimizer as a gradient (Adam then moves every coordinate by about lr).
    theta = torch.tensor([2.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(name, [theta], lr=0.1, weight_decay=0.5)
    theta.grad = torch.zeros_like(theta)
    opt.step()
    return theta.detach()


def test_decay_conventions() -> None:
    decoupled = torch.tensor([2.0, -4.0], dtype=torch.float64) * (1 - 0.1 * 0.5)
    torch.testing.assert_close(_one_step_from_zero_gradient("radam"), decoupled)
    torch.testing.assert_close(_one_step_from_zero_gradient("adamw"), decoupled)
    # Coupled (L2): SGD's first step is lr * lambda * theta too, Adam's is about lr * sign.
    torch.testing.assert_close(_one_step_from_zero_gradient("sgd"), decoupled)
    torch.testing.assert_close(
        _one_step_from_zero_gradient("adam"),
        torch.tensor([1.9, -3.9], dtype=torch.float64),
        rtol=0,
        atol=1e-6,
    )


_REFERENCE_LOOPS: dict[str, Any] = {
    "radam": lambda ps: RAdam(
        ps, lr=0.05, weight_decay=0.01, decoupled_weight_decay=True, foreach=False, fused=False
    ),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.01, foreach=False),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.01, foreach=False),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01, foreach=False),
}


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0), torch.tensor(y)


def _train_digits(make: Any, *, steps: int) -> tuple[list[float], torch.Tensor]:
    x, y = _digits()
    torch.manual_seed(0)
    model = nn.Linear(64, 10).double()
    opt = make(list(model.parameters()))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_factory_path_trains_and_matches_the_reference_loop(name: str) -> None:
    # Logistic regression on scikit-learn's digits (real 8x8 images), float64: the fast path
    # the factory picks gives the numbers of torch's per-tensor loop, and it learns.
    steps = 100
    losses, params = _train_digits(
        lambda ps: make_optimizer(name, ps, lr=0.05, weight_decay=0.01), steps=steps
    )
    _, reference = _train_digits(_REFERENCE_LOOPS[name], steps=steps)
    assert float((params - reference).abs().max() / reference.abs().max()) < 1e-10
    assert losses[-1] < 0.5 * losses[0]


def test_param_groups_keep_their_own_settings() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    groups = [
        {"params": model[0].parameters(), "lr": 0.5},
        {"params": list(model[1].parameters()), "weight_decay": 0.0},
    ]
    for name in OPTIMIZERS:
        groups_now: list[dict[str, Any]] = [
            {**g, "params": list(m.parameters())} for g, m in zip(groups, model, strict=True)
        ]
        opt = make_optimizer(name, groups_now, lr=0.1, weight_decay=1e-3)
        assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
        assert [g["weight_decay"] for g in opt.param_groups] == [1e-3, 0.0]
