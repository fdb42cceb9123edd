"""The ``StudyStore`` contract (``studies/tracking/store.py``), checked against each backend
the project runs on: MLflow on SQLite (the embedded default) and a real ``mlflow server`` on
Postgres (the stack's; through the server's REST API, so the store's live reads take the
server path, not the SQL one). Here, beside the deployment fixtures that start Postgres and
the server; the server case is skipped with the reason where Postgres cannot run."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from studies.errors import StudyNotFoundError, TrackingError
from studies.status import StudyStatus, TrialStatus
from studies.tracking import ArtifactNotFoundError, MlflowStudyStore, StudyStore

SPEC = {"name": "contract", "dataset": "digits", "optimizers": ["adam", "radam"]}


@pytest.fixture(params=["sqlite", "mlflow-server-postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StudyStore]:
    if request.param == "sqlite":
        yield MlflowStudyStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    else:
        server = request.getfixturevalue("mlflow_server")
        yield MlflowStudyStore(server.url)


def _experiment() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


def test_studies_create_read_list_count_and_status(store: StudyStore) -> None:
    experiment = _experiment()
    first = store.create_study(SPEC, experiment=experiment, num_trials=4)
    second = store.create_study({**SPEC, "name": "second"}, experiment=experiment)
    assert first.status == StudyStatus.QUEUED and first.num_trials == 4
    got = store.get_study(first.study_id)
    assert got.spec == SPEC and got.name == "contract" and got.restarts == 0
    assert store.load_spec(first.study_id) == SPEC
    listed = [r.study_id for r in store.list_studies(experiment=experiment)]
    assert listed == [second.study_id, first.study_id]  # newest first
    with pytest.raises(TrackingError, match="already exists"):
        store.create_study(SPEC, experiment=experiment, study_id=first.study_id)

    store.set_study_status(first.study_id, StudyStatus.RUNNING)
    running = store.list_studies(experiment=experiment, status="running")
    assert [r.study_id for r in running] == [first.study_id]
    active = store.count_studies(statuses=[StudyStatus.QUEUED, StudyStatus.RUNNING], limit=10**6)
    store.set_study_status(first.study_id, StudyStatus.FAILED, error="boom")
    after = store.count_studies(statuses=[StudyStatus.QUEUED, StudyStatus.RUNNING], limit=10**6)
    assert after == active - 1
    failed = store.get_study(first.study_id)
    assert failed.status == StudyStatus.FAILED and failed.error == "boom"
    assert store.count_studies(statuses=["queued", "running"], limit=1) == 1  # bounded

    with pytest.raises(TrackingError, match="unknown study status"):
        store.set_study_status(second.study_id, "exploded")
    with pytest.raises(StudyNotFoundError):
        store.get_study("0" * 12)


def test_restarts_are_counted_with_their_reason(store: StudyStore) -> None:
    record = store.create_study(SPEC, experiment=_experiment(), launcher="service")
    assert record.launcher == store.get_study(record.study_id).launcher == "service"
    store.set_study_status(record.study_id, StudyStatus.RUNNING)
    assert store.record_restart(record.study_id, reason="its Ray job failed") == 1
    assert store.record_restart(record.study_id, reason="its Ray job vanished") == 2
    again = store.get_study(record.study_id)
    assert again.restarts == 2 and again.status == StudyStatus.RUNNING
    assert again.attempt == 2 and not again.suspended
    # a graceful stop's resubmission: a new attempt (its own Ray job), not a restart
    store.mark_suspended(record.study_id)
    assert store.get_study(record.study_id).suspended
    assert store.record_restart(record.study_id, reason="suspended", counted=False) == 3
    resumed = store.get_study(record.study_id)
    assert (resumed.restarts, resumed.attempt, resumed.suspended) == (2, 3, False)


def test_trials_start_log_end_settle_and_snapshot(store: StudyStore) -> None:
    record = store.create_study(SPEC, experiment=_experiment())
    study_id = record.study_id
    store.set_study_status(study_id, StudyStatus.RUNNING)
    params = {"optimizer": "adam", "lr": 0.01, "warmup": "none", "warmup_steps": 0, "seed": 0}
    a = store.start_trial(study_id, "a", params)
    assert store.start_trial(study_id, "a", params) == a  # reopened, never duplicated
    b = store.start_trial(study_id, "b", {**params, "optimizer": "radam"})
    store.log_epoch(a, 1, {"test_acc": 0.5, "train_loss": 1.0})
    store.log_epoch(a, 2, {"test_acc": 0.6, "train_loss": math.inf})
    store.log_epoch(a, 2, {"test_acc": 0.7, "train_loss": math.inf})  # written again: latest wins
    store.end_trial(a, TrialStatus.FINISHED, node="n1", train_seconds=1.5)
    store.log_history(b, {"test_acc": [0.1, math.nan]})

    assert store.settle_open_trials(study_id, TrialStatus.PENDING) == ["b"]
    live = store.load_trials(study_id)
    assert [t.trial_id for t in live] == ["a", "b"]
    first, second = live
    assert first.status == TrialStatus.FINISHED and first.node == "n1"
    assert first.history["test_acc"] == [0.5, 0.7]
    assert first.history["train_loss"] == [1.0, math.inf]
    assert first.train_seconds == 1.5 and first.optimizer == "adam" and first.lr == 0.01
    assert second.status == TrialStatus.PENDING and second.optimizer == "radam"
    assert second.history["test_acc"][0] == 0.1 and math.isnan(second.history["test_acc"][1])

    store.set_study_status(study_id, StudyStatus.SUCCEEDED)  # writes the snapshot first
    assert "trials.json" in store.list_artifacts(study_id)
    snapshot = store.load_trials(study_id)
    assert [t.trial_id for t in snapshot] == ["a", "b"]
    assert snapshot[0].history == first.history and snapshot[0].status == first.status
    with pytest.raises(TrackingError, match="unknown trial status"):
        store.end_trial(a, "exploded")


def test_log_epochs_writes_what_log_epoch_writes(store: StudyStore) -> None:
    """A pack's epoch: several runs' metrics in one call (one transaction on SQL stores) read
    back exactly as one ``log_epoch`` per run leaves them, latest values included."""
    import mlflow

    record = store.create_study(SPEC, experiment=_experiment())
    study_id = record.study_id
    params = {"optimizer": "adam", "lr": 0.01, "warmup": "none", "warmup_steps": 0, "seed": 0}
    packed = [store.start_trial(study_id, f"p{i}", {**params, "seed": i}) for i in range(3)]
    alone = [store.start_trial(study_id, f"s{i}", {**params, "seed": i}) for i in range(3)]
    values = {
        1: [{"test_acc": 0.1, "train_loss": 2.0}, {"test_acc": 0.2, "train_loss": math.nan}, {}],
        2: [{"test_acc": 0.3, "train_loss": 1.0}, {"test_acc": 0.4, "train_loss": math.inf}, {}],
    }
    for epoch, per_run in values.items():
        store.log_epochs([(run, epoch, m) for run, m in zip(packed, per_run, strict=True)])
        for run, metrics in zip(alone, per_run, strict=True):
            store.log_epoch(run, epoch, metrics)
    # a step written again keeps its latest value, as with log_epoch
    time.sleep(0.01)  # a later timestamp for the rewritten epoch
    store.log_epochs([(packed[0], 2, {"test_acc": 0.35, "train_loss": 1.0})])
    store.log_epoch(alone[0], 2, {"test_acc": 0.35, "train_loss": 1.0})
    store.log_epochs([])

    trials = {t.trial_id: t for t in store.load_trials(study_id)}
    for i in range(3):
        got, want = trials[f"p{i}"].history, trials[f"s{i}"].history
        assert got.keys() == want.keys()
        for name in want:
            assert [repr(v) for v in got[name]] == [repr(v) for v in want[name]]
    assert trials["p0"].history["test_acc"] == [0.1, 0.35]
    assert math.isnan(trials["p1"].history["train_loss"][0])
    assert trials["p1"].history["train_loss"][1] == math.inf
    # MLflow's latest-metric table, which its UI and search_runs show, moved on as well
    client = mlflow.MlflowClient(tracking_uri=store.tracking_uri)  # type: ignore[attr-defined]
    for run, run_alone in zip(packed, alone, strict=True):
        assert client.get_run(run).data.metrics == client.get_run(run_alone).data.metrics
    assert client.get_run(packed[0]).data.metrics["test_acc"] == 0.35

    # a deleted run in the batch: refused as log_epoch refuses it
    client.delete_run(alone[2])
    with pytest.raises(TrackingError):
        store.log_epochs([(alone[2], 3, {"test_acc": 0.9})])


def test_artifacts(store: StudyStore, tmp_path: Path) -> None:
    record = store.create_study(SPEC, experiment=_experiment())
    figure = tmp_path / "figure6.png"
    figure.write_bytes(b"\x89PNG fake")
    store.log_artifacts(record.study_id, [figure])
    assert "figure6.png" in store.list_artifacts(record.study_id)
    assert store.download_artifact(record.study_id, "figure6.png") == b"\x89PNG fake"
    with pytest.raises(ArtifactNotFoundError):
        store.download_artifact(record.study_id, "nothing.png")
    with pytest.raises(ArtifactNotFoundError):
        store.download_artifact(record.study_id, "../outside.png")
