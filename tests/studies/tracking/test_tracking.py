"""The MLflow records of a study, against a real MLflow store: SQLite in a tmp dir, and (slow)
a real ``mlflow server`` process on a loopback port."""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from mlflow.tracking import MlflowClient

from service.processes import supervise
from studies import tracking
from studies.errors import StudyNotFoundError, TrackingError
from studies.results import TrialRecord
from studies.status import StudyStatus

SPEC = {
    "name": "tiny-robustness",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam", "adam", "sgd"],
    "lrs": [0.001, 0.003, 0.1],
    "warmups": [{"kind": "none"}, {"kind": "linear", "steps": 100}],
    "seeds": [0],
    "train": {"epochs": 3, "batch_size": 64},
    "notes": "x" * 7000,  # longer than MLflow's 6000-character param limit
}


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One store per module: creating a SQLite MLflow store runs its migrations (seconds).
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture()
def experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


def _trial_params(optimizer: str, lr: float, seed: int = 0) -> dict[str, object]:
    return {
        "optimizer": optimizer,
        "lr": lr,
        "warmup": "linear",
        "warmup_steps": 100,
        "seed": seed,
        "train": {"epochs": 3},
    }


def _write_trial(
    uri: str, study_id: str, trial_id: str, optimizer: str, lr: float, accs: list[float]
) -> str:
    run_id = tracking.store_for(uri).start_trial(study_id, trial_id, _trial_params(optimizer, lr))
    for epoch, acc in enumerate(accs, start=1):
        tracking.store_for(uri).log_epoch(
            run_id,
            epoch,
            {"train_loss": 1.0 / epoch, "test_loss": 1.5 / epoch, "test_acc": acc, "lr": lr},
        )
    return run_id


def test_create_and_get_round_trip(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment, num_trials=18)
    assert record.status == "queued"
    assert record.name == "tiny-robustness"
    assert record.num_trials == 18
    assert len(record.study_id) == 12
    assert record.spec == SPEC

    got = tracking.store_for(uri).get_study(record.study_id)
    assert got == record
    assert tracking.store_for(uri).load_spec(record.study_id) == SPEC

    run = MlflowClient(tracking_uri=uri).get_run(record.run_id)
    assert run.info.status == "SCHEDULED"  # queued: open, not running yet
    assert run.data.tags["robustness.kind"] == "study"
    assert run.data.tags["robustness.study_id"] == record.study_id
    assert run.data.params["train.epochs"] == "3"
    assert json.loads(run.data.params["lrs"]) == [0.001, 0.003, 0.1]
    assert len(run.data.params["notes"]) == 6000
    assert run.data.params["notes"].endswith("...[truncated]")
    spec_json = tracking.store_for(uri).download_artifact(record.study_id, "spec.json")
    assert json.loads(spec_json) == SPEC

    # The SQLite store keeps artifacts next to the database.
    db_dir = Path(uri.removeprefix("sqlite:///")).parent
    assert (db_dir / "mlartifacts").is_dir()


def test_record_without_details_is_readable_then_completed(uri: str, experiment: str) -> None:
    """The service's POST writes only the run and its tags; the rest follows before the
    study starts, and writing it twice changes nothing."""
    record = tracking.store_for(uri).create_study(
        SPEC, experiment=experiment, num_trials=18, details=False
    )
    assert tracking.store_for(uri).get_study(record.study_id) == record
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(record.run_id)
    assert run.info.status == "RUNNING"  # as MLflow opens a run
    assert run.data.params == {}

    tracking.store_for(uri).write_study_details(record.study_id)
    tracking.store_for(uri).write_study_details(record.study_id)
    run = client.get_run(record.run_id)
    assert run.info.status == "SCHEDULED"
    assert run.data.params["train.epochs"] == "3"
    assert run.data.params["notes"].endswith("...[truncated]")
    spec_json = tracking.store_for(uri).download_artifact(record.study_id, "spec.json")
    assert json.loads(spec_json) == SPEC
    assert tracking.store_for(uri).get_study(record.study_id).status == "queued"


def test_details_written_late_keep_a_started_study_running(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment, details=False)
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    tracking.store_for(uri).write_study_details(record.study_id)
    assert MlflowClient(tracking_uri=uri).get_run(record.run_id).info.status == "RUNNING"
    assert tracking.store_for(uri).get_study(record.study_id).status == "running"


def test_spec_too_long_for_a_tag_is_written_at_once(uri: str, experiment: str) -> None:
    spec = {**SPEC, "notes": "n" * 9000}  # the spec's JSON no longer fits MLflow's 8000
    record = tracking.store_for(uri).create_study(spec, experiment=experiment, details=False)
    assert tracking.store_for(uri).get_study(record.study_id).spec == spec
    tracking.store_for(uri).write_study_details(record.study_id)
    run = MlflowClient(tracking_uri=uri).get_run(record.run_id)
    assert run.info.status == "SCHEDULED"
    assert run.data.params["notes"].endswith("...[truncated]")


def test_count_studies_by_status(uri: str, experiment: str) -> None:
    ids = [
        tracking.store_for(uri)
        .create_study(SPEC, experiment=experiment, details=i % 2 == 0)
        .study_id
        for i in range(5)
    ]
    tracking.store_for(uri).set_study_status(ids[0], "running")
    tracking.store_for(uri).set_study_status(ids[1], "succeeded")
    tracking.store_for(uri).set_study_status(ids[2], "cancelled")
    # ids[3] queued (its run still RUNNING, details not written), ids[4] queued (SCHEDULED)

    def count(*statuses: str, limit: int = 100) -> int:
        return tracking.store_for(uri).count_studies(statuses=statuses, limit=limit)

    before = {s: count(s, limit=10_000) for s in StudyStatus}
    assert count("queued", "running", limit=10_000) == before["queued"] + before["running"]
    assert before["queued"] >= 2 and before["running"] >= 1
    assert count("queued", "running", limit=2) == 2  # bounded
    assert count(limit=10) == 0
    with pytest.raises(TrackingError, match="unknown study status"):
        count("paused")
    tracking.store_for(uri).set_study_status(ids[3], "failed", error="boom")
    assert count("queued", limit=10_000) == before["queued"] - 1
    assert count("failed", limit=10_000) == before["failed"] + 1


def test_study_id_given_and_duplicate_refused(uri: str, experiment: str) -> None:
    study_id = uuid.uuid4().hex[:12]
    record = tracking.store_for(uri).create_study(
        {**SPEC, "num_trials": 4}, study_id=study_id, experiment=experiment
    )
    assert record.study_id == study_id
    assert record.num_trials == 4  # from the spec dict's "num_trials"
    with pytest.raises(TrackingError, match="already exists"):
        tracking.store_for(uri).create_study(SPEC, study_id=study_id, experiment=experiment)


def test_unknown_study_raises_not_found(uri: str) -> None:
    calls = [
        lambda: tracking.store_for(uri).get_study("nosuchstudy"),
        lambda: tracking.store_for(uri).load_spec("nosuchstudy"),
        lambda: tracking.store_for(uri).set_study_status("nosuchstudy", "running"),
        lambda: tracking.store_for(uri).start_trial("nosuchstudy", "t0", {}),
        lambda: tracking.store_for(uri).load_trials("nosuchstudy"),
        lambda: tracking.store_for(uri).download_artifact("nosuchstudy", "spec.json"),
    ]
    for call in calls:
        with pytest.raises(StudyNotFoundError):
            call()


def test_missing_artifact_is_not_found(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    with pytest.raises(tracking.ArtifactNotFoundError):
        tracking.store_for(uri).download_artifact(record.study_id, "figure6.png")


def test_status_round_trip_and_run_status(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    client = MlflowClient(tracking_uri=uri)

    tracking.store_for(uri).set_study_status(record.study_id, "running")
    assert tracking.store_for(uri).get_study(record.study_id).status == "running"
    assert client.get_run(record.run_id).info.status == "RUNNING"

    tracking.store_for(uri).set_study_status(record.study_id, "failed", error="OOM on node 3")
    failed = tracking.store_for(uri).get_study(record.study_id)
    assert (failed.status, failed.error) == ("failed", "OOM on node 3")
    assert failed.updated_at is not None
    assert client.get_run(record.run_id).info.status == "FAILED"

    tracking.store_for(uri).set_study_status(record.study_id, "running")  # resumed
    assert tracking.store_for(uri).get_study(record.study_id).error is None
    tracking.store_for(uri).set_study_status(record.study_id, "cancelled")
    assert client.get_run(record.run_id).info.status == "KILLED"

    with pytest.raises(TrackingError, match="unknown study status"):
        tracking.store_for(uri).set_study_status(record.study_id, "exploded")


def test_list_newest_first_with_pagination_and_status_filter(uri: str, experiment: str) -> None:
    ids = []
    for index in range(5):
        record = tracking.store_for(uri).create_study(
            {**SPEC, "name": f"s{index}"}, experiment=experiment
        )
        ids.append(record.study_id)
        time.sleep(0.01)  # distinct start times, so "newest first" is well defined
    tracking.store_for(uri).set_study_status(ids[1], "running")
    tracking.store_for(uri).set_study_status(ids[3], "running")

    listed = tracking.store_for(uri).list_studies(experiment=experiment)
    assert [study.study_id for study in listed] == ids[::-1]
    page = tracking.store_for(uri).list_studies(experiment=experiment, limit=2, offset=1)
    assert [study.study_id for study in page] == [ids[3], ids[2]]
    running = tracking.store_for(uri).list_studies(experiment=experiment, status="running")
    assert [study.study_id for study in running] == [ids[3], ids[1]]
    assert all(study.spec["dataset"] == "digits" for study in listed)

    # Across every experiment (what the service lists after a restart).
    everywhere = {study.study_id for study in tracking.store_for(uri).list_studies(limit=1000)}
    assert set(ids) <= everywhere
    assert tracking.store_for(uri).list_studies(experiment="no-such-experiment") == []


def test_start_trial_is_idempotent_and_nested(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    first = tracking.store_for(uri).start_trial(
        record.study_id, "t00001", _trial_params("radam", 0.003)
    )
    again = tracking.store_for(uri).start_trial(
        record.study_id, "t00001", _trial_params("radam", 0.003)
    )
    tracking.forget_stores()  # a resumed study runs in a new process: found by its tag
    resumed = tracking.store_for(uri).start_trial(
        record.study_id, "t00001", _trial_params("radam", 0.003)
    )
    other = tracking.store_for(uri).start_trial(
        record.study_id, "t00002", _trial_params("adam", 0.003)
    )
    assert first == again == resumed != other

    run = MlflowClient(tracking_uri=uri).get_run(first)
    assert run.data.tags["mlflow.parentRunId"] == record.run_id
    assert run.data.tags["robustness.kind"] == "trial"
    assert run.data.tags["robustness.trial_id"] == "t00001"
    assert run.data.tags["robustness.status"] == "running"
    assert run.data.params["optimizer"] == "radam"
    assert float(run.data.params["lr"]) == 0.003
    assert run.data.params["train.epochs"] == "3"


def test_epoch_metrics_use_step_epoch_and_keep_non_finite(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    run_id = _write_trial(uri, record.study_id, "t1", "adam", 0.1, [0.3, 0.5])
    tracking.store_for(uri).log_epoch(
        run_id, 3, {"train_loss": math.nan, "test_loss": math.inf, "test_acc": 0.1, "lr": 0.1}
    )
    tracking.store_for(uri).end_trial(run_id, "diverged", node="10.0.0.7", train_seconds=12.5)

    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.3), (2, 0.5), (3, 0.1)]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"  # diverged: ran to its end; the tag says how
    assert run.data.tags["robustness.status"] == "diverged"
    assert run.data.tags["robustness.node"] == "10.0.0.7"
    assert run.data.metrics["train_seconds"] == 12.5

    (trial,) = tracking.store_for(uri).load_trials(record.study_id)
    assert trial.status == "diverged"
    assert trial.history["test_acc"] == [0.3, 0.5, 0.1]
    assert math.isnan(trial.history["train_loss"][2])
    assert trial.history["test_loss"][2] == math.inf
    assert (trial.node, trial.train_seconds, trial.run_id) == ("10.0.0.7", 12.5, run_id)


def _expected(run_ids: dict[str, str]) -> list[TrialRecord]:
    configs = {"t1": ("radam", 0.001, [0.2, 0.4, 0.6]), "t2": ("sgd", 0.1, [0.1, 0.1])}
    return [
        TrialRecord(
            trial_id=trial_id,
            optimizer=optimizer,
            lr=lr,
            warmup="linear",
            warmup_steps=100,
            seed=0,
            status="finished" if trial_id == "t1" else "failed",
            history={
                "lr": [lr] * len(accs),
                "test_acc": accs,
                "test_loss": [1.5 / e for e in range(1, len(accs) + 1)],
                "train_loss": [1.0 / e for e in range(1, len(accs) + 1)],
            },
            node="node-a",
            run_id=run_ids[trial_id],
            train_seconds=3.0,
        )
        for trial_id, (optimizer, lr, accs) in configs.items()
    ]


def test_load_trials_bulk_then_snapshot(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    study_id = record.study_id
    tracking.store_for(uri).set_study_status(study_id, "running")
    run_ids = {
        "t1": _write_trial(uri, study_id, "t1", "radam", 0.001, [0.2, 0.4, 0.6]),
        "t2": _write_trial(uri, study_id, "t2", "sgd", 0.1, [0.1, 0.1]),
    }
    for trial_id, status in (("t1", "finished"), ("t2", "failed")):
        tracking.store_for(uri).end_trial(
            run_ids[trial_id], status, node="node-a", train_seconds=3.0
        )
    expected = _expected(run_ids)

    assert tracking.store_for(uri).load_trials(study_id) == expected  # bulk SQL path

    tracking.store_for(uri).set_study_status(study_id, "succeeded")  # writes trials.json
    snapshot = tracking.store_for(uri).download_artifact(study_id, "trials.json")
    assert tracking.trials_from_json(snapshot) == expected
    tracking.forget_stores()
    assert tracking.store_for(uri).load_trials(study_id) == expected  # from the artifact
    assert tracking.store_for(uri).load_trials(study_id) == expected  # from the cache

    # A finished study reads its snapshot: a late write does not show...
    tracking.store_for(uri).log_epoch(run_ids["t2"], 3, {"test_acc": 0.9})
    assert tracking.store_for(uri).load_trials(study_id) == expected
    # ...until the study is resumed (live again) and re-finished (a new snapshot).
    tracking.store_for(uri).set_study_status(study_id, "running")
    live = {t.trial_id: t for t in tracking.store_for(uri).load_trials(study_id)}
    assert live["t2"].history["test_acc"] == [0.1, 0.1, 0.9]
    tracking.store_for(uri).set_study_status(study_id, "succeeded")
    final = {t.trial_id: t for t in tracking.store_for(uri).load_trials(study_id)}
    assert final["t2"].history["test_acc"] == [0.1, 0.1, 0.9]


def test_resumed_epoch_keeps_latest_value(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    run_id = _write_trial(uri, record.study_id, "t1", "adam", 0.01, [0.2, 0.3])
    time.sleep(0.01)  # a later timestamp for the rewritten epoch
    tracking.store_for(uri).log_epoch(run_id, 2, {"test_acc": 0.35})
    (trial,) = tracking.store_for(uri).load_trials(record.study_id)
    assert trial.history["test_acc"] == [0.2, 0.35]


def test_a_packs_epoch_is_one_transaction_on_sqlite(
    uri: str, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``log_epochs`` on a SQL store writes every member at once: MLflow's per-run
    ``log_batch`` (several sessions and a commit each) is not called."""
    from studies.tracking import epochs

    store = tracking.store_for(uri)
    record = store.create_study(SPEC, experiment=experiment)
    runs = [
        store.start_trial(record.study_id, f"m{i}", _trial_params("adam", 0.01, seed=i))
        for i in range(4)
    ]

    def per_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("written run by run")

    monkeypatch.setattr(epochs, "log_metrics", per_run)
    for epoch in (1, 2):
        store.log_epochs(
            [(run, epoch, {"test_acc": 0.1 * epoch + i}) for i, run in enumerate(runs)]
        )
    trials = store.load_trials(record.study_id)
    assert [t.history["test_acc"] for t in trials] == [[0.1 + i, 0.2 + i] for i in range(4)]
    client = MlflowClient(tracking_uri=uri)
    assert [client.get_run(run).data.metrics["test_acc"] for run in runs] == [
        0.2 + i for i in range(4)
    ]


def test_log_epochs_falls_back_run_by_run_when_one_transaction_cannot_take_it(
    uri: str, experiment: str
) -> None:
    """The same step twice in one call keeps the later value; a batch with an unknown run
    is written run by run, which refuses it with ``TrackingError`` as ``log_epoch`` does."""
    store = tracking.store_for(uri)
    record = store.create_study(SPEC, experiment=experiment)
    run = store.start_trial(record.study_id, "m0", _trial_params("adam", 0.01))
    store.log_epochs([(run, 1, {"test_acc": 0.1}), (run, 1, {"test_acc": 0.2})])
    (trial,) = store.load_trials(record.study_id)
    assert trial.history["test_acc"] == [0.2]
    with pytest.raises(TrackingError):
        store.log_epochs([(run, 2, {"test_acc": 0.3}), ("0" * 32, 2, {"test_acc": 0.3})])


def test_log_study_artifacts(uri: str, experiment: str, tmp_path: Path) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    figure = tmp_path / "figure6.png"
    figure.write_bytes(b"\x89PNG fake")
    tracking.store_for(uri).log_artifacts(record.study_id, [figure], artifact_path="figures")
    assert "figures/figure6.png" in tracking.store_for(uri).list_artifacts(
        record.study_id, path="figures"
    )
    data = tracking.store_for(uri).download_artifact(record.study_id, "figures/figure6.png")
    assert data == b"\x89PNG fake"


def test_ui_urls_follow_mlflow_routes(uri: str, experiment: str) -> None:
    """The table and charts links name the study's view (MLflow's viewStateShareKey: the
    parent run's id) and nothing the UI would take instead of it (a search facet in the URL
    makes MLflow 3.17 ignore a shared view); every link asks for the model-training layout."""
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    base = f"http://mlflow:5000/#/experiments/{record.experiment_id}/runs"
    layout = "workflowType=machine_learning"  # not the GenAI overview or "Evaluation runs"
    assert tracking.study_ui_url(record, ui_base="http://mlflow:5000/") == (
        f"{base}?viewStateShareKey={record.run_id}&compareRunsMode=TABLE&{layout}"
    )
    assert tracking.study_charts_url(record, ui_base="http://mlflow:5000") == (
        f"{base}?viewStateShareKey={record.run_id}&compareRunsMode=CHART&{layout}"
    )
    assert tracking.study_run_url(record, ui_base="http://mlflow:5000") == (
        f"{base}/{record.run_id}?{layout}"
    )


def _view_of(uri: str, record_experiment: str, run_id: str) -> dict[str, Any]:
    tags = MlflowClient(uri).get_experiment(record_experiment).tags
    return cast(dict[str, Any], json.loads(tags[f"mlflow.sharedViewState.{run_id}"]))


@pytest.mark.parametrize(
    ("preset", "axes"),
    [
        ("figure6", ["optimizer", "lr", "seed"]),
        ("figure7", ["optimizer", "lr", "warmup", "warmup_steps", "seed"]),
    ],
)
def test_a_study_writes_the_view_its_links_open(
    uri: str, experiment: str, preset: str, axes: list[str]
) -> None:
    """The experiment tag MLflow's UI reads for ``viewStateShareKey``: the study's trials,
    sorted by its metric (test accuracy, best first: a sorted table is not folded under the
    parent run), its axes and metrics as columns, every run in the charts, and a parallel-
    coordinates chart of the axes the grid varies against test_acc first. Written with the
    study's details, on either road (all at once, or the service's later write)."""
    from studies.presets import get_preset

    spec = get_preset(preset).to_dict()
    store = tracking.store_for(uri)
    at_once = store.create_study(spec, experiment=experiment)
    later = store.create_study(spec, experiment=experiment, details=False)
    assert f"mlflow.sharedViewState.{later.run_id}" not in (
        MlflowClient(uri).get_experiment(later.experiment_id).tags
    )
    store.write_study_details(later.study_id)
    for record in (at_once, later):
        view = _view_of(uri, record.experiment_id, record.run_id)
        assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{record.run_id}'"
        assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`test_acc`", False)
        assert view["selectedColumns"] == [f"params.`{a}`" for a in axes] + [
            "metrics.`test_acc`",
            "metrics.`test_loss`",
            "metrics.`train_loss`",
        ]
        assert view["runsHiddenMode"] == "SHOW_ALL"
        first, second = view["compareRunCharts"][:2]
        assert first["type"] == "PARALLEL"
        assert (first["selectedParams"], first["selectedMetrics"]) == (axes, ["test_acc"])
        assert (second["type"], second["metricKey"]) == ("LINE", "test_acc")
        sections = {s["uuid"] for s in view["compareRunSections"]}
        assert {c["metricSectionId"] for c in view["compareRunCharts"]} <= sections


def test_deleting_a_study_deletes_its_view(uri: str, experiment: str) -> None:
    store = tracking.store_for(uri)
    record = store.create_study(SPEC, experiment=experiment)
    assert _view_of(uri, record.experiment_id, record.run_id)
    store.delete_study(record.study_id)
    tags = MlflowClient(uri).get_experiment(record.experiment_id).tags
    assert f"mlflow.sharedViewState.{record.run_id}" not in tags


def test_bad_uri_and_unreachable_server_raise_tracking_error() -> None:
    with pytest.raises(TrackingError):
        tracking.store_for("bogus://nowhere").get_study("x")
    with pytest.raises(TrackingError, match="unreachable"):
        tracking.store_for(f"http://127.0.0.1:{_free_port()}").list_studies()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]  # fmt: skip
    log = tmp_path / "server.log"
    # service.processes.supervise: the one way this project starts, polls and stops a helper process
    server = supervise.spawn(command, env=os.environ.copy(), log_path=log)
    try:
        supervise.wait_healthy(
            server,
            lambda: requests.get(f"{url}/health", timeout=2).status_code == 200,
            timeout_s=120,  # the server takes 10-25 s to come up here
            what="mlflow server",
            error=TrackingError,
            log_path=log,
        )
        yield url
    finally:
        supervise.stop_process(server, grace_s=15)  # the server and its workers (its group)
        tracking.forget_stores()


@pytest.mark.slow
def test_against_a_real_tracking_server(mlflow_server: str, experiment: str) -> None:
    uri = mlflow_server
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    study_id = record.study_id
    tracking.store_for(uri).set_study_status(study_id, "running")
    run_ids = {
        "t1": _write_trial(uri, study_id, "t1", "radam", 0.001, [0.2, 0.4, 0.6]),
        "t2": _write_trial(uri, study_id, "t2", "sgd", 0.1, [0.1, 0.1]),
    }
    for trial_id, status in (("t1", "finished"), ("t2", "failed")):
        tracking.store_for(uri).end_trial(
            run_ids[trial_id], status, node="node-a", train_seconds=3.0
        )
    expected = _expected(run_ids)
    assert tracking.store_for(uri).get_study(study_id).status == "running"
    assert tracking.store_for(uri).load_trials(study_id) == expected  # get-history-bulk
    assert [s.study_id for s in tracking.store_for(uri).list_studies()] == [study_id]

    tracking.store_for(uri).set_study_status(study_id, "succeeded")
    tracking.forget_stores()
    assert tracking.store_for(uri).load_trials(study_id) == expected  # trials.json
    assert json.loads(tracking.store_for(uri).download_artifact(study_id, "spec.json")) == SPEC


def test_finishing_right_after_a_snapshot_does_not_snapshot_again(
    uri: str, experiment: str
) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    study_id = record.study_id
    client = MlflowClient(tracking_uri=uri)
    run_id = _write_trial(uri, study_id, "t1", "adam", 0.01, [0.2])

    tracking.store_for(uri).snapshot_trials(study_id)  # what the runner's report does
    token = client.get_run(record.run_id).data.tags["robustness.snapshot"]
    tracking.store_for(uri).set_study_status(study_id, "succeeded")
    assert client.get_run(record.run_id).data.tags["robustness.snapshot"] == token

    tracking.store_for(uri).set_study_status(study_id, "running")
    tracking.store_for(uri).snapshot_trials(study_id)
    stale = client.get_run(record.run_id).data.tags["robustness.snapshot"]
    tracking.store_for(uri).log_epoch(run_id, 2, {"test_acc": 0.4})  # after the snapshot
    tracking.store_for(uri).set_study_status(study_id, "succeeded")
    assert client.get_run(record.run_id).data.tags["robustness.snapshot"] not in (token, stale)
    (trial,) = tracking.store_for(uri).load_trials(study_id)
    assert trial.history["test_acc"] == [0.2, 0.4]


def test_snapshot_format_is_exact_for_non_finite_values() -> None:
    trial = TrialRecord(
        trial_id="t1",
        optimizer="sgd",
        lr=1.0,
        warmup="none",
        warmup_steps=0,
        seed=3,
        status="diverged",
        history={"train_loss": [2.3, math.inf, -math.inf, math.nan], "test_acc": [0.1 / 3]},
        node=None,
        run_id="r1",
        train_seconds=None,
    )
    text = tracking.trials_to_json([trial], study_id="s1")
    (back,) = tracking.trials_from_json(text)
    assert back.history["train_loss"][:3] == [2.3, math.inf, -math.inf]
    assert math.isnan(back.history["train_loss"][3])
    assert back.history["test_acc"] == [0.1 / 3]
    assert back == TrialRecord(**{**trial.__dict__, "history": back.history})
    assert json.loads(text)["version"] == 2
    # Version 1 (plain JSON numbers) still reads.
    v1 = json.dumps({"version": 1, "study_id": "s1", "trials": [{**trial.__dict__}]})
    assert tracking.trials_from_json(v1)[0].history["test_acc"] == [0.1 / 3]
    with pytest.raises(TrackingError, match="version"):
        tracking.trials_from_json('{"version": 99, "trials": []}')


def test_repeated_live_reads_see_new_epochs(uri: str, experiment: str) -> None:
    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    first = _write_trial(uri, record.study_id, "t1", "adam", 0.01, [0.2])
    _write_trial(uri, record.study_id, "t2", "sgd", 0.1, [0.3])
    before = {t.trial_id: t for t in tracking.store_for(uri).load_trials(record.study_id)}
    assert before["t1"].history["test_acc"] == [0.2]

    tracking.store_for(uri).log_epoch(first, 2, {"test_acc": 0.25})
    after = {t.trial_id: t for t in tracking.store_for(uri).load_trials(record.study_id)}
    assert after["t1"].history["test_acc"] == [0.2, 0.25]
    assert after["t2"] == before["t2"]  # unchanged run: served from the live cache


def test_concurrent_reads_agree(uri: str, experiment: str) -> None:
    """The service reads from a thread pool: the caches must hold up."""
    from concurrent.futures import ThreadPoolExecutor

    record = tracking.store_for(uri).create_study(SPEC, experiment=experiment)
    for index in range(3):
        _write_trial(uri, record.study_id, f"t{index}", "adam", 0.01, [0.1, 0.2])
    expected = tracking.store_for(uri).load_trials(record.study_id)
    tracking.store_for(uri).set_study_status(record.study_id, "succeeded")
    tracking.forget_stores()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda _: tracking.store_for(uri).load_trials(record.study_id), range(12))
        )
    assert all(result == expected for result in results)
