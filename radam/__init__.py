"""RAdam (Liu et al. 2019), its warmup schedules, and the variance theory behind it.

``RAdam``, ``make_optimizer`` and ``OPTIMIZERS`` load on first use, so that importing the
pure modules (``radam.schedules``, ``radam.theory``) does not import torch.

Owns: ``optimizer`` (``RAdam``) over ``functional`` (its update as functions of tensor lists:
reference, foreach, fused), ``factory`` (every optimizer a study names), ``packed``
(``PackedOptimizer``: K members' optimizers stepped as one) over ``packed_kernels``,
``schedules`` (warmup and step decay) and ``theory`` (the variance analysis).

The bottom layer: imports torch, numpy, matplotlib (theory's figures), and nothing of
``studies`` or ``service``, nor ray, mlflow, fastapi or optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radam.factory import OPTIMIZERS, make_optimizer
    from radam.optimizer import RAdam

__all__ = ["OPTIMIZERS", "RAdam", "make_optimizer"]

_LAZY = {
    "RAdam": "radam.optimizer",
    "make_optimizer": "radam.factory",
    "OPTIMIZERS": "radam.factory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radam' has no attribute {name!r}")
