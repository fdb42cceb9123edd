"""Helpers of the service tests, which run the real thing: a uvicorn process with its own local Ray head, MLflow on
SQLite in a temporary home, and httpx as the client. One service per test module."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from service.processes import supervise
from service.processes.service_process import ServiceProcess

TERMINAL = ("succeeded", "failed", "cancelled")


def digits_spec(name: str = "svc-test", **changes: Any) -> dict[str, Any]:
    """A study that runs in seconds: an MLP on scikit-learn's digits, one epoch, four trials."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["adam", "radam"],
        "learning_rates": [0.01, 0.001],
        "seeds": [0],
        "epochs": 1,
        "batch_size": 64,
        "train_subset": 600,
    }
    spec.update(changes)
    return spec


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "ROBUSTNESS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_UI": "false",
        "RAY_ADDRESS": "",  # the embedded default: the service starts its own head
        "RAY_NUM_CPUS": "2",
        "API_TOKEN": "",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def start_service(home: Path, **extra: str) -> ServiceProcess:
    home.mkdir(parents=True, exist_ok=True)
    process = ServiceProcess(env=service_env(home, **extra), log_path=home / "service.log")
    return process.start(timeout_s=240)


def wait_for(
    client: httpx.Client, study_id: str, *, until: tuple[str, ...] = TERMINAL, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/studies/{study_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in until:
            return body
        time.sleep(1.0)
    raise AssertionError(f"study {study_id} still {body.get('status')} after {timeout_s} s: {body}")


def wait_progress(
    client: httpx.Client, study_id: str, *, done_at_least: int, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/studies/{study_id}").json()
        if body["progress"]["done"] >= done_at_least or body["status"] in TERMINAL:
            return body
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} made no progress in {timeout_s} s: {body}")


def pids_alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if supervise.pid_alive(pid)]
