"""K members' optimizers over stacked parameters, for packed trials (issue 12).

A pack trains K configurations as one program: each model tensor is a leaf of shape
[K, *shape] (``torch.func.stack_module_state``) whose slice [k] is member k's parameter.
``PackedOptimizer`` steps every member with its own optimizer kind (any of
``radam.factory.OPTIMIZERS``), hyperparameters and learning rate, and can freeze a member
(a diverged one) so that its parameters and state stay as they are.

Contract (tests/radam/test_packed.py): member k's trajectory equals
``make_optimizer(name, [p[k] for p in params], lr=lr, ...)`` stepped with the same gradients
and the same lr sequence, in float64 to 1e-10 relative over a few hundred steps, for every
kind, mixed kinds in one pack and with frozen members; a run resumed from ``state_dict()``
equals the uninterrupted one.

State dict: ``{"active": [bool] * K, "members": [sd_0, ..., sd_{K-1}]}`` where ``sd_k`` is
exactly what member k's unpacked optimizer's ``state_dict()`` would hold, so a member can be
unpacked (``make_optimizer(...).load_state_dict(sd_k)``) and trained on alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from radam.factory import OPTIMIZERS, make_optimizer

__all__ = ["MemberHparams", "PackedOptimizer"]


@dataclass(frozen=True)
class MemberHparams:
    """One member's optimizer, as ``make_optimizer`` takes it."""

    name: str  # one of radam.factory.OPTIMIZERS: "radam", "adam", "adamw", "sgd"
    lr: float  # base learning rate (the schedule's factor multiplies it)
    weight_decay: float = 0.0  # lambda; decoupled for radam/adamw, L2 for adam/sgd
    momentum: float = 0.9  # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # radam/adam/adamw only
    eps: float = 1e-8  # radam/adam/adamw only

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"Invalid name: {self.name!r}; known: {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(self.lr) and self.lr >= 0.0):
            raise ValueError(f"Invalid lr: {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0.0):
            raise ValueError(f"Invalid weight_decay: {self.weight_decay}")
        if not (math.isfinite(self.momentum) and self.momentum >= 0.0):
            raise ValueError(f"Invalid momentum: {self.momentum}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Invalid betas: {self.betas} (two coefficients in [0, 1))")
        if not (math.isfinite(self.eps) and self.eps >= 0.0):
            raise ValueError(f"Invalid eps: {self.eps}")

    def make(self, params: Sequence[Tensor]) -> torch.optim.Optimizer:
        """This member's unpacked optimizer over ``params``."""
        return make_optimizer(
            self.name,
            list(params),
            lr=self.lr,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            betas=self.betas,
            eps=self.eps,
        )


class PackedOptimizer:
    """K members' optimizers over stacked parameters: each tensor in ``params`` is a leaf of
    shape [K, *shape] whose slice [k] is member k's parameter; member k may be any kind.

    ``step(lrs)`` updates every active member k with learning rate ``lrs[k]`` (its base lr
    times its schedule's factor, what ``LambdaLR`` would have set); ``freeze(k)`` stops
    member k for good. A stacked tensor whose ``grad`` is None is skipped, as torch's
    optimizers skip a parameter without a gradient (its step count does not advance).
    """

    def __init__(self, params: Sequence[Tensor], members: Sequence[MemberHparams]) -> None:
        self.params = list(params)
        self.members = list(members)
        if not self.members:
            raise ValueError("Invalid members: an empty pack")
        if not self.params:
            raise ValueError("Invalid params: no tensors")
        k = len(self.members)
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"Invalid params[{i}]: a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"Invalid params[{i}]: can't optimize a non-leaf Tensor")
            if p.dim() == 0 or p.shape[0] != k:
                raise ValueError(
                    f"Invalid params[{i}]: shape {tuple(p.shape)} does not stack {k} members "
                    "along dimension 0"
                )
        for i, m in enumerate(self.members):
            if not isinstance(m, MemberHparams):
                raise TypeError(f"Invalid members[{i}]: a {type(m).__name__}, not MemberHparams")
        self._active = torch.ones(k, dtype=torch.bool)
        # Member k's own optimizer over views of the stacked leaves: the views share their
        # storage, so its in-place updates land in slice [k] of every leaf.
        self._views = [[p.detach()[i] for p in self.params] for i in range(k)]
        self._optimizers = [m.make(v) for m, v in zip(self.members, self._views, strict=True)]

    @property
    def active(self) -> Tensor:
        """bool [K]: which members are still updated (a copy)."""
        return self._active.clone()

    def freeze(self, k: int) -> None:
        """Member k is no longer updated: its parameters and state stay as they are."""
        if not 0 <= k < len(self.members):
            raise IndexError(f"Invalid member index: {k} (pack of {len(self.members)})")
        self._active[k] = False

    def _lrs(self, lrs: Sequence[float] | Tensor) -> list[float]:
        values = lrs.tolist() if isinstance(lrs, Tensor) else list(lrs)
        if len(values) != len(self.members):
            raise ValueError(
                f"Invalid lrs: {len(values)} learning rates for {len(self.members)} members"
            )
        out = [float(v) for v in values]
        for k, v in enumerate(out):
            if self._active[k] and not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"Invalid learning rate: {v} (member {k})")
        return out

    @torch.no_grad()
    def step(self, lrs: Sequence[float] | Tensor) -> None:
        """One update of every active member, member k with learning rate ``lrs[k]``."""
        values = self._lrs(lrs)
        for k in range(len(self.members)):
            if not self._active[k]:
                continue
            opt = self._optimizers[k]
            for view, p in zip(self._views[k], self.params, strict=True):
                view.grad = None if p.grad is None else p.grad[k]
            for group in opt.param_groups:
                group["lr"] = values[k]
            opt.step()
            for view in self._views[k]:
                view.grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the stacked gradients (all members'), as ``Optimizer.zero_grad`` does."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """``{"active": [bool] * K, "members": [member k's unpacked optimizer's state_dict]}``."""
        return {
            "active": [bool(a) for a in self._active.tolist()],
            "members": [opt.state_dict() for opt in self._optimizers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (of a pack of the same members and shapes)."""
        active = list(state["active"])
        members = list(state["members"])
        if len(active) != len(self.members) or len(members) != len(self.members):
            raise ValueError(
                f"Invalid state: {len(members)} members' states for a pack of {len(self.members)}"
            )
        for opt, sd in zip(self._optimizers, members, strict=True):
            opt.load_state_dict(sd)
        self._active = torch.tensor([bool(a) for a in active], dtype=torch.bool)
