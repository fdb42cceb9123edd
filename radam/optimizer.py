r"""RAdam: Adam with the variance of its adaptive learning rate rectified.

Liu et al. 2019, "On the Variance of the Adaptive Learning Rate and Beyond",
https://arxiv.org/abs/1908.03265, Algorithm 2. A drop-in for ``torch.optim.RAdam`` (same
arguments, defaults, state keys and numbers) with two switches on which the paper and the
authors' code (https://github.com/LiyuanLucasLiu/RAdam) differ, and a fused path that
torch lacks.

Evidence (tests/radam/test_optimizer.py): in float64 every path matches
``torch.optim.RAdam`` to 1e-10 relative over 500 steps (coupled and decoupled decay,
maximize, several groups); threshold 4 and ``degenerate_to_sgd=False`` match a plain numpy
transcription of Algorithm 2; a run resumed from ``state_dict()`` equals the uninterrupted
one bit for bit. Speed: bench/optimizer_step.py.

Three implementations sit behind the class:

* ``single``: a per-tensor reference loop, the algorithm as written.
* ``foreach``: the same arithmetic with ``torch._foreach_*`` over all tensors at once.
* ``fused``: a rectified RAdam step *is* an Adam step with a rescaled learning rate, eps and
  decoupled decay (derivation at :func:`radam.functional.fused_radam`), so rectified steps go
  through torch's fused Adam kernels (CPU and CUDA); the few steps before rectification
  (t <= 5 or so for beta2 = 0.999) take the ``foreach`` path.

By default a group takes the fastest exact path its tensors allow: ``fused`` for floating
point tensors on a device with fused Adam kernels, else ``foreach`` where torch has foreach
kernels for the device, else ``single``. In float32 and float64 the paths agree to rounding;
in float16/bfloat16 the fused kernel computes in float32 and rounds once, where the other
paths (and torch.optim.RAdam) round after every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import ParamsT, _get_scalar_dtype
from torch.utils._foreach_utils import (
    _get_foreach_kernels_supported_devices,
    _get_fused_kernels_supported_devices,
)

from radam.functional import Hyper, fused_radam, multi_tensor_radam, single_tensor_radam

__all__ = ["RAdam", "choose_path", "fusable", "has_foreach_kernels"]

Path = Literal["single", "foreach", "fused"]

# r_t's formula has (rho_t - 4) under a square root and in the paper's tractability
# condition: below 4 the variance of the adaptive learning rate is infinite.
MIN_RECTIFY_THRESHOLD = 4.0


class RAdam(Optimizer):
    r"""Rectified Adam (Liu et al. 2019, Algorithm 2; https://arxiv.org/abs/1908.03265).

    .. math::
        \begin{aligned}
        &\rho_\infty = 2/(1-\beta_2) - 1 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t = \pm\nabla f_t(\theta_{t-1}) \;(+\lambda\theta_{t-1} \text{ if decay is coupled}) \\
        &\quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
               v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
               \hat m_t = m_t / (1-\beta_1^t) \\
        &\quad \rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t) \\
        &\quad \textbf{if } \rho_t > \text{rectify\_threshold}: \\
        &\qquad r_t = \sqrt{\tfrac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}},\quad
                l_t = \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon) \\
        &\qquad \theta_t = \theta_{t-1}(1-\gamma\lambda)^{[\text{decoupled}]} - \gamma r_t l_t \hat m_t \\
        &\quad \textbf{elif } \text{degenerate\_to\_sgd}: \;
               \theta_t = \theta_{t-1}(1-\gamma\lambda)^{[\text{decoupled}]} - \gamma \hat m_t \\
        &\quad \textbf{else}: \; \theta_t = \theta_{t-1}
        \end{aligned}

    Args:
        params: parameters or param groups (each group may set its own lr, decay, ...).
        lr: learning rate gamma (default 1e-3).
        betas: decay rates of the first and second moment (default (0.9, 0.999)).
        eps: added to sqrt(v_t) in the denominator (default 1e-8).
        weight_decay: lambda (default 0).
        decoupled_weight_decay: decay the weights directly (RAdamW, the authors' code) instead
            of adding lambda * theta to the gradient (default False, like torch).
        rectify_threshold: rectify when rho_t exceeds it. 5.0 (default) is torch's and the
            authors' code's practice; 4.0 is the paper's Algorithm 2. Must be >= 4.
        degenerate_to_sgd: while the variance is intractable (rho_t <= threshold), take the
            un-adapted momentum step gamma * m_hat_t (True, torch's behaviour) or leave the
            parameters untouched, decay included, while the moments still update (False, the
            authors' current default).
        foreach: use the ``torch._foreach_*`` implementation.
        fused: use torch's fused Adam kernels for the rectified steps.
        maximize: maximize the objective instead of minimizing it.

    With ``foreach`` and ``fused`` both None a group takes the fastest path its tensors allow.
    ``foreach=False`` (without ``fused=True``) takes the per-tensor loop, as it does in torch;
    ``fused=False`` takes foreach where the device has foreach kernels, else the loop.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        rectify_threshold: float = 5.0,
        degenerate_to_sgd: bool = True,
        foreach: bool | None = None,
        fused: bool | None = None,
        maximize: bool = False,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError(
                f"Invalid learning rate: a Tensor lr must have 1 element, not {lr.numel()}"
            )
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas} (need two coefficients)")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not rectify_threshold >= MIN_RECTIFY_THRESHOLD:
            raise ValueError(
                f"Invalid rectify_threshold: {rectify_threshold} (must be >= 4: below 4 the "
                "variance of the adaptive learning rate is infinite and r_t is undefined)"
            )
        if fused and foreach:
            raise ValueError("Invalid path: `fused` and `foreach` cannot both be True")
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "rectify_threshold": rectify_threshold,
            "degenerate_to_sgd": degenerate_to_sgd,
            "foreach": foreach,
            "fused": fused,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also the hook through which load_state_dict() installs saved groups: a state dict
        # saved by torch.optim.RAdam lacks our switches, so they take their defaults.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("rectify_threshold", 5.0)
            group.setdefault("degenerate_to_sgd", True)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)
            group.setdefault("maximize", False)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(
                        float(p_state["step"]), dtype=_get_scalar_dtype()
                    )

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        state_steps: list[Tensor],
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("RAdam does not support sparse gradients")
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:
                # Same keys, dtypes and devices as torch.optim.RAdam, so state dicts move
                # between the two. `step` lives on the CPU: its value steers Python-side
                # branching every step, and reading it from an accelerator would sync.
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            state_steps: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, state_steps)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            hyper = Hyper(
                lr=float(group["lr"]),
                beta1=float(beta1),
                beta2=float(beta2),
                eps=float(group["eps"]),
                weight_decay=float(group["weight_decay"]),
                decoupled_weight_decay=bool(group["decoupled_weight_decay"]),
                rectify_threshold=float(group["rectify_threshold"]),
                degenerate_to_sgd=bool(group["degenerate_to_sgd"]),
                maximize=bool(group["maximize"]),
            )
            path = choose_path(params, foreach=group["foreach"], fused=group["fused"])
            steps = _advance(state_steps)
            if path == "single":
                single_tensor_radam(params, grads, exp_avgs, exp_avg_sqs, steps, hyper=hyper)
                continue
            for (_, _, step), idx in _buckets(params, steps).items():
                tensors = [[ts[i] for i in idx] for ts in (params, grads, exp_avgs, exp_avg_sqs)]
                kernel = fused_radam if path == "fused" else multi_tensor_radam
                kernel(*tensors, step=step, hyper=hyper)
        return loss


def fusable(tensor: Tensor) -> bool:
    """Whether torch has fused Adam kernels for this tensor's device and dtype."""
    return tensor.device.type in _get_fused_kernels_supported_devices() and torch.is_floating_point(
        tensor
    )


def has_foreach_kernels(tensor: Tensor) -> bool:
    """Whether torch has foreach kernels for this tensor's device (the CPU has none: there
    ``torch._foreach_*`` falls back to a loop)."""
    return tensor.device.type in _get_foreach_kernels_supported_devices()


def choose_path(params: Sequence[Tensor], *, foreach: bool | None, fused: bool | None) -> Path:
    """The implementation a group takes: the one asked for, else the fastest the tensors allow."""
    if fused:
        bad = next((p for p in params if not fusable(p)), None)
        if bad is not None:
            raise RuntimeError(
                "`fused=True` needs floating point tensors on a device with fused Adam kernels "
                f"({_get_fused_kernels_supported_devices()}), got {bad.dtype} on {bad.device.type}"
            )
        return "fused"
    if foreach:
        return "foreach"
    if foreach is False:
        return "single"
    if fused is None and all(fusable(p) for p in params):
        return "fused"
    return "foreach" if all(has_foreach_kernels(p) for p in params) else "single"


def _advance(state_steps: list[Tensor]) -> list[float]:
    """Count one more step for every tensor; return the new step numbers."""
    if all(s.device.type == "cpu" for s in state_steps):
        # One tensor for the increment: a Python 1 would be wrapped into a tensor per step
        # tensor on the CPU foreach fallback.
        torch._foreach_add_(state_steps, torch.tensor(1.0), alpha=1.0)
    else:
        torch._foreach_add_(state_steps, 1.0)
    return [s.item() for s in state_steps]


def _buckets(
    params: list[Tensor], steps: list[float]
) -> dict[tuple[torch.device, torch.dtype, float], list[int]]:
    """Indices of the tensors that share a device, a dtype and a step number.

    Kernels want one device and dtype; one step number means one r_t, hence scalar
    arguments. A group's tensors normally share their step, so this is one bucket per
    device and dtype.
    """
    out: dict[tuple[torch.device, torch.dtype, float], list[int]] = {}
    for i, (p, s) in enumerate(zip(params, steps, strict=True)):
        out.setdefault((p.device, p.dtype, s), []).append(i)
    return out
