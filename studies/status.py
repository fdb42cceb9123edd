"""The one place study and trial statuses are defined: their values, which are terminal and
which active, and the MLflow run status each is recorded with.

Both enums are ``StrEnum``: a status compares equal to its text (``StudyStatus.RUNNING ==
"running"``), is written to MLflow tags and JSON as that text, and an unknown text read back
from a record maps to ``failed`` (``StudyStatus.parse``) rather than crashing a reader.

Study: ``queued`` (record made, no driver yet) -> ``running`` (a driver runs its trials) ->
``succeeded`` | ``failed`` | ``cancelled``. A driver that dies does not end a study: the
reconciler resubmits it (``running`` again) up to its restart budget.

Trial: ``pending`` (not started) -> ``running`` -> ``finished`` | ``diverged`` (ran to its end
and its loss blew up: its accuracy still counts) | ``failed`` (an error, no result).
"""

from __future__ import annotations

from enum import StrEnum


class StudyStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, text: str | None, *, default: StudyStatus | None = None) -> StudyStatus:
        """The status a record's tag names; an unknown one reads as failed (a record written
        by something else), a missing one as ``default`` (queued unless told)."""
        if not text:
            return default if default is not None else cls.QUEUED
        try:
            return cls(text)
        except ValueError:
            return cls.FAILED

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STUDY

    @property
    def active(self) -> bool:
        return self in ACTIVE_STUDY


class TrialStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"

    @classmethod
    def parse(cls, text: str | None, *, default: TrialStatus | None = None) -> TrialStatus:
        """As ``StudyStatus.parse``; a missing tag reads as running (a run is opened running)."""
        if not text:
            return default if default is not None else cls.RUNNING
        try:
            return cls(text)
        except ValueError:
            return cls.FAILED

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TRIAL


#: Study statuses after which nothing changes any more.
TERMINAL_STUDY: frozenset[StudyStatus] = frozenset(
    {StudyStatus.SUCCEEDED, StudyStatus.FAILED, StudyStatus.CANCELLED}
)
#: Study statuses that count against the active-studies limit, in the order they occur.
ACTIVE_STUDY: tuple[StudyStatus, ...] = (StudyStatus.QUEUED, StudyStatus.RUNNING)

#: Trial statuses after which a trial will not change any more.
TERMINAL_TRIAL: frozenset[TrialStatus] = frozenset(
    {TrialStatus.FINISHED, TrialStatus.DIVERGED, TrialStatus.FAILED}
)
#: Trial statuses whose accuracy counts in a summary (a diverged trial ran to its end).
COUNTED_TRIAL: frozenset[TrialStatus] = frozenset({TrialStatus.FINISHED, TrialStatus.DIVERGED})

#: The MLflow run status each study status is recorded with (a queued study's run is open,
#: SCHEDULED).
STUDY_RUN_STATUS: dict[StudyStatus, str] = {
    StudyStatus.QUEUED: "SCHEDULED",
    StudyStatus.RUNNING: "RUNNING",
    StudyStatus.SUCCEEDED: "FINISHED",
    StudyStatus.FAILED: "FAILED",
    StudyStatus.CANCELLED: "KILLED",
}
#: The MLflow run status of each trial status: a diverged trial ran to its end, so its run
#: FINISHED and the tag says how.
TRIAL_RUN_STATUS: dict[TrialStatus, str] = {
    TrialStatus.PENDING: "SCHEDULED",
    TrialStatus.RUNNING: "RUNNING",
    TrialStatus.FINISHED: "FINISHED",
    TrialStatus.DIVERGED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
}
#: MLflow run statuses of a run that is not closed.
ACTIVE_RUN_STATUSES: frozenset[str] = frozenset({"SCHEDULED", "RUNNING"})

#: Ray job states of a job that has not ended.
ACTIVE_JOB_STATES: frozenset[str] = frozenset({"PENDING", "RUNNING"})

__all__ = [
    "ACTIVE_JOB_STATES",
    "ACTIVE_RUN_STATUSES",
    "ACTIVE_STUDY",
    "COUNTED_TRIAL",
    "STUDY_RUN_STATUS",
    "TERMINAL_STUDY",
    "TERMINAL_TRIAL",
    "TRIAL_RUN_STATUS",
    "StudyStatus",
    "TrialStatus",
]
