"""The part of ``StudyService`` that changes records behind the requests: waiting for
submissions, the reconciler's pass over the active studies (settle a job that ended behind
the record's back, resubmit a study whose driver died within its restart budget), and the
graceful suspend/unsuspend around a restart of the service. ``service.core`` explains the
rules; ``StudyService`` inherits these methods and provides the state declared here."""

from __future__ import annotations

import logging
import threading
import time

from service.jobs import JobInfo, StudyJobs
from service.read_cache import ReadCache
from service.settings import Settings
from studies.errors import ClusterError, RobustnessError, StudyNotFoundError
from studies.results import StudyRecord
from studies.status import ACTIVE_JOB_STATES, ACTIVE_STUDY, StudyStatus, TrialStatus
from studies.tracking import StudyStore

log = logging.getLogger("service")

LAUNCHER = "service"  # the records of the studies whose driver is a Ray job we submitted


class StudyLifecycle:
    """Reconciling and suspending; the state is ``StudyService``'s (see its ``__init__``)."""

    settings: Settings
    jobs: StudyJobs
    store: StudyStore
    reads: ReadCache
    _lock: threading.RLock
    _submitting: set[str]

    def wait_submitted(self, *, timeout_s: float = 30.0) -> None:
        """Until every study created so far has been handed to Ray (or failed)."""
        self._wait_submitted(None, timeout_s=timeout_s)

    def _wait_submitted(self, study_id: str | None, *, timeout_s: float = 30.0) -> None:
        """Until ``study_id`` (None: every study) is no longer on its way to Ray."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = self._submitting if study_id is None else self._submitting & {study_id}
                if not pending:
                    return
            time.sleep(0.05)

    def _job(self, study_id: str) -> JobInfo | None:
        try:
            return self.jobs.info(study_id)
        except ClusterError:
            return None  # the cluster does not answer: show the record as it is

    def _job_states(self) -> dict[str, JobInfo]:
        try:
            return self.jobs.states()
        except ClusterError:
            return {}

    # ---- the reconciler's pass ----------------------------------------------------------

    def reconcile(self) -> list[tuple[str, str]]:
        """One pass over the active studies: compare each record with its Ray job and fix
        what disagrees (see the module). Returns (study id, what was done) for each fix.
        Raises ``ClusterError`` when Ray's job list cannot be read (nothing is changed)."""
        states = self.jobs.states()
        actions: list[tuple[str, str]] = []
        for status in ACTIVE_STUDY:
            offset = 0
            while True:
                records = self.store.list_studies(status=status, limit=100, offset=offset)
                for record in records:
                    job = states.get(record.study_id, JobInfo("MISSING"))
                    done = self._reconcile(record, job)
                    if done is not None:
                        actions.append((record.study_id, done))
                if len(records) < 100:
                    break
                offset += 100
        return actions

    def _reconcile(self, record: StudyRecord, job: JobInfo) -> str | None:
        if job.state in ACTIVE_JOB_STATES or job.state == "SUCCEEDED":
            return None
        try:
            return self._settle(record, job)
        finally:
            self._wrote(record.study_id)

    def _settle(self, record: StudyRecord, job: JobInfo) -> str | None:
        study_id = record.study_id
        with self._lock:
            if study_id in self._submitting:  # created, on its way to Ray
                return None
            fresh = self.store.get_study(study_id)
            if fresh.status.terminal:  # someone (the runner, a cancel) got there first
                return None
            if job.state == "MISSING" and fresh.launcher != LAUNCHER:
                return None  # not ours: a `robustness run` in a terminal drives it
            if job.state == "MISSING":
                latest = self._job(study_id)
                if latest is None or latest.state != "MISSING":  # resubmitted meanwhile
                    return None
            self.store.settle_open_trials(study_id, TrialStatus.PENDING)
            if job.state == "STOPPED":
                error = "its Ray job was stopped"
                self.store.set_study_status(study_id, StudyStatus.CANCELLED, error=error)
                return f"cancelled: {error}"
            if job.state == "MISSING":
                reason = "its Ray job vanished (the cluster restarted or lost it)"
            else:
                reason = f"its Ray job failed: {job.message or 'no message'}"
            return self._restart(fresh, reason)

    def _restart(self, record: StudyRecord, reason: str) -> str:
        """Resubmit a study whose driver died, with resume, within its restart budget. A study
        a graceful stop suspended (``suspend``) is resubmitted outside the budget: its driver
        did not die, the service stopped it."""
        study_id = record.study_id
        limit = self.settings.max_restarts
        counted = not record.suspended
        if record.suspended:
            reason = "the service was stopped gracefully (its driver was suspended)"
        if counted and record.restarts >= limit:
            error = f"{reason}; not resubmitted: it was restarted {record.restarts} times already"
            self.store.set_study_status(study_id, StudyStatus.FAILED, error=error)
            return f"failed: {error}"
        # a service stopped between creating a record and submitting it left it incomplete
        self._write_details(study_id)
        try:
            # each attempt is its own Ray job (jobs.job_id); the ended ones stay as history
            attempt = self.store.record_restart(study_id, reason=reason, counted=counted)
            self.jobs.submit(study_id, resume=record.status == StudyStatus.RUNNING, attempt=attempt)
        except ClusterError as exc:
            error = f"{reason}; and it could not be resubmitted: {exc}"
            self.store.set_study_status(study_id, StudyStatus.FAILED, error=error)
            return f"failed: {error}"
        restarts = record.restarts + (1 if counted else 0)
        log.warning(
            "study %s: %s; resubmitted (restart %d of %d)", study_id, reason, restarts, limit
        )
        return f"resumed ({restarts}/{limit}): {reason}"

    def _write_details(self, study_id: str) -> None:
        """The record's params, spec.json and SCHEDULED run status (see ``create``). They are
        for people reading MLflow; the study runs without them, so a failure is logged."""
        try:
            self.store.write_study_details(study_id)
        except RobustnessError as exc:
            log.warning("study %s: could not complete its MLflow record: %s", study_id, exc)

    def suspend(self, *, timeout_s: float = 30.0) -> list[tuple[str, StudyStatus]]:
        """Before the embedded head goes down with the service: stop the active studies' jobs
        (the runner saves Tune's state on SIGTERM) and return them with their status, so that
        ``unsuspend`` can put the records back and the next start resumes them."""
        self.wait_submitted(timeout_s=timeout_s)
        suspended: list[tuple[str, StudyStatus]] = []
        for study_id, job in self.jobs.states().items():
            if job.state not in ("PENDING", "RUNNING"):
                continue
            try:
                record = self.store.get_study(study_id)
            except StudyNotFoundError:
                continue
            if record.status.active:
                suspended.append((study_id, record.status))
                self.jobs.stop(study_id)
        deadline = time.monotonic() + timeout_s
        pending = {study_id for study_id, _ in suspended}
        while pending and time.monotonic() < deadline:
            states = self.jobs.states()
            pending = {
                i for i in pending if states.get(i, JobInfo("MISSING")).state in ACTIVE_JOB_STATES
            }
            if pending:
                time.sleep(0.5)
        return suspended

    def unsuspend(self, suspended: list[tuple[str, StudyStatus]]) -> None:
        """Put back the status a suspended study had; its interruption was not the user's."""
        for study_id, status in suspended:
            record = self.store.get_study(study_id)
            if record.status != StudyStatus.SUCCEEDED:
                self.store.settle_open_trials(study_id, TrialStatus.PENDING)
                self.store.mark_suspended(study_id)  # its resubmission is not a restart
                self.store.set_study_status(study_id, status)
            self._wrote(study_id)

    def _wrote(self, study_id: str) -> None:
        """This service changed the study's record: no read may serve what it kept."""
        self.reads.forget(study_id)
