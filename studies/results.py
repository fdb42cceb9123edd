"""What a study leaves behind, as plain data: the contract between the records
(``studies.tracking``, which reads them out of MLflow), the summaries
(``studies.analysis.summarize``) and the service. No MLflow, Ray or torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from studies.status import StudyStatus, TrialStatus

#: Per-epoch metrics every trial reports, in this order (MLflow step = epoch, from 1).
EPOCH_METRICS: tuple[str, ...] = ("train_loss", "test_loss", "test_acc", "lr")


def epoch_metrics(metric: str = "test_acc") -> tuple[str, ...]:
    """The per-epoch metrics of a study whose workload's metric is ``metric``: the losses, that
    metric in ``test_acc``'s place, the lr (``EPOCH_METRICS`` for accuracy)."""
    return tuple(metric if name == "test_acc" else name for name in EPOCH_METRICS)


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its configuration, its status and its per-epoch metric curves.

    ``test_acc`` is a fraction in [0, 1] per epoch; ``history[name][i]`` is the value after
    epoch i+1. A diverged trial keeps the epochs it finished.
    """

    trial_id: str
    optimizer: str
    lr: float
    warmup: str  # "none", "linear", "untuned_linear", "untuned_exponential"
    warmup_steps: int  # 0 when the kind has no length
    seed: int
    status: TrialStatus
    history: dict[str, list[float]] = field(default_factory=dict)
    node: str | None = None
    run_id: str | None = None  # the nested MLflow run
    train_seconds: float | None = None  # the trial's own training time
    repeat: int | None = None  # a sampled search's repeat (None in a grid)
    sample: int | None = None  # its sample index within the repeat, from 0

    @property
    def epochs_done(self) -> int:
        """Epochs recorded: the longest curve (every epoch logs all of them together)."""
        return max((len(curve) for curve in self.history.values()), default=0)

    def final(self, metric: str = "test_acc") -> float | None:
        """The last recorded value of ``metric`` (the study's ``spec.measured.name``)."""
        values = self.history.get(metric, [])
        return values[-1] if values else None

    @property
    def final_acc(self) -> float | None:
        accs = self.history.get("test_acc", [])
        return accs[-1] if accs else None

    @property
    def best_acc(self) -> float | None:
        accs = self.history.get("test_acc", [])
        return max(accs) if accs else None


@dataclass(frozen=True)
class StudyRecord:
    """One study: the parent MLflow run. ``spec`` is the spec's JSON (a dict)."""

    study_id: str
    name: str
    status: StudyStatus
    spec: dict[str, object]
    run_id: str
    experiment_id: str
    created_at: datetime
    updated_at: datetime | None = None
    error: str | None = None
    num_trials: int = 0
    restarts: int = 0  # times its driver died and the study was resubmitted
    attempt: int = 0  # its driver's latest resubmission, counted or not (its Ray job's number)
    suspended: bool = False  # a graceful stop of the service suspended it: not the driver's death
    launcher: str | None = None  # "service": its driver is a Ray job the service submitted


__all__ = [
    "EPOCH_METRICS",
    "StudyRecord",
    "StudyStatus",
    "TrialRecord",
    "TrialStatus",
    "epoch_metrics",
]
