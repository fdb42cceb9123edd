r"""RAdam's update as functions over lists of tensors, one per implementation, in the shape of
torch's ``torch/optim/radam.py`` functional half: the reference loop (``single_tensor_radam``,
Algorithm 2 as written), the same arithmetic with ``torch._foreach_*`` (``multi_tensor_radam``)
and a rectified step through torch's fused Adam kernel (``fused_radam``, the derivation in its
docstring). ``radam.optimizer.RAdam`` picks one per group; ``radam.packed_kernels`` calls
``fused_radam`` per bucket of packed members.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Hyper", "fused_radam", "multi_tensor_radam", "rectification", "single_tensor_radam"]


def rectification(step: float, *, beta2: float, threshold: float) -> float | None:
    """r_t of Algorithm 2 at iteration ``step`` (1-based), or None where rho_t <= threshold.

    rho_inf = 2/(1-beta2) - 1; rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t);
    r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)).
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    beta2_t = beta2**step
    rho_t = rho_inf - 2.0 * step * beta2_t / (1.0 - beta2_t)
    if not rho_t > threshold:
        return None
    return math.sqrt(
        (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    )


@dataclass(frozen=True)
class Hyper:
    """One group's hyperparameters, read once per step."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    decoupled_weight_decay: bool
    rectify_threshold: float
    degenerate_to_sgd: bool
    maximize: bool


def as_real(tensors: Iterable[Tensor]) -> list[Tensor]:
    """Complex tensors as real views (the update is elementwise on real and imaginary parts)."""
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in tensors]


def single_tensor_radam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[float],
    *,
    hyper: Hyper,
) -> None:
    """The reference: Algorithm 2 one tensor at a time."""
    h = hyper
    for param, grad, exp_avg, exp_avg_sq, step in zip(
        as_real(params), as_real(grads), as_real(exp_avgs), as_real(exp_avg_sqs), steps, strict=True
    ):
        if h.maximize:
            grad = -grad
        if h.weight_decay != 0 and not h.decoupled_weight_decay:
            grad = grad.add(param, alpha=h.weight_decay)
        exp_avg.lerp_(grad, 1 - h.beta1)
        exp_avg_sq.mul_(h.beta2).addcmul_(grad, grad, value=1 - h.beta2)
        rect = rectification(step, beta2=h.beta2, threshold=h.rectify_threshold)
        if rect is None and not h.degenerate_to_sgd:
            continue  # the moments moved; the parameters, decay included, stay put
        if h.weight_decay != 0 and h.decoupled_weight_decay:
            param.mul_(1 - h.lr * h.weight_decay)
        bias_correction1 = 1 - h.beta1**step
        if rect is None:
            param.add_(exp_avg, alpha=-h.lr / bias_correction1)
        else:
            bias_correction2 = 1 - h.beta2**step
            denom = exp_avg_sq.sqrt().add_(h.eps)
            step_size = h.lr * rect * math.sqrt(bias_correction2) / bias_correction1
            param.addcdiv_(exp_avg, denom, value=-step_size)


def multi_tensor_radam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    *,
    step: float,
    hyper: Hyper,
) -> None:
    """Algorithm 2 over tensors that share a device, a dtype and a step number."""
    h = hyper
    params, grads, exp_avgs, exp_avg_sqs = (
        as_real(params),
        as_real(grads),
        as_real(exp_avgs),
        as_real(exp_avg_sqs),
    )
    if h.maximize:
        grads = list(torch._foreach_neg(grads))
    if h.weight_decay != 0 and not h.decoupled_weight_decay:
        if h.maximize:  # grads is our own copy already
            torch._foreach_add_(grads, params, alpha=h.weight_decay)
        else:
            grads = list(torch._foreach_add(grads, params, alpha=h.weight_decay))
    torch._foreach_lerp_(exp_avgs, grads, 1 - h.beta1)
    torch._foreach_mul_(exp_avg_sqs, h.beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - h.beta2)
    del grads
    rect = rectification(step, beta2=h.beta2, threshold=h.rectify_threshold)
    if rect is None and not h.degenerate_to_sgd:
        return
    if h.weight_decay != 0 and h.decoupled_weight_decay:
        torch._foreach_mul_(params, 1 - h.lr * h.weight_decay)
    bias_correction1 = 1 - h.beta1**step
    if rect is None:
        torch._foreach_add_(params, exp_avgs, alpha=-h.lr / bias_correction1)
        return
    bias_correction2 = 1 - h.beta2**step
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, h.eps)
    step_size = h.lr * rect * math.sqrt(bias_correction2) / bias_correction1
    torch._foreach_addcdiv_(params, exp_avgs, denom, -step_size)


def fused_radam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    *,
    step: float,
    hyper: Hyper,
) -> None:
    r"""A rectified step through torch's fused Adam kernel; earlier steps via foreach.

    The kernel, fed (lr', eps', lambda') and the step number t, does
        (AdamW: theta <- theta (1 - lr' lambda'))
        theta <- theta - lr'/(1-beta1^t) * m_t / (sqrt(v_t)/sqrt(1-beta2^t) + eps').
    RAdam's rectified step is
        (decoupled: theta <- theta (1 - lr lambda))
        theta <- theta - lr r_t/(1-beta1^t) * m_t * sqrt(1-beta2^t) / (sqrt(v_t) + eps).
    Multiplying the kernel's denominator by sqrt(1-beta2^t) gives
    (sqrt(v_t) + eps' sqrt(1-beta2^t)) / sqrt(1-beta2^t), so the two agree for
        lr' = lr r_t,  eps' = eps / sqrt(1-beta2^t),  lambda' = lambda / r_t  (decoupled;
    r_t > 0 since rho_t > threshold >= 4), and lambda' = lambda when the decay is coupled
    (it enters the gradient, which the kernel handles as RAdam does). The moment updates
    and maximize are Adam's own.
    """
    h = hyper
    rect = rectification(step, beta2=h.beta2, threshold=h.rectify_threshold)
    if rect is None:
        multi_tensor_radam(params, grads, exp_avgs, exp_avg_sqs, step=step, hyper=h)
        return
    bias_correction2 = 1 - h.beta2**step
    # The kernel reads t from a tensor on the parameters' device; torch.full launches a fill
    # without a host-to-device copy, and one tensor serves the whole bucket.
    step_tensor = torch.full((), step, dtype=torch.float32, device=params[0].device)
    kernel = torch._fused_adamw_ if h.decoupled_weight_decay else torch._fused_adam_
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        [step_tensor] * len(params),
        amsgrad=False,
        lr=h.lr * rect,
        beta1=h.beta1,
        beta2=h.beta2,
        weight_decay=h.weight_decay / rect if h.decoupled_weight_decay else h.weight_decay,
        eps=h.eps / math.sqrt(bias_correction2),
        maximize=h.maximize,
        grad_scale=None,
        found_inf=None,
    )
