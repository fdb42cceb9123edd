"""How many epochs fit a time budget, and the learning-rate schedule of a shortened run.

Pure functions of measured times and the spec, so the decision a GPU run takes can be checked
here. The paper's CIFAR-10 schedule decays the lr x0.1 at epochs 81 and 122 of 164; a run
shortened to N epochs keeps those at the same fractions of the run (81/164 N and 122/164 N,
rounded), which is what "scaled milestones" means in the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Extra fraction on the measured epoch time before planning (one slow epoch must not overrun).
EPOCH_TIME_MARGIN = 0.05


def scaled_milestones(
    epochs: int, *, full_epochs: int, full_milestones: Sequence[int]
) -> list[int]:
    """The milestones of a ``full_epochs`` schedule at the same fractions of ``epochs``.

    ``scaled_milestones(40, full_epochs=164, full_milestones=[81, 122]) == [20, 30]``. A run too
    short to hold a milestone inside it (index 0 or >= ``epochs``) drops it; two that round to
    the same epoch become one (the spec wants increasing milestones).
    """
    if epochs < 1 or full_epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs} of {full_epochs}")
    if epochs == full_epochs:
        return list(full_milestones)
    scaled = sorted({round(m * epochs / full_epochs) for m in full_milestones})
    return [m for m in scaled if 0 < m < epochs]


@dataclass(frozen=True)
class EpochPlan:
    """What the budget allows: ``epochs`` to run of the ``target``, and the evidence."""

    target: int  # epochs wanted (the paper's 164, or --epochs)
    epochs: int  # epochs that fit (== target when the whole run fits)
    epoch_seconds: float  # measured wall time of one epoch of the whole pack
    remaining_seconds: float  # budget left when the plan was made
    full_run_seconds: float  # extrapolated wall time of ``target`` epochs

    @property
    def shortened(self) -> bool:
        return self.epochs < self.target

    def as_dict(self) -> dict[str, object]:
        return {
            "target_epochs": self.target,
            "epochs": self.epochs,
            "shortened": self.shortened,
            "epoch_seconds": self.epoch_seconds,
            "remaining_seconds": self.remaining_seconds,
            "full_run_seconds_estimate": self.full_run_seconds,
        }


def plan_epochs(
    *,
    target: int,
    epoch_seconds: float,
    remaining_seconds: float,
    margin: float = EPOCH_TIME_MARGIN,
) -> EpochPlan:
    """As many epochs of ``target`` as fit ``remaining_seconds`` at ``epoch_seconds`` each
    (plus ``margin``), at least one: a run that cannot afford one epoch still shows its curve's
    start, and the results say how short it was."""
    if target < 1:
        raise ValueError(f"target must be >= 1 epoch, got {target}")
    if not epoch_seconds > 0:
        raise ValueError(f"epoch_seconds must be > 0, got {epoch_seconds}")
    per_epoch = epoch_seconds * (1.0 + margin)
    fit = math.floor(max(remaining_seconds, 0.0) / per_epoch)
    return EpochPlan(
        target=target,
        epochs=max(1, min(target, fit)),
        epoch_seconds=epoch_seconds,
        remaining_seconds=remaining_seconds,
        full_run_seconds=target * epoch_seconds,
    )
