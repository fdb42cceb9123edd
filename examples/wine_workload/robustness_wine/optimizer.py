"""``sgd_nesterov``: SGD with Nesterov momentum, a plugin optimizer. A factory takes the
parameters, ``lr`` and the spec hyperparameters it names (here weight_decay and momentum; a
spec that sets betas or eps for it is refused, naming them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def sgd_nesterov(
    params: Iterable[Any], *, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True
    )
