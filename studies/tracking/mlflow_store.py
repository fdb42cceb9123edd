"""``MlflowStudyStore``: the ``StudyStore`` contract (``store``) on MLflow, one per tracking URI
(``store_for``). Studies are parent runs (``studies``), trials nested runs (``trials``); live
trial reads go through the strategy the URI calls for (``reads``), a finished study's through
its snapshot (``snapshots``)."""

import json
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from studies.errors import TrackingError
from studies.results import StudyRecord, TrialRecord
from studies.status import TERMINAL_STUDY, StudyStatus, TrialStatus
from studies.tracking import artifacts, epochs, snapshots
from studies.tracking import studies as study_records
from studies.tracking import trials as trial_records
from studies.tracking.connection import (
    DEFAULT_EXPERIMENT,
    SNAPSHOT_ARTIFACT,
    SPEC_ARTIFACT,
    TAG_SNAPSHOT,
    TAG_SPEC_JSON,
    TAG_STATUS,
    Connection,
    wrap_errors,
)
from studies.tracking.reads import TrialReader, reader_for
from studies.tracking.store import StudyStore


class MlflowStudyStore(StudyStore):
    """Studies as MLflow parent runs, trials as nested runs (see ``studies``, ``trials``);
    live trial reads through the strategy the URI calls for (``reads``)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._conn = Connection(tracking_uri)
        self._reader: TrialReader | None = None
        self._reader_lock = threading.Lock()
        self._snapshots = snapshots.SnapshotCache()

    def __repr__(self) -> str:
        return f"MlflowStudyStore({self.tracking_uri!r})"

    @property
    def reader(self) -> TrialReader:
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None:
                    self._reader = reader_for(self._conn)
        return self._reader

    # ---- studies ------------------------------------------------------------------------

    @wrap_errors
    def create_study(
        self,
        spec: Mapping[str, Any],
        *,
        study_id: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        num_trials: int | None = None,
        check_unique: bool = True,
        details: bool = True,
        launcher: str | None = None,
    ) -> StudyRecord:
        """Open the parent run of a new study (status ``queued``) and return its record.

        With ``details`` the spec's params, ``spec.json`` and the SCHEDULED run status are
        written too; a caller that must answer fast (the service's POST) leaves them to
        ``write_study_details``. A given ``study_id`` is checked against the existing studies
        (a search over every experiment) unless ``check_unique`` is false. ``launcher``
        names who runs its driver (``"service"``: a Ray job the reconciler may resubmit)."""
        return study_records.create_study(
            self._conn,
            spec,
            study_id=study_id,
            experiment=experiment,
            num_trials=num_trials,
            check_unique=check_unique,
            details=details,
            launcher=launcher,
        )

    @wrap_errors
    def write_study_details(self, study_id: str) -> None:
        """Complete a record made with ``details=False``; writing twice is harmless."""
        study_records.write_study_details(self._conn, study_id, load_spec=self.load_spec)

    @wrap_errors
    def get_study(self, study_id: str) -> StudyRecord:
        run = self._conn.fresh_parent(study_id)
        record = study_records.record_from_run(run)
        if not record.spec:  # spec too long for its tag: read the artifact
            record = study_records.record_from_run(run, spec=self.load_spec(study_id))
        return record

    @wrap_errors
    def load_spec(self, study_id: str) -> dict[str, object]:
        run = self._conn.fresh_parent(study_id)
        spec_json = study_records.tags_of(run).get(TAG_SPEC_JSON)
        if spec_json:
            return cast(dict[str, object], json.loads(spec_json))
        data = artifacts.download(self._conn, run, SPEC_ARTIFACT, study_id=study_id)
        return cast(dict[str, object], json.loads(data))

    @wrap_errors
    def list_studies(
        self,
        *,
        status: StudyStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
        experiment: str | None = None,
    ) -> list[StudyRecord]:
        """Studies newest first, across every active experiment unless one is named."""
        return study_records.list_studies(
            self._conn, status=status, limit=limit, offset=offset, experiment=experiment
        )

    @wrap_errors
    def count_studies(self, *, statuses: Sequence[StudyStatus | str], limit: int) -> int:
        """How many studies have one of ``statuses``, up to ``limit`` (``min(count, limit)``)."""
        return study_records.count_studies(self._conn, statuses=statuses, limit=limit)

    @wrap_errors
    def set_study_status(
        self,
        study_id: str,
        status: StudyStatus | str,
        *,
        error: str | None = None,
        snapshot: bool = True,
    ) -> None:
        """Set the status (tag and MLflow run status). A study that ends gets its
        ``trials.json`` first (unless ``snapshot`` is false or this store's is current)."""
        value = _study_status(status)
        if value in TERMINAL_STUDY and snapshot and not self._snapshot_is_current(study_id):
            self.snapshot_trials(study_id)
        study_records.set_study_status(self._conn, study_id, value, error=error)

    @wrap_errors
    def record_restart(self, study_id: str, *, reason: str, counted: bool = True) -> int:
        return study_records.record_restart(self._conn, study_id, reason=reason, counted=counted)

    @wrap_errors
    def mark_suspended(self, study_id: str) -> None:
        study_records.mark_suspended(self._conn, study_id)

    @wrap_errors
    def set_study_tags(self, study_id: str, tags: Mapping[str, str]) -> None:
        """Extra tags on the parent run (e.g. where an imported study ran:
        ``robustness.source``, ``robustness.device``); values cut to MLflow's limit."""
        study_records.set_study_tags(self._conn, study_id, tags)

    @wrap_errors
    def delete_study(self, study_id: str) -> None:
        """Delete the parent run and its trial runs (MLflow's soft delete: they leave every
        search; ``mlflow gc`` purges them): for undoing a study that could not be written
        whole, such as an interrupted import."""
        study_records.delete_study(self._conn, study_id)

    # ---- trials -------------------------------------------------------------------------

    @wrap_errors
    def start_trial(self, study_id: str, trial_id: str, params: Mapping[str, Any]) -> str:
        """Open (or, for a resumed study, reopen) the nested run of a trial; its run id."""
        return trial_records.start_trial(self._conn, study_id, trial_id, params)

    @wrap_errors
    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """One ``log_batch``: every metric at ``step=epoch``; NaN and +-inf are kept."""
        trial_records.log_metrics(self._conn, run_id, trial_records.epoch_metrics(epoch, metrics))

    @wrap_errors
    def log_epochs(self, rows: Sequence[tuple[str, int, Mapping[str, float]]]) -> None:
        """A pack's epoch: on a SQL store every member's metrics in one transaction (what is
        read back is what ``log_epoch`` leaves); run by run otherwise (``tracking.epochs``)."""
        epochs.log_epochs(self._conn, rows)

    @wrap_errors
    def log_history(
        self, run_id: str, history: Mapping[str, Sequence[float]], *, first_epoch: int = 1
    ) -> None:
        """Many epochs at once (``history[name][i]`` at step ``first_epoch + i``)."""
        batch = trial_records.history_metrics(history, first_epoch=first_epoch)
        trial_records.log_metrics(self._conn, run_id, batch)

    @wrap_errors
    def end_trial(
        self,
        run_id: str,
        status: TrialStatus | str,
        *,
        node: str | None = None,
        train_seconds: float | None = None,
    ) -> None:
        """Close a trial's run: status (finished/diverged/failed), node, ``train_seconds``."""
        trial_records.end_trial(
            self._conn, run_id, _trial_status(status), node=node, train_seconds=train_seconds
        )

    @wrap_errors
    def settle_open_trials(self, study_id: str, status: TrialStatus | str) -> list[str]:
        return trial_records.settle_open_trials(self._conn, study_id, _trial_status(status))

    # ---- reading trials back ------------------------------------------------------------

    @wrap_errors
    def load_trials(self, study_id: str) -> list[TrialRecord]:
        """Every trial with its full histories, by trial id: a finished study's from its
        snapshot (one artifact, then memory); else live, through the reader. The histories
        are shared with those caches: read them, don't mutate them."""
        parent = self._conn.fresh_parent(study_id)
        tags = study_records.tags_of(parent)
        token = tags.get(TAG_SNAPSHOT)
        if token and StudyStatus.parse(tags.get(TAG_STATUS)) in TERMINAL_STUDY:
            cached = self._snapshots.get(study_id, token)
            if cached is None:
                data = artifacts.download(self._conn, parent, SNAPSHOT_ARTIFACT, study_id=study_id)
                cached = snapshots.trials_from_json(data)
                self._snapshots.keep(study_id, token, cached)
            return list(cached)
        return self.reader.read(parent)

    @wrap_errors
    def snapshot_trials(self, study_id: str) -> list[TrialRecord]:
        """Write every trial record as ``trials.json`` on the parent run, with a new token."""
        writes_before = self._conn.trial_writes
        parent = self._conn.fresh_parent(study_id)
        trials = self.reader.read(parent)
        with tempfile.TemporaryDirectory(prefix="robustness-snapshot-") as tmp:
            path = Path(tmp) / SNAPSHOT_ARTIFACT
            path.write_text(snapshots.trials_to_json(trials, study_id=study_id))
            self._conn.client.log_artifact(parent.info.run_id, str(path))
        token = uuid.uuid4().hex
        self._conn.client.set_tag(parent.info.run_id, TAG_SNAPSHOT, token)
        self._snapshots.keep(study_id, token, list(trials))
        self._snapshots.mark(study_id, token, writes_before)
        self.reader.forget({trial.run_id for trial in trials if trial.run_id})
        return trials

    def _snapshot_is_current(self, study_id: str) -> bool:
        token = self._snapshots.marked(study_id, self._conn.trial_writes)
        if token is None:
            return False
        parent = self._conn.fresh_parent(study_id)
        return study_records.tags_of(parent).get(TAG_SNAPSHOT) == token

    # ---- artifacts ----------------------------------------------------------------------

    @wrap_errors
    def log_artifacts(
        self, study_id: str, paths: Iterable[str | Path], *, artifact_path: str | None = None
    ) -> None:
        """Attach files (figures, summaries) to the parent run; folders are copied whole."""
        run_id = self._conn.parent(study_id).info.run_id
        artifacts.log_artifacts(self._conn, run_id, paths, artifact_path)

    @wrap_errors
    def list_artifacts(self, study_id: str, *, path: str | None = None) -> list[str]:
        return artifacts.list_artifacts(self._conn, self._conn.parent(study_id).info.run_id, path)

    @wrap_errors
    def download_artifact(self, study_id: str, name: str) -> bytes:
        """The bytes of one artifact of the parent run (``ArtifactNotFoundError`` if none)."""
        return artifacts.download(self._conn, self._conn.parent(study_id), name, study_id=study_id)


def _study_status(status: StudyStatus | str) -> StudyStatus:
    try:
        return StudyStatus(status)
    except ValueError:
        raise TrackingError(
            f"unknown study status {status!r}; one of {[s.value for s in StudyStatus]}"
        ) from None


def _trial_status(status: TrialStatus | str) -> TrialStatus:
    try:
        return TrialStatus(status)
    except ValueError:
        raise TrackingError(
            f"unknown trial status {status!r}; one of {[s.value for s in TrialStatus]}"
        ) from None


_stores: dict[str, MlflowStudyStore] = {}
_stores_lock = threading.Lock()


def store_for(tracking_uri: str) -> MlflowStudyStore:
    """The store of a tracking URI: one per URI per process, so its lookups are shared."""
    store = _stores.get(tracking_uri)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(tracking_uri, MlflowStudyStore(tracking_uri))
    return store


def forget_stores() -> None:
    """Drop every store and what it remembered (tests; a process that switches servers)."""
    with _stores_lock:
        _stores.clear()
