"""The service's behaviour, free of HTTP: create, read, list, cancel and reconcile studies.

The store (``studies.tracking.StudyStore``, MLflow) holds the record of every study; Ray holds
the execution. Reads are pure: a GET shows the record (a study whose job is running shows as
running) and never writes or submits. Only ``reconcile`` (the service's reconciler loop, see
``service.reconciler``, and ``robustness reconcile``) compares the active records with Ray's
jobs and fixes them:

* job stopped behind the record's back -> ``cancelled``, with the reason;
* job FAILED or MISSING while the record is active (MISSING counts only for the studies the
  service launched: a study run by ``robustness run`` has no job): the driver died (a runner that fails on
  its own, for the spec or an error, records ``failed`` itself first), so the study is
  resubmitted with ``--resume`` (finished trials are not run again, interrupted ones continue
  from their last checkpoint), counting the restart and its reason on the parent run; past
  ``max_restarts`` it is ``failed`` with the reason;
* in each case the trials the dead driver left ``running`` are set back to ``pending``.

Nothing else is stored: a restarted service lists everything from the store.

``StudyService`` is three parts, one class: creating and cancelling here; the reads in
``service.reads`` (``StudyReads``); the reconciler's pass and the graceful suspend/unsuspend
in ``service.lifecycle`` (``StudyLifecycle``), which the reads build on. ``StudyView`` and the
routes' pure helpers are in ``service.views``.

Idempotency: a POST's ``Idempotency-Key`` determines the study id (a hash of the key), so a
retried POST finds the study it created, across restarts, without a lookup table.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from service.errors import IdempotencyConflictError, TooManyStudiesError
from service.jobs import StudyJobs
from service.lifecycle import LAUNCHER
from service.read_cache import ReadCache
from service.reads import StudyReads, check_study_id
from service.settings import Settings
from service.views import StudyView
from studies import tracking
from studies.errors import (
    ClusterError,
    DatasetUnavailableError,
    RobustnessError,
    StudyNotFoundError,
    StudyStateError,
)
from studies.results import StudyRecord, TrialRecord
from studies.spec import StudySpec
from studies.status import (
    ACTIVE_JOB_STATES,
    ACTIVE_STUDY,
    StudyStatus,
    TrialStatus,
)
from studies.tracking import StudyStore
from studies.workloads import registry

log = logging.getLogger("service")


def study_id_for_key(idempotency_key: str) -> str:
    return hashlib.sha256(b"robustness-idempotency:" + idempotency_key.encode()).hexdigest()[:32]


class StudyService(StudyReads):
    def __init__(
        self, settings: Settings, *, jobs: StudyJobs, store: StudyStore | None = None
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.store = store if store is not None else tracking.store_for(settings.tracking_uri)
        self.uri = settings.tracking_uri
        # one lock for every submission (create, resume): a GET that finds a just-created
        # study's job missing must not submit it a second time
        self._lock = threading.RLock()
        # Studies created and handed to the submitter, not yet known to Ray. Submitting happens
        # off the request path: a POST answers once the record exists (the first job on a
        # fresh head waits seconds for Ray's job agent). Guarded by ``_lock``.
        self._submitting: set[str] = set()
        self._submitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit-study")
        # finished studies' reads and the list's pages, in memory (see service.read_cache);
        # every write below drops what it changes (``_wrote``)
        self.reads = ReadCache(fresh_s=settings.read_cache_s)

    # ---- create -------------------------------------------------------------------------

    def check_data(self, spec: StudySpec) -> None:
        """On the embedded default the trials run here: a dataset not found here is refused
        before anything is recorded. On a cluster the workers' data is out of sight; the
        study's driver checks it before any trial starts (``robustness run --study-id``)."""
        if not self.settings.embedded:
            return
        where = registry.data_status(spec.dataset, data_dir=self.settings.resolved_data_dir)
        if not where.found:
            raise DatasetUnavailableError(where.hint)

    def create(self, spec: StudySpec, *, idempotency_key: str | None = None) -> StudyView:
        self.check_data(spec)
        study_id = study_id_for_key(idempotency_key) if idempotency_key else uuid.uuid4().hex
        if idempotency_key:  # a replay needs no lock: the record exists and never goes away
            replay = self._replay(study_id, spec)
            if replay is not None:
                return replay
        with self._lock:
            if idempotency_key:  # again, under the lock: two first POSTs of one key race
                replay = self._replay(study_id, spec)
                if replay is not None:
                    return replay
            active = self.active_count()
            if active >= self.settings.max_active_studies:
                raise TooManyStudiesError(
                    f"{active} studies are queued or running, the limit is "
                    f"{self.settings.max_active_studies}; try again later",
                    retry_after_s=self.settings.retry_after_s,
                )
            record = self.store.create_study(
                spec.to_dict(),
                study_id=study_id,
                experiment=self.settings.experiment,
                num_trials=spec.num_trials,
                # a fresh uuid4, or a key's id just looked up under this lock: no second search
                check_unique=False,
                details=False,  # written by the submitter, off the request path
                launcher=LAUNCHER,
            )
            self._submitting.add(study_id)
            self._wrote(study_id)
        self._submitter.submit(self._submit, study_id)
        return StudyView(record, StudyStatus.QUEUED, None)

    def replay_from_memory(self, spec: StudySpec, idempotency_key: str) -> StudyView | None:
        """The replay of a POST whose study finished and is kept in memory (see
        ``service.read_cache``), else None (``create`` answers it): lets the async route
        answer a dashboard's retried POSTs without a thread. A finished study's replay
        returns its record as it is, whatever the data directory holds now."""
        study_id = study_id_for_key(idempotency_key)
        existing = self.reads.peek_record(study_id)
        trials = self.reads.peek(study_id, "trials")
        if existing is None or not isinstance(trials, list):
            return None
        self._check_same_spec(existing, spec)
        return self._replayed(existing, trials)

    def _replay(self, study_id: str, spec: StudySpec) -> StudyView | None:
        try:
            existing = self._record(study_id)  # a finished study's from memory
        except StudyNotFoundError:
            return None
        self._check_same_spec(existing, spec)  # refused before any query of its trials
        return self._replayed(existing, self._trials_of(existing))

    @staticmethod
    def _check_same_spec(existing: StudyRecord, spec: StudySpec) -> None:
        if existing.spec != spec.to_dict():
            raise IdempotencyConflictError(
                "this Idempotency-Key was already used for a different study "
                f"({existing.study_id}); use a new key for a new study"
            )

    def _replayed(self, existing: StudyRecord, trials: list[TrialRecord]) -> StudyView:
        """The study a replayed POST created, with its trials (its progress)."""
        view = self._view(existing, self._job_of(existing))
        return StudyView(view.record, view.status, view.error, trials=trials, replayed=True)

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
                    self.store.set_study_status(study_id, StudyStatus.FAILED, error=error)
            finally:
                self._submitting.discard(study_id)
                self._wrote(study_id)

    def active_count(self) -> int:
        """Studies queued or running: those on their way to Ray, and those whose record is
        not final and whose job is pending or running.

        The records are counted first (one query, bounded by the limit): below the limit that
        is the answer, since a stale record (its job ended behind its back) can only make the
        count too high. Only at the limit is Ray's job list read, to leave out such records;
        so a POST does not pay for the cluster's whole job history.
        """
        limit = self.settings.max_active_studies
        listed = self.store.count_studies(statuses=ACTIVE_STUDY, limit=limit)
        if listed < limit:
            return listed
        with self._lock:
            count = len(self._submitting)
        for study_id, job in self.jobs.states().items():
            if job.state not in ACTIVE_JOB_STATES:
                continue
            record = self._existing(study_id)
            if record is not None and not record.status.terminal:
                count += 1
        return count

    def _existing(self, study_id: str) -> StudyRecord | None:
        try:
            return self.store.get_study(study_id)
        except StudyNotFoundError:
            return None

    # ---- cancel -------------------------------------------------------------------------

    def cancel(self, study_id: str) -> StudyView:
        check_study_id(study_id)
        self._wait_submitted(study_id)  # a job submitted after the stop would run on
        record = self.store.get_study(study_id)
        view = self._view(record, self._job(study_id))
        if view.status.terminal:
            raise StudyStateError(
                f"study {study_id} is already {view.status}; only a queued or running study "
                "can be cancelled"
            )
        self.jobs.stop(study_id)
        try:
            self.store.settle_open_trials(study_id, TrialStatus.PENDING)
            self.store.set_study_status(
                study_id, StudyStatus.CANCELLED, error="cancelled on request"
            )
        finally:
            self._wrote(study_id)
        record = self.store.get_study(study_id)
        return StudyView(record, StudyStatus.CANCELLED, "cancelled on request")

    def ready(self) -> tuple[str, str]:
        """("ok" | reason) for Ray and for MLflow."""
        try:
            self.jobs.ping()
            ray_state = "ok"
        except ClusterError as exc:
            ray_state = str(exc)
        try:
            self.store.list_studies(limit=1)
            mlflow_state = "ok"
        except RobustnessError as exc:
            mlflow_state = str(exc)
        except Exception as exc:  # a store that does not answer may raise anything
            mlflow_state = f"{type(exc).__name__}: {exc}"
        return ray_state, mlflow_state
