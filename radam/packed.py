"""K members' optimizers over stacked parameters, for packed trials (issue 12).

A pack trains K configurations as one program: each model tensor is a leaf of shape
[K, *shape] (``torch.func.stack_module_state``) whose slice [k] is member k's parameter.
``PackedOptimizer`` steps every member with its own optimizer kind (any of
``radam.factory.OPTIMIZERS``), hyperparameters and learning rate, and can freeze a member
(a diverged one) so that its parameters and state stay as they are.

Contract and evidence (tests/radam/test_packed.py): member k's trajectory equals
``make_optimizer(name, [p[k] for p in params], lr=lr, ...)`` stepped with the same gradients
and the same lr sequence (LambdaLR with warmup and step decay), in float64 to 1e-10 relative
over 200 steps, for every kind, mixed kinds in one pack, frozen members, tensors without a
gradient and all-zero gradients, on every impl; a run resumed from ``state_dict()`` equals
the uninterrupted one, across impls too. In float32 the default (fused) impl is the
unpacked optimizers' arithmetic bit for bit; the foreach impl agrees to 1e-5 relative
(measured 4e-7). Speed: bench/packed_optimizer.py.

The leaves must keep their storage (update them in place; do not assign ``.data``): the
optimizer holds views of them.

State dict: ``{"active": [bool] * K, "members": [sd_0, ..., sd_{K-1}]}`` where ``sd_k`` is
exactly what member k's unpacked optimizer's ``state_dict()`` would hold, so a member can be
unpacked (``make_optimizer(...).load_state_dict(sd_k)``) and trained on alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.optim.optimizer import _get_scalar_dtype

from radam.factory import OPTIMIZERS, make_optimizer
from radam.optimizer import fusable
from radam.packed_kernels import HyperKey, Views, plan, update

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


Impl = Literal["auto", "fused", "foreach", "members"]


class PackedOptimizer:
    """K members' optimizers over stacked parameters: each tensor in ``params`` is a leaf of
    shape [K, *shape] whose slice [k] is member k's parameter; member k may be any kind.

    ``step(lrs)`` updates every active member k with learning rate ``lrs[k]`` (its base lr
    times its schedule's factor, what ``LambdaLR`` would have set); ``freeze(k)`` stops
    member k for good. A stacked tensor whose ``grad`` is None is skipped, as torch's
    optimizers skip a parameter without a gradient (its step count does not advance).

    ``impl``: ``"fused"`` and ``"foreach"`` update the members of a kind together over the
    stacked tensors (radam.packed_kernels): through torch's fused kernels, one call per
    distinct lr, or through foreach operations with the lr broadcast per member.
    ``"members"`` is the reference, each member's own ``make_optimizer`` over views of its
    slices (what K separate trials run). ``"auto"`` (default) is ``"fused"`` where torch has
    fused kernels for every tensor (floating point on CPU or CUDA), else ``"foreach"``. All
    keep the same state dict, so one can resume another.

    State: the first moment (sgd: momentum buffer) and, if a member is of an Adam kind, the
    second moment, each stacked like the parameter: an sgd member's second-moment slice is
    allocated but unused.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        members: Sequence[MemberHparams],
        *,
        impl: Impl = "auto",
    ) -> None:
        self.params = list(params)
        self.members = list(members)
        if not self.members:
            raise ValueError("Invalid members: an empty pack")
        if not self.params:
            raise ValueError("Invalid params: no tensors")
        if impl not in ("auto", "fused", "foreach", "members"):
            raise ValueError(f"Invalid impl: {impl!r} (auto, fused, foreach or members)")
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
        if impl == "fused" and not all(fusable(p) for p in self.params):
            raise ValueError(
                "Invalid impl: 'fused' needs floating point tensors on a device with fused kernels"
            )
        if impl == "auto":
            impl = "fused" if all(fusable(p) for p in self.params) else "foreach"
        self.impl: Impl = impl
        self._active = torch.ones(k, dtype=torch.bool)
        self._last_lr = [m.lr for m in self.members]
        # Member k's own optimizer over views of the stacked leaves: the views share their
        # storage, so its in-place updates land in slice [k] of every leaf. The "members"
        # impl steps them; the stacked one uses them only to write and read state dicts in
        # exactly the unpacked optimizers' format.
        self._views = [[p.detach()[i] for p in self.params] for i in range(k)]
        self._optimizers = [m.make(v) for m, v in zip(self.members, self._views, strict=True)]
        self._keys = [
            HyperKey(m.name, m.betas[0], m.betas[1], m.eps, m.weight_decay, m.momentum)
            for m in self.members
        ]
        self._steps = np.zeros((len(self.params), k), dtype=np.int64)
        self._exp_avg: list[Tensor | None] = [None] * len(self.params)
        self._exp_avg_sq: list[Tensor | None] = [None] * len(self.params)
        self._cuts: dict[tuple[str, int], Any] = {}  # Views' cache of cut tensors
        self._needs_m = any(m.name != "sgd" or m.momentum != 0 for m in self.members)
        self._needs_v = any(m.name != "sgd" for m in self.members)

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
        active = [k for k, a in enumerate(self._active.tolist()) if a]
        for k in active:
            self._last_lr[k] = values[k]
        if self.impl == "members":
            self._step_members(active, values)
            return
        with_grad = [j for j, p in enumerate(self.params) if p.grad is not None]
        for j in with_grad:
            p = self.params[j]
            if self._grad_is_sparse(p):
                raise RuntimeError("PackedOptimizer does not support sparse gradients")
            if self._exp_avg[j] is None and self._needs_m:
                self._exp_avg[j] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if self._exp_avg_sq[j] is None and self._needs_v:
                self._exp_avg_sq[j] = torch.zeros_like(p, memory_format=torch.preserve_format)
        fused = self.impl == "fused"
        # One kernel call takes one device and dtype (torch's optimizers group the same way).
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for j in with_grad:
            by_kind.setdefault((self.params[j].device, self.params[j].dtype), []).append(j)
        buckets = [
            bucket
            for js in by_kind.values()
            for bucket in plan(self._keys, active, js, self._steps, values if fused else None)
        ]
        if buckets:
            views = Views(buckets, self.params, self._exp_avg, self._exp_avg_sq, self._cuts)
            for bucket in buckets:
                update(bucket, views, values, fused=fused)
        if active and with_grad:
            self._steps[np.ix_(with_grad, active)] += 1

    @staticmethod
    def _grad_is_sparse(p: Tensor) -> bool:
        return p.grad is not None and p.grad.is_sparse

    def _step_members(self, active: list[int], values: list[float]) -> None:
        for k in active:
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
        """``{"active": [bool] * K, "members": [member k's unpacked optimizer's state_dict]}``
        (the stacked impl's tensors are copies, so each member's state saves on its own)."""
        if self.impl == "members":
            members = [opt.state_dict() for opt in self._optimizers]
        else:
            members = [self._member_state_dict(k) for k in range(len(self.members))]
        return {"active": [bool(a) for a in self._active.tolist()], "members": members}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (of a pack of the same members and shapes,
        by either impl). Raises ValueError if a member's saved hyperparameters differ."""
        active = list(state["active"])
        members = list(state["members"])
        if len(active) != len(self.members) or len(members) != len(self.members):
            raise ValueError(
                f"Invalid state: {len(members)} members' states for a pack of {len(self.members)}"
            )
        for k, sd in enumerate(members):
            self._check_saved_hyperparameters(k, sd)
        for k, sd in enumerate(members):
            opt = self._optimizers[k]
            opt.load_state_dict(sd)
            self._last_lr[k] = float(opt.param_groups[0]["lr"])
            if self.impl != "members":
                self._take_member_state(k)
        self._active = torch.tensor([bool(a) for a in active], dtype=torch.bool)

    def _check_saved_hyperparameters(self, k: int, sd: Mapping[str, Any]) -> None:
        ours = self._optimizers[k].param_groups[0]
        groups = sd.get("param_groups", [])
        if len(groups) != 1:
            raise ValueError(f"Invalid state: member {k} has {len(groups)} param groups, not 1")
        for name in ("betas", "eps", "weight_decay", "momentum"):
            if name in ours and tuple(np.atleast_1d(groups[0].get(name))) != tuple(
                np.atleast_1d(ours[name])
            ):
                raise ValueError(
                    f"Invalid state: member {k} was saved with {name}={groups[0].get(name)}, "
                    f"this pack has {ours[name]}"
                )

    def _member_state_dict(self, k: int) -> dict[str, Any]:
        """Member k's slices of the stacked state in its unpacked optimizer's format."""
        opt = self._optimizers[k]
        m = self.members[k]
        group = opt.param_groups[0]
        group["lr"] = self._last_lr[k]
        # Where torch's own optimizer keeps its step count (fused/capturable: on the device).
        on_device = bool(group.get("fused") or group.get("capturable"))
        for j, view in enumerate(self._views[k]):
            done = int(self._steps[j, k])
            if done == 0:
                continue
            if m.name == "sgd":
                if m.momentum != 0:
                    opt.state[view] = {"momentum_buffer": _slice(self._exp_avg, j, k)}
                continue
            fused = on_device and m.name != "radam"  # RAdam keeps its step on the CPU
            step = torch.tensor(
                float(done),
                dtype=_get_scalar_dtype(is_fused=fused),
                device=view.device if fused else "cpu",
            )
            opt.state[view] = {
                "step": step,
                "exp_avg": _slice(self._exp_avg, j, k),
                "exp_avg_sq": _slice(self._exp_avg_sq, j, k),
            }
        try:
            return opt.state_dict()
        finally:
            opt.state.clear()

    def _take_member_state(self, k: int) -> None:
        """Copy what ``opt.load_state_dict`` installed for member k into the stacked state."""
        opt = self._optimizers[k]
        name = self.members[k].name
        for j, view in enumerate(self._views[k]):
            saved = opt.state.get(view, {})
            p = self.params[j]
            if self._exp_avg[j] is None and self._needs_m:
                self._exp_avg[j] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if self._exp_avg_sq[j] is None and self._needs_v:
                self._exp_avg_sq[j] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if name == "sgd":
                buf = saved.get("momentum_buffer")
                self._steps[j, k] = 0 if buf is None else 1  # sgd needs only first or not
                if buf is not None:
                    _target(self._exp_avg, j)[k].copy_(buf)
                continue
            if not saved:
                self._steps[j, k] = 0
                continue
            self._steps[j, k] = int(saved["step"].item())
            _target(self._exp_avg, j)[k].copy_(saved["exp_avg"])
            _target(self._exp_avg_sq, j)[k].copy_(saved["exp_avg_sq"])
        opt.state.clear()


def _slice(tensors: list[Tensor | None], j: int, k: int) -> Tensor:
    return _target(tensors, j)[k].clone()


def _target(tensors: list[Tensor | None], j: int) -> Tensor:
    t = tensors[j]
    if t is None:
        raise RuntimeError(f"state of tensor {j} was not allocated")
    return t
