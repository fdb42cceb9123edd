"""The whole stack's topology on loopback, without Docker, as docker-compose.yml wires it:
Postgres, an MLflow server on it, a Ray head that runs no trials with two workers (token auth),
and the API in cluster mode (RAY_ADDRESS = the head's Jobs API, MLFLOW_TRACKING_URI = the
server, API_TOKEN set). A study submitted over HTTP runs as a Ray Job on the cluster, its
records land in Postgres through the server, and the API serves its summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from deploy_stack import MlflowServer, RayCluster

pytestmark = pytest.mark.slow

API_TOKEN = "deploy-topology-token"
TERMINAL = ("succeeded", "failed", "cancelled")
# A study that runs in seconds: an MLP on scikit-learn's digits, one epoch, four trials.
STUDY = {
    "name": "topology",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["adam", "radam"],
    "learning_rates": [0.01, 0.001],
    "seeds": [0],
    "epochs": 1,
    "batch_size": 64,
    "train_subset": 600,
}

JOB_STATUS = """
import json, time
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient("{url}")
deadline = time.monotonic() + 120
status = client.get_job_status("{job}")
while not status.is_terminal() and time.monotonic() < deadline:
    time.sleep(1)
    status = client.get_job_status("{job}")
print(json.dumps(str(status.value)))
"""


@pytest.fixture(scope="module")
def api(
    ray_cluster: RayCluster, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    from service.processes.service_process import ServiceProcess

    home = tmp_path_factory.mktemp("api-home")
    env = {
        **ray_cluster.env,  # RAY_AUTH_MODE=token, RAY_AUTH_TOKEN
        "RAY_ADDRESS": ray_cluster.dashboard_url,  # the Jobs API, as http://ray-head:8265
        "MLFLOW_TRACKING_URI": mlflow_server.url,  # as http://mlflow:5000
        "MLFLOW_UI_URL": mlflow_server.url,
        "MLFLOW_UI": "false",
        "API_TOKEN": API_TOKEN,
        "ROBUSTNESS_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    process = ServiceProcess(env=env, log_path=home / "service.log")
    process.start(timeout_s=240)
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def finished(client: httpx.Client) -> dict[str, Any]:
    refused = client.post("/studies", json=STUDY)
    assert refused.status_code == 401, refused.text
    response = client.post("/studies", json=STUDY, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    deadline = time.monotonic() + 420
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/studies/{study_id}").json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(2.0)
    raise AssertionError(f"study {study_id} still {body.get('status')} after 420 s: {body}")


def test_the_api_is_ready_on_the_cluster(client: httpx.Client) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ray"] == "ok" and ready.json()["mlflow"] == "ok"


def test_a_study_runs_as_a_ray_job_on_the_workers(
    finished: dict[str, Any], ray_cluster: RayCluster
) -> None:
    assert finished["status"] == "succeeded", finished
    assert finished["progress"]["done"] == 4
    # The study's status comes from MLflow; its Ray Job exits a moment later (the driver
    # writes the summary after the last trial), so wait for the job's own end.
    code = JOB_STATUS.format(url=ray_cluster.dashboard_url, job=finished["id"])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **ray_cluster.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == "SUCCEEDED"


def test_records_land_in_postgres_through_the_server(
    finished: dict[str, Any], mlflow_server: MlflowServer
) -> None:
    parents = mlflow_server.postgres.query(
        "mlflow",
        "SELECT run_uuid FROM tags WHERE key = 'robustness.study_id' AND value = %s AND run_uuid IN "
        "(SELECT run_uuid FROM tags WHERE key = 'robustness.kind' AND value = 'study')",
        (finished["id"],),
    )
    assert len(parents) == 1
    trials = mlflow_server.postgres.query(
        "mlflow",
        "SELECT count(*) FROM tags WHERE key = 'mlflow.parentRunId' AND value = %s",
        (parents[0][0],),
    )
    assert trials == [(4,)]
    metrics = mlflow_server.postgres.query(
        "mlflow",
        "SELECT count(*) FROM metrics WHERE key = 'test_acc' AND run_uuid IN "
        "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = %s)",
        (parents[0][0],),
    )
    assert metrics == [(4,)]  # one epoch per trial


def test_the_api_serves_the_summary(client: httpx.Client, finished: dict[str, Any]) -> None:
    summary = client.get(f"/studies/{finished['id']}/summary")
    assert summary.status_code == 200, summary.text
    trials = client.get(f"/studies/{finished['id']}/trials").json()
    assert len(trials) == 4 and all(t["epochs_done"] == 1 for t in trials)
