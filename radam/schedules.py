"""Warmup and step decay as multipliers of the base learning rate, for ``LambdaLR``.

Every function here is a pure function of the iteration and returns the factor by which the
optimizer's base lr is multiplied, so they compose by multiplication and plug straight into
``torch.optim.lr_scheduler.LambdaLR``.

Iteration convention. ``step`` is LambdaLR's count: 0 for the first optimizer update, 1 for
the second, and so on (LambdaLR evaluates the lambda at 0 when it is built, and again after
every ``scheduler.step()``; call that once per optimizer update). The papers count
iterations from 1, so every formula below uses ``t = step + 1``. With this convention the
paper's Adam warmup holds exactly at the first update: the authors' AdamW computes
``lr_t = 1e-6 + t * (lr - 1e-6) / warmup`` with ``t = 1`` at its first update, and
``linear_warmup(0, ...) * base_lr`` is that value (see tests/radam/test_schedules.py).

Warmup kinds (``WARMUPS``):
- ``"none"``: factor 1.
- ``"linear"``: the RAdam paper's Adam warmup (Liu et al. 2019, Sec. 5; the authors' AdamW):
  linear from ``init_lr`` (1e-6) at t=0 to ``base_lr`` at t=warmup_steps, then flat.
- ``"untuned_linear"``: Ma & Yarats 2019, ``min(1, (1 - beta2) * t / 2)``, i.e. a warmup of
  ``2 / (1 - beta2)`` iterations (2,000 for beta2 = 0.999).
- ``"untuned_exponential"``: Ma & Yarats 2019, ``1 - exp(-(1 - beta2) * t)``.

Step decay (``step_decay``) multiplies by ``gamma`` at each epoch milestone, applied per
iteration: the epoch of an iteration is ``step // steps_per_epoch`` (0-based), and milestone
``m`` applies from epoch index ``m`` on, the same as ``MultiStepLR(milestones=[81, 122])``
stepped once per epoch, and as the authors' CIFAR script (``if epoch in schedule: lr *=
gamma`` at the start of 0-based epoch ``epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

WarmupKind = Literal["none", "linear", "untuned_linear", "untuned_exponential"]

#: The warmup kinds; only "linear" takes a length (``warmup_steps``).
WARMUPS: tuple[WarmupKind, ...] = ("none", "linear", "untuned_linear", "untuned_exponential")

#: The paper's CIFAR-10 schedule: 164 epochs, lr x0.1 at epochs 81 and 122.
CIFAR_MILESTONES: tuple[int, ...] = (81, 122)

# Where the authors' AdamW warmup starts (absolute lr, not a multiplier).
PAPER_INIT_LR = 1e-6


def _check_step(step: int) -> int:
    if step < 0:
        raise ValueError(f"step must be >= 0 (LambdaLR's count), got {step}")
    return step + 1  # the papers' t, 1 at the first update


def _check_beta2(beta2: float) -> None:
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")


def linear_warmup(
    step: int, *, warmup_steps: int, base_lr: float, init_lr: float = PAPER_INIT_LR
) -> float:
    """Factor of ``base_lr`` so that ``lr_t = init_lr + t * (base_lr - init_lr) / warmup_steps``
    for ``t = step + 1 < warmup_steps``, and ``base_lr`` from ``t = warmup_steps`` on."""
    if warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be > 0 for a linear warmup, got {warmup_steps}")
    if not base_lr > 0.0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    if init_lr < 0.0:
        raise ValueError(f"init_lr must be >= 0, got {init_lr}")
    t = _check_step(step)
    if t >= warmup_steps:
        return 1.0
    return (init_lr + t * (base_lr - init_lr) / warmup_steps) / base_lr


def untuned_linear_warmup(step: int, *, beta2: float) -> float:
    """Ma & Yarats (2019): ``min(1, (1 - beta2) * t / 2)`` with ``t = step + 1``."""
    _check_beta2(beta2)
    t = _check_step(step)
    return min(1.0, (1.0 - beta2) * t / 2.0)


def untuned_exponential_warmup(step: int, *, beta2: float) -> float:
    """Ma & Yarats (2019): ``1 - exp(-(1 - beta2) * t)`` with ``t = step + 1``."""
    _check_beta2(beta2)
    t = _check_step(step)
    return -math.expm1(-(1.0 - beta2) * t)  # expm1: exact for small (1 - beta2) * t


def step_decay(
    step: int, *, steps_per_epoch: int, milestones: Sequence[int], gamma: float
) -> float:
    """``gamma ** k`` where k counts the milestones reached by epoch ``step // steps_per_epoch``."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch}")
    if any(m < 0 for m in milestones):
        raise ValueError(f"milestones must be epoch indices >= 0, got {list(milestones)}")
    if not gamma > 0.0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    _check_step(step)
    epoch = step // steps_per_epoch
    reached = sum(1 for m in milestones if epoch >= m)
    return float(gamma**reached)


@dataclass(frozen=True)
class LrLambda:
    """Warmup x step decay, as one picklable callable for ``LambdaLR`` (Ray pickles it).

    Build it with ``lr_lambda(...)``, which validates the arguments.
    """

    warmup: WarmupKind
    warmup_steps: int  # iterations; used by "linear" only
    base_lr: float  # the optimizer's lr, needed to start the linear warmup at init_lr
    beta2: float  # Adam's second-moment decay; sets the untuned warmups' length
    steps_per_epoch: int  # iterations per epoch
    milestones: tuple[int, ...]  # epoch indices (0-based) where lr is multiplied by gamma
    gamma: float  # decay factor per milestone
    init_lr: float = PAPER_INIT_LR  # absolute lr at t=0 of the linear warmup

    def warmup_factor(self, step: int) -> float:
        if self.warmup == "linear":
            return linear_warmup(
                step, warmup_steps=self.warmup_steps, base_lr=self.base_lr, init_lr=self.init_lr
            )
        if self.warmup == "untuned_linear":
            return untuned_linear_warmup(step, beta2=self.beta2)
        if self.warmup == "untuned_exponential":
            return untuned_exponential_warmup(step, beta2=self.beta2)
        return 1.0

    def __call__(self, step: int) -> float:
        decay = step_decay(
            step,
            steps_per_epoch=self.steps_per_epoch,
            milestones=self.milestones,
            gamma=self.gamma,
        )
        return self.warmup_factor(step) * decay


def lr_lambda(
    *,
    warmup: str,
    warmup_steps: int = 0,  # iterations; > 0 for "linear", ignored by the other kinds
    base_lr: float,
    beta2: float = 0.999,  # Adam's beta2
    steps_per_epoch: int = 1,  # iterations per epoch
    milestones: Sequence[int] = (),  # epoch indices, e.g. CIFAR_MILESTONES
    gamma: float = 0.1,  # factor per milestone
    init_lr: float = PAPER_INIT_LR,  # absolute lr where the linear warmup starts
) -> Callable[[int], float]:
    """Compose a warmup of kind ``warmup`` with step decay; returns a picklable ``LrLambda``.

    Raises ValueError naming the argument when one is out of range. ``warmup_steps`` is
    ignored (not rejected) for the kinds without a length, so a caller may pass the grid
    point's value whatever its kind.
    """
    if warmup not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if warmup == "linear" and warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be > 0 for a linear warmup, got {warmup_steps}")
    if not base_lr > 0.0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    if init_lr < 0.0:
        raise ValueError(f"init_lr must be >= 0, got {init_lr}")
    if warmup.startswith("untuned"):
        _check_beta2(beta2)
    schedule = LrLambda(
        warmup=warmup,  # narrowed to WarmupKind by the check against WARMUPS
        warmup_steps=int(warmup_steps),
        base_lr=float(base_lr),
        beta2=float(beta2),
        steps_per_epoch=int(steps_per_epoch),
        milestones=tuple(int(m) for m in milestones),
        gamma=float(gamma),
        init_lr=float(init_lr),
    )
    schedule(0)  # validates steps_per_epoch, milestones and gamma with their own messages
    return schedule


def warmup_length(warmup: str, *, warmup_steps: int = 0, beta2: float = 0.999) -> float:
    """Iterations a warmup takes to reach (1 - 1/e of, for the exponential kind) the base lr.

    0 for "none"; ``warmup_steps`` for "linear"; ``2 / (1 - beta2)`` for "untuned_linear";
    ``1 / (1 - beta2)`` (its time constant) for "untuned_exponential".
    """
    if warmup not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup!r}")
    if warmup == "linear":
        return float(warmup_steps)
    if warmup.startswith("untuned"):
        _check_beta2(beta2)
        return (2.0 if warmup == "untuned_linear" else 1.0) / (1.0 - beta2)
    return 0.0
