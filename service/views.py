"""What the service shows of a study: ``StudyView`` (the record with the state Ray corrects
it to) and the small pure functions the routes build their answers with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from service.schemas import FigureFormat, FigureName
from studies.analysis.figures import GRID_FIGURES, figure_names_for_spec
from studies.results import StudyRecord, TrialRecord
from studies.spec import StudySpec
from studies.status import TERMINAL_STUDY, StudyStatus, TrialStatus


@dataclass(frozen=True)
class StudyView:
    """A study as the service sees it: the record with the state Ray corrects it to."""

    record: StudyRecord
    status: StudyStatus
    error: str | None
    trials: list[TrialRecord] | None = None
    replayed: bool = False


def figure_part(name: FigureName, fmt: FigureFormat) -> str:
    """The name a finished study's figure is kept as (``StudyService.cached``)."""
    return f"figure:{name.value}.{fmt.value}"


def study_figures(record: StudyRecord) -> list[FigureName]:
    """The figures a study has by its design (``analysis.figures.figure_names_for_spec``): a
    sampled study's tuning_curve and lr_samples; a grid's figure6, lr_sensitivity,
    expected_max, and warmup only where it varies the warmup (a foreign spec that does not
    parse: the grid's without the warmup figure, which needs one)."""
    try:
        spec = StudySpec.model_validate(record.spec)
    except Exception:
        return [FigureName(n) for n in GRID_FIGURES if n != FigureName.warmup.value]
    return [FigureName(n) for n in figure_names_for_spec(spec)]


def progress_counts(
    trials: list[TrialRecord], *, total: int, study_ended: bool = False
) -> dict[str, int]:
    """Trials by status. A study that ended runs nothing: a trial its end left open (the job
    died or was stopped under it) counts as pending, as a resumed study would run it again."""
    counts = {status.value: 0 for status in TrialStatus}
    for trial in trials:
        status = (
            TrialStatus.PENDING
            if study_ended and trial.status == TrialStatus.RUNNING
            else TrialStatus(trial.status)
        )
        counts[status.value] += 1
    done = counts["finished"] + counts["failed"] + counts["diverged"]
    total = max(total, len(trials))
    counts["pending"] += max(0, total - len(trials))
    return {"total": total, "done": done, **counts}


def eta_seconds(
    record: StudyRecord, status: str, *, done: int, total: int, now: datetime | None = None
) -> float | None:
    """Time left at the pace so far (done trials per second since the study was created)."""
    if status in TERMINAL_STUDY:
        return 0.0
    if done == 0 or total <= done:
        return None
    now = now or datetime.now(UTC)
    created = record.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    elapsed = (now - created).total_seconds()
    return max(0.0, elapsed / done * (total - done))


def spec_total(record: StudyRecord) -> int:
    if record.num_trials:
        return record.num_trials
    try:
        return StudySpec.model_validate(record.spec).num_trials
    except Exception:  # an old or foreign spec: the trials say how many there are
        return 0
