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

from studies.presets import apply_overrides
from studies.spec import StudySpec

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
    done: int  # epochs already trained that the run continues from (0: from scratch)
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
            "continued_from_epoch": self.done,
            "epoch_seconds": self.epoch_seconds,
            "remaining_seconds": self.remaining_seconds,
            "full_run_seconds_estimate": self.full_run_seconds,
        }


def plan_epochs(
    *,
    target: int,
    epoch_seconds: float,
    remaining_seconds: float,
    done: int = 0,
    margin: float = EPOCH_TIME_MARGIN,
) -> EpochPlan:
    """As many epochs of ``target`` as fit ``remaining_seconds`` at ``epoch_seconds`` each
    (plus ``margin``) after the ``done`` ones already trained, at least one: a run that cannot
    afford one epoch still shows its curve's start, and the results say how short it was."""
    if target < 1:
        raise ValueError(f"target must be >= 1 epoch, got {target}")
    if not epoch_seconds > 0:
        raise ValueError(f"epoch_seconds must be > 0, got {epoch_seconds}")
    per_epoch = epoch_seconds * (1.0 + margin)
    fit = math.floor(max(remaining_seconds, 0.0) / per_epoch)
    return EpochPlan(
        target=target,
        epochs=max(1, min(target, done + fit)),
        done=done,
        epoch_seconds=epoch_seconds,
        remaining_seconds=remaining_seconds,
        full_run_seconds=target * epoch_seconds,
    )


def with_epochs(spec: StudySpec, epochs: int, *, full: StudySpec) -> StudySpec:
    """``spec`` run for ``epochs``, its milestones those of ``full`` scaled to that length."""
    milestones = scaled_milestones(
        epochs, full_epochs=full.epochs, full_milestones=full.lr_milestones
    )
    return apply_overrides(spec, {"epochs": epochs, "lr_milestones": milestones})


def truncate(spec: StudySpec, epochs: int) -> StudySpec:
    """What the first ``epochs`` epochs of ``spec`` trained: that many epochs, with the
    milestones reached by then (the same lr at every step)."""
    return apply_overrides(
        spec, {"epochs": epochs, "lr_milestones": [m for m in spec.lr_milestones if m < epochs]}
    )


def same_schedule(a: StudySpec, b: StudySpec, epochs: int) -> bool:
    """Whether ``a`` and ``b`` decay the lr alike over their first ``epochs`` epochs (milestone
    m applies from 0-based epoch m on, as ``radam.schedules.step_decay``)."""

    def factors(spec: StudySpec) -> list[float]:
        return [
            spec.lr_gamma ** sum(1 for m in spec.lr_milestones if e >= m) for e in range(epochs)
        ]

    return factors(a) == factors(b)


@dataclass(frozen=True)
class RunChoice:
    """The run to make after the smoke: its plan, its spec, whether it continues the smoke."""

    plan: EpochPlan
    spec: StudySpec
    resume: bool


def choose_run(
    spec: StudySpec,
    *,
    smoke_epochs: int,
    epoch_seconds: float,
    remaining_seconds: float,
    resume_other_specs: bool,
) -> RunChoice:
    """The longest run of ``spec`` (to its ``epochs``) that fits the budget.

    The smoke trained ``smoke_epochs`` of ``spec``; the run continues from it when its own
    schedule is the smoke's over those epochs (always for ``spec`` itself; for a shortened spec
    only where ``resume_other_specs``: a pack's state holds no schedule, while a single trial's
    ``LambdaLR`` state brings its old milestones back), which saves their time. Else it trains
    from scratch, and fewer epochs fit.
    """
    plan = plan_epochs(
        target=spec.epochs,
        epoch_seconds=epoch_seconds,
        remaining_seconds=remaining_seconds,
        done=smoke_epochs,
    )
    final = with_epochs(spec, plan.epochs, full=spec) if plan.shortened else spec
    if final == spec or (resume_other_specs and same_schedule(final, spec, smoke_epochs)):
        return RunChoice(plan, final, resume=True)
    plan = plan_epochs(
        target=spec.epochs, epoch_seconds=epoch_seconds, remaining_seconds=remaining_seconds
    )
    final = with_epochs(spec, plan.epochs, full=spec) if plan.shortened else spec
    return RunChoice(plan, final, resume=False)
