"""The service's behaviour, free of HTTP: create, read, list, cancel and recover studies.

MLflow (through ``studies.tracking``) holds the record of every study; Ray holds the execution.
A study's state is the record's status, corrected by its Ray job: a job that failed or was
stopped behind the record's back is written back to the record; a job that vanished (the
cluster restarted, e.g. the embedded head with the service) is resubmitted with ``--resume``
(Ray Tune picks up its experiment state) or, when that is off, the study is marked failed with
the reason. Nothing else is stored: a restarted service lists everything from MLflow.

Idempotency: a POST's ``Idempotency-Key`` determines the study id (a hash of the key), so a
retried POST finds the study it created, across restarts, without a lookup table.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg

from service.errors import (
    FigureNotAvailableError,
    IdempotencyConflictError,
    TooManyStudiesError,
)
from service.jobs import JobInfo, StudyJobs
from service.schemas import FigureFormat, FigureName
from service.settings import Settings
from studies import figures, report, tracking
from studies.errors import ClusterError, RobustnessError, StudyNotFoundError, StudyStateError
from studies.results import StudyRecord, StudyStatus, TrialRecord
from studies.spec import StudySpec
from studies.summary import StudySummary

log = logging.getLogger("service")

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE: tuple[StudyStatus, ...] = ("queued", "running")
ACTIVE_JOB: frozenset[str] = frozenset({"PENDING", "RUNNING"})
_STUDY_ID = re.compile(r"^[0-9a-f]{8,64}$")  # ours are 32; the CLI's 12
_FIGURE_CACHE_SIZE = 64  # rendered figures of finished studies kept in memory


@dataclass(frozen=True)
class StudyView:
    """A study as the service sees it: the record with the state Ray corrects it to."""

    record: StudyRecord
    status: StudyStatus
    error: str | None
    trials: list[TrialRecord] | None = None
    replayed: bool = False


def study_id_for_key(idempotency_key: str) -> str:
    return hashlib.sha256(b"robustness-idempotency:" + idempotency_key.encode()).hexdigest()[:32]


def check_study_id(study_id: str) -> None:
    """Ids are hex (the service makes 32 digits, the CLI 12); anything else is unknown and
    goes nowhere."""
    if not _STUDY_ID.fullmatch(study_id):
        raise StudyNotFoundError(f"no study has the id {study_id!r}")


class StudyService:
    def __init__(self, settings: Settings, *, jobs: StudyJobs) -> None:
        self.settings = settings
        self.jobs = jobs
        self.uri = settings.tracking_uri
        # one lock for every submission (create, resume): a GET that finds a just-created
        # study's job missing must not submit it a second time
        self._lock = threading.RLock()
        # Studies created and handed to the submitter, not yet known to Ray. Submitting happens
        # off the request path: a POST answers once the record exists (the first job on a
        # fresh head waits seconds for Ray's job agent). Guarded by ``_lock``.
        self._submitting: set[str] = set()
        self._submitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit-study")
        self._figures: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._figures_lock = threading.Lock()

    # ---- create -------------------------------------------------------------------------

    def create(self, spec: StudySpec, *, idempotency_key: str | None = None) -> StudyView:
        study_id = study_id_for_key(idempotency_key) if idempotency_key else uuid.uuid4().hex
        with self._lock:
            if idempotency_key:
                existing = self._existing(study_id)
                if existing is not None:
                    if existing.spec != spec.to_dict():
                        raise IdempotencyConflictError(
                            "this Idempotency-Key was already used for a different study "
                            f"({existing.study_id}); use a new key for a new study"
                        )
                    view = self._view(existing, self._job(existing.study_id))
                    return StudyView(view.record, view.status, view.error, replayed=True)
            active = self.active_count()
            if active >= self.settings.max_active_studies:
                raise TooManyStudiesError(
                    f"{active} studies are queued or running, the limit is "
                    f"{self.settings.max_active_studies}; try again later",
                    retry_after_s=self.settings.retry_after_s,
                )
            record = tracking.create_study(
                spec.to_dict(),
                tracking_uri=self.uri,
                study_id=study_id,
                experiment=self.settings.experiment,
                num_trials=spec.num_trials,
                # a fresh uuid4, or a key's id just looked up under this lock: no second search
                check_unique=False,
                details=False,  # written by the submitter, off the request path
            )
            self._submitting.add(study_id)
        self._submitter.submit(self._submit, study_id)
        return StudyView(record, "queued", None)

    def _submit(self, study_id: str) -> None:
        """Complete the study's record, then hand the study to Ray; a refusal fails the
        study, with Ray's reason."""
        self._write_details(study_id)
        try:
            self.jobs.submit(study_id)
            error = None
        except ClusterError as exc:
            error = str(exc)
        with self._lock:  # the record is final before a reconcile can see the id gone
            try:
                if error is not None:
                    tracking.set_study_status(
                        study_id, "failed", tracking_uri=self.uri, error=error
                    )
            finally:
                self._submitting.discard(study_id)

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

    def active_count(self) -> int:
        """Studies queued or running: those on their way to Ray, and those whose record is
        not final and whose job is pending or running.

        The records are counted first (one query, bounded by the limit): below the limit that
        is the answer, since a stale record (its job ended behind its back) can only make the
        count too high. Only at the limit is Ray's job list read, to leave out such records;
        so a POST does not pay for the cluster's whole job history.
        """
        limit = self.settings.max_active_studies
        listed = tracking.count_studies(tracking_uri=self.uri, statuses=ACTIVE, limit=limit)
        if listed < limit:
            return listed
        with self._lock:
            count = len(self._submitting)
        for study_id, job in self.jobs.states().items():
            if job.state not in ACTIVE_JOB:
                continue
            record = self._existing(study_id)
            if record is not None and record.status not in TERMINAL:
                count += 1
        return count

    def _existing(self, study_id: str) -> StudyRecord | None:
        try:
            return tracking.get_study(study_id, tracking_uri=self.uri)
        except StudyNotFoundError:
            return None

    # ---- read ---------------------------------------------------------------------------

    def get(self, study_id: str, *, with_trials: bool = True) -> StudyView:
        check_study_id(study_id)
        record = tracking.get_study(study_id, tracking_uri=self.uri)
        view = self._view(record, self._job(study_id))
        if not with_trials:
            return view
        trials = list(tracking.load_trials(study_id, tracking_uri=self.uri))
        return StudyView(view.record, view.status, view.error, trials=trials)

    def page(self, *, status: StudyStatus | None, limit: int, offset: int) -> list[StudyView]:
        records = tracking.list_studies(
            tracking_uri=self.uri, status=status, limit=limit, offset=offset
        )
        states = self._job_states() if any(r.status not in TERMINAL for r in records) else {}
        views = []
        for record in records:
            job = states.get(record.study_id, JobInfo("MISSING")) if states else None
            if record.status in TERMINAL:
                job = None
            views.append(self._view(record, job))
        return views

    def trials(self, study_id: str) -> list[TrialRecord]:
        check_study_id(study_id)
        tracking.get_study(study_id, tracking_uri=self.uri)  # 404 for an unknown study
        return list(tracking.load_trials(study_id, tracking_uri=self.uri))

    def trials_csv(self, study_id: str) -> str:
        trials = self.trials(study_id)
        with tempfile.TemporaryDirectory() as tmp:  # the same writer as the trials.csv artifact
            path = report.write_trials_csv(trials, Path(tmp) / "trials.csv")
            return path.read_text()

    def summary(self, study_id: str) -> StudySummary:
        check_study_id(study_id)
        return report.load_summary(study_id, tracking_uri=self.uri)

    def figure(self, study_id: str, name: FigureName, fmt: FigureFormat) -> bytes:
        summary = self.summary(study_id)
        finished = summary.status in TERMINAL and not summary.partial
        key = (study_id, name.value, fmt.value)
        if finished:
            with self._figures_lock:
                cached = self._figures.get(key)
            if cached is not None:
                return cached
        if summary.trials_counted == 0:
            raise FigureNotAvailableError(
                f"study {study_id} has no finished trial yet, so no {name.value} figure"
            )
        if name is FigureName.figure6:
            fig = figures.figure6(summary)
        elif name is FigureName.lr_sensitivity:
            fig = figures.lr_sensitivity(summary)
        elif name is FigureName.expected_max:
            fig = figures.expected_max_figure(summary)
        else:
            heat = figures.warmup_heatmap(summary)
            if heat is None:
                raise FigureNotAvailableError(
                    f"study {study_id} does not vary the warmup, so it has no warmup figure"
                )
            fig = heat
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt.value)
        data = buffer.getvalue()
        if finished:
            with self._figures_lock:
                self._figures[key] = data
                while len(self._figures) > _FIGURE_CACHE_SIZE:
                    self._figures.popitem(last=False)
        return data

    # ---- cancel -------------------------------------------------------------------------

    def cancel(self, study_id: str) -> StudyView:
        check_study_id(study_id)
        self._wait_submitted(study_id)  # a job submitted after the stop would run on
        record = tracking.get_study(study_id, tracking_uri=self.uri)
        view = self._view(record, self._job(study_id))
        if view.status in TERMINAL:
            raise StudyStateError(
                f"study {study_id} is already {view.status}; only a queued or running study "
                "can be cancelled"
            )
        self.jobs.stop(study_id)
        tracking.set_study_status(
            study_id, "cancelled", tracking_uri=self.uri, error="cancelled on request"
        )
        record = tracking.get_study(study_id, tracking_uri=self.uri)
        return StudyView(record, "cancelled", "cancelled on request")

    # ---- the state Ray corrects the record to -------------------------------------------

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

    def _view(self, record: StudyRecord, job: JobInfo | None) -> StudyView:
        if record.status in TERMINAL or job is None:
            return StudyView(record, record.status, record.error)
        if job.state == "PENDING":
            return StudyView(record, record.status, None)
        if job.state in ("RUNNING", "SUCCEEDED"):
            # SUCCEEDED with an active record: the runner's last write is on its way
            return StudyView(record, "running", None)
        return self._reconcile(record, job)

    def _reconcile(self, record: StudyRecord, job: JobInfo) -> StudyView:
        """The job ended or vanished while the record says queued/running: fix the record."""
        study_id = record.study_id
        with self._lock:
            if study_id in self._submitting:  # created, on its way to Ray
                return StudyView(record, record.status, None)
            fresh = tracking.get_study(study_id, tracking_uri=self.uri)
            if fresh.status in TERMINAL:  # someone (the runner, a cancel) got there first
                return StudyView(fresh, fresh.status, fresh.error)
            if job.state == "MISSING":
                latest = self._job(study_id)
                if latest is not None and latest.state != "MISSING":  # resubmitted meanwhile
                    return self._view(fresh, latest)
                return self._resume(fresh)
            if job.state == "STOPPED":
                status: StudyStatus = "cancelled"
                error = "its Ray job was stopped"
            else:
                status = "failed"
                error = f"its Ray job failed: {job.message or 'no message'}"
            tracking.set_study_status(study_id, status, tracking_uri=self.uri, error=error)
            return StudyView(fresh, status, error)

    def _write_details(self, study_id: str) -> None:
        """The record's params, spec.json and SCHEDULED run status (see ``create``). They are
        for people reading MLflow; the study runs without them, so a failure is logged."""
        try:
            tracking.write_study_details(study_id, tracking_uri=self.uri)
        except RobustnessError as exc:
            log.warning("study %s: could not complete its MLflow record: %s", study_id, exc)

    def _resume(self, record: StudyRecord) -> StudyView:
        # a service stopped between creating a record and submitting it left it incomplete
        self._write_details(record.study_id)
        try:
            self.jobs.submit(record.study_id, resume=record.status == "running")
        except ClusterError as exc:
            error = f"its Ray job vanished and could not be resumed: {exc}"
            tracking.set_study_status(record.study_id, "failed", tracking_uri=self.uri, error=error)
            return StudyView(record, "failed", error)
        return StudyView(record, record.status, None)

    def recover(self) -> list[str]:
        """After a (re)start: resume every active study whose job the cluster lost."""
        resumed: list[str] = []
        states = self.jobs.states()
        for status in ACTIVE:
            offset = 0
            while True:
                records = tracking.list_studies(
                    tracking_uri=self.uri, status=status, limit=100, offset=offset
                )
                for record in records:
                    job = states.get(record.study_id, JobInfo("MISSING"))
                    if job.state == "MISSING":
                        resumed.append(record.study_id)
                    self._view(record, job)
                if len(records) < 100:
                    break
                offset += 100
        return resumed

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
                record = tracking.get_study(study_id, tracking_uri=self.uri)
            except StudyNotFoundError:
                continue
            if record.status in ACTIVE:
                suspended.append((study_id, record.status))
                self.jobs.stop(study_id)
        deadline = time.monotonic() + timeout_s
        pending = {study_id for study_id, _ in suspended}
        while pending and time.monotonic() < deadline:
            states = self.jobs.states()
            pending = {i for i in pending if states.get(i, JobInfo("MISSING")).state in ACTIVE_JOB}
            if pending:
                time.sleep(0.5)
        return suspended

    def unsuspend(self, suspended: list[tuple[str, StudyStatus]]) -> None:
        """Put back the status a suspended study had; its interruption was not the user's."""
        for study_id, status in suspended:
            record = tracking.get_study(study_id, tracking_uri=self.uri)
            if record.status != "succeeded":
                tracking.set_study_status(study_id, status, tracking_uri=self.uri)

    def ready(self) -> tuple[str, str]:
        """("ok" | reason) for Ray and for MLflow."""
        try:
            self.jobs.ping()
            ray_state = "ok"
        except ClusterError as exc:
            ray_state = str(exc)
        try:
            tracking.list_studies(tracking_uri=self.uri, limit=1)
            mlflow_state = "ok"
        except RobustnessError as exc:
            mlflow_state = str(exc)
        except Exception as exc:  # a store that does not answer may raise anything
            mlflow_state = f"{type(exc).__name__}: {exc}"
        return ray_state, mlflow_state


def progress_counts(
    trials: list[TrialRecord], *, total: int, study_ended: bool = False
) -> dict[str, int]:
    """Trials by status. A study that ended runs nothing: a trial its end left open (the job
    died or was stopped under it) counts as pending, as a resumed study would run it again."""
    counts = {"finished": 0, "running": 0, "failed": 0, "diverged": 0, "pending": 0}
    for trial in trials:
        status = "pending" if study_ended and trial.status == "running" else trial.status
        counts[status] = counts.get(status, 0) + 1
    done = counts["finished"] + counts["failed"] + counts["diverged"]
    total = max(total, len(trials))
    counts["pending"] += max(0, total - len(trials))
    return {"total": total, "done": done, **counts}


def eta_seconds(
    record: StudyRecord, status: str, *, done: int, total: int, now: datetime | None = None
) -> float | None:
    """Time left at the pace so far (done trials per second since the study was created)."""
    if status in TERMINAL:
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


def as_dict(spec: StudySpec) -> dict[str, Any]:
    return spec.to_dict()
