"""One name -> one optimizer, configured as the robustness study compares them.

``OPTIMIZERS`` are the names a study may use. The decay conventions follow the paper's
CIFAR-10 setup: the authors' code decouples RAdam's decay (RAdamW), the paper's CIFAR "Adam"
is AdamW, and "adam" (L2 decay in the gradient) and "sgd" (momentum, L2 decay) are the
textbook forms. Each optimizer takes the fastest exact implementation for the parameters'
device and dtype: torch's fused kernels where they exist (CPU and CUDA, floating point),
else its foreach kernels, else the per-tensor loop.

Evidence: tests/radam/test_factory.py builds each one and checks class, hyperparameters,
decay convention and path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from radam.optimizer import RAdam, fusable, has_foreach_kernels

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS: tuple[str, ...] = ("radam", "adam", "adamw", "sgd")


def make_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float = 0.0,  # lambda; decoupled for radam/adamw, L2 for adam/sgd
    momentum: float = 0.9,  # sgd only
    betas: tuple[float, float] = (0.9, 0.999),  # radam/adam/adamw only
    eps: float = 1e-8,  # radam/adam/adamw only
) -> torch.optim.Optimizer:
    """The optimizer ``name`` (one of ``OPTIMIZERS``) over ``params`` (tensors or groups).

    Raises ValueError for an unknown name, naming the known ones; invalid hyperparameters
    raise the optimizers' own ValueError.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    items: list[Any] = list(params)
    tensors = _tensors(items)
    if name == "radam":
        # RAdam picks its own fastest path (fused for rectified steps where possible).
        return RAdam(
            items,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
        )
    if name == "sgd":
        return torch.optim.SGD(
            items, lr=lr, momentum=momentum, weight_decay=weight_decay, **_fastest_path(tensors)
        )
    adam_class = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return adam_class(
        items, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **_fastest_path(tensors)
    )


def _tensors(params: list[Any]) -> list[Tensor]:
    """The tensors behind a list of tensors or of param-group dicts."""
    out: list[Tensor] = []
    for item in params:
        if isinstance(item, dict):
            group = item["params"]
            out.extend([group] if isinstance(group, Tensor) else list(group))
        else:
            out.append(item)
    return out


def _fastest_path(tensors: list[Tensor]) -> dict[str, bool]:
    """``fused=True`` where torch has fused kernels for every tensor, else ``foreach=True``
    where it has foreach kernels, else nothing (torch's per-tensor loop)."""
    if tensors and all(fusable(t) for t in tensors):
        return {"fused": True}
    if tensors and all(has_foreach_kernels(t) for t in tensors):
        return {"foreach": True}
    return {}
