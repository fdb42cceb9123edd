"""The stack's records path without Docker: an MLflow server on Postgres, as docker-compose.yml
runs it (``--backend-store-uri postgresql://``, ``--serve-artifacts``, ``--allowed-hosts``),
and Optuna's storage in the same Postgres.

A run logged through the server lands in Postgres (read back with SQL), its artifact goes
through the server to the artifact directory, and a Host header that is not allowed is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_stack import MlflowServer, Postgres

pytestmark = pytest.mark.slow


def test_a_run_logged_through_the_server_lands_in_postgres(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment("deploy-check")
    run = client.create_run(experiment_id, tags={"robustness.kind": "study"})
    run_id = run.info.run_id
    client.log_param(run_id, "optimizer", "radam")
    for epoch, acc in enumerate([0.31, 0.52, 0.61], start=1):
        client.log_metric(run_id, "test_acc", acc, step=epoch)
    spec = tmp_path / "spec.json"
    spec.write_text('{"name": "deploy-check"}')
    client.log_artifact(run_id, str(spec))
    client.set_terminated(run_id)

    # Read back through the server ...
    history = client.get_metric_history(run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.31), (2, 0.52), (3, 0.61)]
    assert client.get_run(run_id).data.params == {"optimizer": "radam"}
    assert client.get_run(run_id).info.status == "FINISHED"
    downloaded = Path(client.download_artifacts(run_id, "spec.json", str(tmp_path / "down")))
    assert downloaded.read_text() == '{"name": "deploy-check"}'
    # ... and it really is in Postgres, and the artifact in the server's directory.
    rows = mlflow_server.postgres.query(
        "mlflow", "SELECT status FROM runs WHERE run_uuid = %s", (run_id,)
    )
    assert rows == [("FINISHED",)]
    metrics = mlflow_server.postgres.query(
        "mlflow",
        "SELECT step, value FROM metrics WHERE run_uuid = %s AND key = 'test_acc' ORDER BY step",
        (run_id,),
    )
    assert metrics == [(1, 0.31), (2, 0.52), (3, 0.61)]
    assert list(mlflow_server.artifacts.rglob("spec.json"))


def test_the_server_refuses_hosts_not_allowed(mlflow_server: MlflowServer) -> None:
    import httpx

    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    allowed = httpx.get(
        mlflow_server.url + path, headers={"Host": f"127.0.0.1:{mlflow_server.port}"}
    )
    assert allowed.status_code == 200
    refused = httpx.get(mlflow_server.url + path, headers={"Host": "attacker.example"})
    assert refused.status_code in (400, 403)


def test_optuna_storage_in_the_same_postgres(postgres: Postgres) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = postgres.url("optuna")
    study = optuna.create_study(study_name="deploy-check", storage=storage, direction="maximize")
    study.optimize(lambda trial: -((trial.suggest_float("x", -1.0, 1.0) - 0.25) ** 2), n_trials=3)
    reloaded = optuna.load_study(study_name="deploy-check", storage=storage)
    assert len(reloaded.trials) == 3
    assert postgres.query("optuna", "SELECT count(*) FROM trials") == [(3,)]


def test_study_records_through_the_server(mlflow_server: MlflowServer) -> None:
    # The project's own tracking layer against the stack's MLflow (the service's path).
    tracking = pytest.importorskip("studies.tracking")
    from studies.presets import get_preset

    record = tracking.store_for(mlflow_server.url).create_study(get_preset("figure6-quick"))
    again = tracking.store_for(mlflow_server.url).get_study(record.study_id)
    assert again.study_id == record.study_id and again.status == "queued"
    assert (
        tracking.store_for(mlflow_server.url).load_spec(record.study_id)["name"] == "figure6-quick"
    )
