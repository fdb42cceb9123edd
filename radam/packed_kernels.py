r"""The stacked update behind ``radam.packed.PackedOptimizer``: members of one kind at once.

Members that share a kind, the hyperparameters other than lr (betas, eps, weight decay,
momentum) and a step count form a *bucket*; within a bucket every scalar of the update is
the same for all members but the learning rate. A bucket's members are cut into runs of
consecutive indices, and the update runs on the views ``p[a:b]`` of the stacked leaves and
their state with ``torch._foreach_*`` (one call per operation for all runs and tensors),
the learning rate entering as a [b-a, 1, ..., 1] tensor that broadcasts over each member's
slice. Where torch has fused kernels for the tensors (CPU and CUDA, floating point), the
members of a bucket that also share their current lr go through those kernels instead, one
call over all their views: one pass over memory instead of the foreach path's several, and
the unpacked optimizers' own arithmetic. Members outside every bucket (frozen, or a tensor without a gradient) are not
touched at all: nothing is written to their slices.

The arithmetic per kind is the unpacked optimizer's (``radam.factory.make_optimizer``):

* adam: g += lambda p; m = lerp(m, g, 1-beta1); v = beta2 v + (1-beta2) g^2;
  p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)   (torch.optim.Adam)
* adamw: p *= 1 - lr lambda, then adam without the L2 term   (torch.optim.AdamW)
* radam: the moments as adam; p *= 1 - lr lambda; p -= lr r_t sqrt(1-beta2^t)/(1-beta1^t)
  * m / (sqrt(v) + eps) when rho_t > 5, else p -= lr/(1-beta1^t) * m
  (radam.optimizer.RAdam with decoupled decay, degenerate_to_sgd=True)
* sgd: g += lambda p; b = g at the first step, else b = mu b + g; p -= lr b (mu = 0: p -= lr g)
  (torch.optim.SGD, dampening 0, no Nesterov)

RAdam's branch (rectified or not) depends on the step count only, which is why the step is
part of a bucket's key: members that started together share it, a member frozen earlier
has stopped counting and is in no bucket, and a tensor that missed a gradient lags in its
own bucket.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from radam.functional import Hyper, fused_radam, rectification

__all__ = ["Bucket", "HyperKey", "Views", "plan", "update"]

# torch's and the authors' threshold, the factory's RAdam default.
RECTIFY_THRESHOLD = 5.0


@dataclass(frozen=True)
class HyperKey:
    """A member's kind and its hyperparameters other than the learning rate."""

    name: str
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    momentum: float


@dataclass(frozen=True)
class Bucket:
    """Members updated together: same kind, hyperparameters and step count ``done``
    (updates taken before this one), over the tensors ``tensors``."""

    key: HyperKey
    done: int
    members: tuple[int, ...]
    tensors: tuple[int, ...]

    def runs(self) -> list[tuple[int, int]]:
        """The members as half-open ranges of consecutive indices."""
        return list(self._runs)

    @functools.cached_property
    def _runs(self) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for k in self.members:
            if out and out[-1][1] == k:
                out[-1] = (out[-1][0], k + 1)
            else:
                out.append((k, k + 1))
        return tuple(out)


def plan(
    keys: Sequence[HyperKey],
    active: Sequence[int],
    with_grad: Sequence[int],
    steps: np.ndarray,
    lrs: Sequence[float] | None = None,
) -> list[Bucket]:
    """The buckets of one step: ``active`` members over the tensors ``with_grad``, where
    ``steps[j, k]`` counts the updates member k has applied to tensor j. With ``lrs``
    (the fused path), members with different learning rates are in different buckets."""
    if not active or not with_grad:
        return []
    rows = steps[np.ix_(list(with_grad), list(active))]
    # Tensors whose step counts agree member by member (normally all of them) share buckets.
    by_row: dict[bytes, list[int]] = {}
    for j, row in zip(with_grad, rows, strict=True):
        by_row.setdefault(row.tobytes(), []).append(j)
    buckets: list[Bucket] = []
    for js in by_row.values():
        row = steps[js[0]]
        groups: dict[tuple[HyperKey, int, float], list[int]] = {}
        for k in active:
            lr = 0.0 if lrs is None else lrs[k]
            groups.setdefault((keys[k], int(row[k]), lr), []).append(k)
        for (key, done, _), members in groups.items():
            buckets.append(Bucket(key, done, tuple(members), tuple(js)))
    return buckets


class Views:
    """The slices [a:b] of the stacked tensors that one step's buckets use.

    Each tensor is cut once (``torch.tensor_split``, one call where slicing run by run would
    be one call per run and tensor, the bulk of a step's Python time for K = 36 and 65
    tensors); the cuts of the parameters and the state are kept for the next step, which
    normally has the same runs, and those of the gradients (new tensors every step) not.
    """

    def __init__(
        self,
        buckets: Sequence[Bucket],
        params: Sequence[Tensor],
        exp_avgs: Sequence[Tensor | None],
        exp_avg_sqs: Sequence[Tensor | None],
        cache: dict[tuple[str, int], tuple[tuple[int, ...], int, tuple[Tensor, ...]]],
    ) -> None:
        bounds = {0, params[0].shape[0]}
        for bucket in buckets:
            for a, b in bucket.runs():
                bounds.update((a, b))
        # Runs of one step are disjoint, so every run is exactly one piece between cuts.
        self.cuts = tuple(sorted(bounds))
        self._piece = {a: i for i, a in enumerate(self.cuts[:-1])}
        self._params = params
        self._tensors: dict[str, Sequence[Tensor | None]] = {
            "p": params,
            "m": exp_avgs,
            "v": exp_avg_sqs,
        }
        self._cache = cache
        self._grads: dict[int, tuple[Tensor, ...]] = {}

    def _pieces(self, name: str, j: int) -> tuple[Tensor, ...]:
        if name == "g":
            pieces = self._grads.get(j)
            if pieces is None:
                pieces = self._split(_grad(self._params[j]))
                self._grads[j] = pieces
            return pieces
        tensor = _state(self._tensors[name], j)
        hit = self._cache.get((name, j))
        # Keyed on the storage too: a leaf whose .data was replaced gets new pieces.
        if hit is not None and hit[0] == self.cuts and hit[1] == tensor.data_ptr():
            return hit[2]
        pieces = self._split(tensor.detach())
        self._cache[(name, j)] = (self.cuts, tensor.data_ptr(), pieces)
        return pieces

    def _split(self, tensor: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.tensor_split(tensor, list(self.cuts[1:-1])))

    def __call__(self, name: str, bucket: Bucket) -> list[Tensor]:
        """Tensor ``name`` ("p", "g", "m" or "v") of ``bucket``: runs outer, tensors inner."""
        lists = {j: self._pieces(name, j) for j in bucket.tensors}
        return [lists[j][self._piece[a]] for a, _ in bucket.runs() for j in bucket.tensors]


def _columns(
    values: Sequence[float], runs: list[tuple[int, int]], like: Sequence[Tensor]
) -> list[Tensor]:
    """Per-member ``values`` (in run order) as [n, 1, ...] tensors, one per view in ``like``
    (runs outer, tensors inner), in each view's dtype and device."""
    cache: dict[tuple[torch.dtype, torch.device], Tensor] = {}
    out: list[Tensor] = []
    per_run = len(like) // len(runs)
    offsets = np.cumsum([0] + [b - a for a, b in runs])
    for i, view in enumerate(like):
        r = i // per_run
        vec = cache.get((view.dtype, view.device))
        if vec is None:
            vec = torch.tensor(values, dtype=view.dtype, device=view.device)
            cache[(view.dtype, view.device)] = vec
        n = runs[r][1] - runs[r][0]
        out.append(vec[offsets[r] : offsets[r] + n].view(n, *([1] * (view.dim() - 1))))
    return out


@torch.no_grad()
def update(bucket: Bucket, views: Views, lrs: Sequence[float], *, fused: bool) -> None:
    """One update of ``bucket``'s members, ``lrs[k]`` member k's learning rate; ``views``
    gives the slices of the parameters ("p"), gradients ("g"), first moments (sgd: the
    momentum buffers, "m") and second moments ("v").

    ``fused``: through torch's fused kernels, one call for the bucket (whose members then
    share their lr: ``plan(..., lrs)``), else the foreach path (one call per operation for
    the whole bucket, the lr broadcast per member)."""
    if not fused:
        _foreach_update(bucket, views, lrs)
        return
    lr = lrs[bucket.members[0]]
    if any(lrs[k] != lr for k in bucket.members):
        raise ValueError("a fused bucket's members must share their lr: plan(..., lrs)")
    _fused_update(bucket, views, lr, lrs)


def _fused_update(bucket: Bucket, views: Views, lr: float, lrs: Sequence[float]) -> None:
    """Members that share their lr too: torch's fused kernels over their views, the calls
    torch.optim.{SGD,Adam,AdamW}(fused=True) and radam.RAdam's fused path make, so a
    member's numbers are its unpacked optimizer's bit for bit."""
    h = bucket.key
    ps, gs = views("p", bucket), views("g", bucket)
    t = bucket.done + 1
    if h.name == "sgd":
        bufs = [] if h.momentum == 0 else views("m", bucket)
        torch._fused_sgd_(
            ps,
            gs,
            bufs,
            weight_decay=h.weight_decay,
            momentum=h.momentum,
            lr=lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
            is_first_step=bucket.done == 0 and h.momentum != 0,
            grad_scale=None,
            found_inf=None,
        )
        return
    ms, vs = views("m", bucket), views("v", bucket)
    if h.name == "radam":
        # RAdam's own fused path (its few un-rectified steps through its foreach code).
        hyper = Hyper(
            lr=lr,
            beta1=h.beta1,
            beta2=h.beta2,
            eps=h.eps,
            weight_decay=h.weight_decay,
            decoupled_weight_decay=True,
            rectify_threshold=RECTIFY_THRESHOLD,
            degenerate_to_sgd=True,
            maximize=False,
        )
        fused_radam(ps, gs, ms, vs, step=float(t), hyper=hyper)
        return
    # The kernel reads t from a tensor on the parameters' device; one serves all views.
    step = torch.full((), float(t), dtype=torch.float32, device=ps[0].device)
    kernel = torch._fused_adam_ if h.name == "adam" else torch._fused_adamw_
    kernel(
        ps,
        gs,
        ms,
        vs,
        [],
        [step] * len(ps),
        amsgrad=False,
        lr=lr,
        beta1=h.beta1,
        beta2=h.beta2,
        weight_decay=h.weight_decay,
        eps=h.eps,
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )


def _foreach_update(bucket: Bucket, views: Views, lrs: Sequence[float]) -> None:
    h = bucket.key
    runs = bucket.runs()
    ps, gs = views("p", bucket), views("g", bucket)
    lr = [lrs[k] for k in bucket.members]
    t = bucket.done + 1

    if h.name in ("adam", "sgd") and h.weight_decay != 0:
        gs = list(torch._foreach_add(gs, ps, alpha=h.weight_decay))
    if h.name == "sgd":
        if h.momentum == 0:
            torch._foreach_add_(ps, torch._foreach_mul(gs, _columns([-x for x in lr], runs, ps)))
            return
        bufs = views("m", bucket)
        if bucket.done == 0:
            torch._foreach_copy_(bufs, gs)
        else:
            torch._foreach_mul_(bufs, h.momentum)
            torch._foreach_add_(bufs, gs)
        torch._foreach_add_(ps, torch._foreach_mul(bufs, _columns([-x for x in lr], runs, ps)))
        return

    ms, vs = views("m", bucket), views("v", bucket)
    torch._foreach_lerp_(ms, gs, 1 - h.beta1)
    torch._foreach_mul_(vs, h.beta2)
    torch._foreach_addcmul_(vs, gs, gs, 1 - h.beta2)
    del gs
    if h.name in ("adamw", "radam") and h.weight_decay != 0:
        torch._foreach_mul_(ps, _columns([1 - x * h.weight_decay for x in lr], runs, ps))
    bias_correction1 = 1 - h.beta1**t
    bias_correction2 = 1 - h.beta2**t
    if h.name == "radam":
        rect = rectification(t, beta2=h.beta2, threshold=RECTIFY_THRESHOLD)
        if rect is None:
            scale = [-x / bias_correction1 for x in lr]
            torch._foreach_add_(ps, torch._foreach_mul(ms, _columns(scale, runs, ps)))
            return
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, h.eps)
        scale = [-x * rect * math.sqrt(bias_correction2) / bias_correction1 for x in lr]
    else:
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, math.sqrt(bias_correction2))
        torch._foreach_add_(denom, h.eps)
        scale = [-x / bias_correction1 for x in lr]
    step = torch._foreach_div(ms, denom)
    del denom
    torch._foreach_mul_(step, _columns(scale, runs, ps))
    torch._foreach_add_(ps, step)


def _grad(p: Tensor) -> Tensor:
    if p.grad is None:  # plan() puts only tensors with gradients in a bucket
        raise RuntimeError("a bucket's tensor has no gradient")
    return p.grad


def _state(tensors: Sequence[Tensor | None], j: int) -> Tensor:
    t = tensors[j]
    if t is None:
        raise RuntimeError(f"state of tensor {j} was not allocated")
    return t
