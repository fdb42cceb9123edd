"""A study made outside the cluster and brought in with ``robustness import`` is served like
any other: listed, its status, trials, summary and figures, by a real uvicorn process.

The service is the embedded default (its own local Ray head, MLflow in SQLite in the module's
home); the study was written into that store before it started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import start_service

from service.processes.service_process import ServiceProcess
from studies.offline import figure6 as offline_figure6
from studies.offline.importer import import_outdir

pytestmark = pytest.mark.slow  # a service with its own Ray head, as the other service tests

SPEC = {
    "name": "imported-digits",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam", "sgd"],
    "learning_rates": [0.1, 0.01],
    "seeds": [0, 1],
    "epochs": 2,
    "batch_size": 64,
}


@pytest.fixture(scope="module")
def imported(home: Path) -> str:
    spec_file = home / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    out = home / "offline"
    args = [str(out), "--preset", str(spec_file), "--threads", "1", "--device", "cpu"]
    assert offline_figure6.main(args) == 0
    record, _ = import_outdir(out, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    return record.study_id


@pytest.fixture(scope="module")
def service(home: Path, imported: str) -> Iterator[ServiceProcess]:
    process = start_service(home)
    try:
        yield process
    finally:
        process.stop()


def test_the_service_serves_an_imported_study(client: httpx.Client, imported: str) -> None:
    listed = client.get("/studies").json()["items"]
    assert imported in [s["id"] for s in listed]
    study = client.get(f"/studies/{imported}").json()
    assert study["status"] == "succeeded" and study["progress"]["finished"] == 8
    rows = client.get(f"/studies/{imported}/trials").json()
    assert len(rows) == 8 and {r["status"] for r in rows} == {"finished"}
    summary = client.get(f"/studies/{imported}/summary").json()
    assert summary["trials_counted"] == 8 and summary["epochs"] == 2
    figure = client.get(f"/studies/{imported}/figures/figure6.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
