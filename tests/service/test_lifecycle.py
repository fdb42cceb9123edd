"""A study's whole life through the API, on a real service: submit a small digits study, follow
its progress, read its trials (JSON and CSV), its summary and its figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import digits_spec, start_service, wait_for

from service.process import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    process = start_service(home)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def finished(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/studies", json=digits_spec(name="lifecycle"))
    assert response.status_code == 202, response.text
    study = response.json()
    assert study["num_trials"] == 4
    assert study["progress"]["total"] == 4
    return wait_for(client, study["id"], timeout_s=300)


def test_study_succeeds_with_every_trial_done(finished: dict[str, Any]) -> None:
    study = finished
    assert study["status"] == "succeeded", study
    progress = study["progress"]
    assert progress == {**progress, "total": 4, "done": 4, "running": 0, "pending": 0}
    assert progress["finished"] + progress["diverged"] == 4
    best = study["best"]
    assert best is not None and 0.0 < best["best_acc"] <= 1.0
    assert study["eta_seconds"] == 0.0
    assert study["spec"]["dataset"] == "digits"


def test_trials_json_and_csv(client: httpx.Client, finished: dict[str, Any]) -> None:
    study_id = finished["id"]
    trials = client.get(f"/studies/{study_id}/trials").json()
    assert len(trials) == 4
    assert {(t["optimizer"], t["lr"]) for t in trials} == {
        ("adam", 0.01),
        ("adam", 0.001),
        ("radam", 0.01),
        ("radam", 0.001),
    }
    for trial in trials:
        assert trial["epochs_done"] == 1
        assert len(trial["history"]["test_acc"]) == 1
        assert trial["run_id"]
    response = client.get(f"/studies/{study_id}/trials", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 4
    assert {row["trial_id"] for row in rows} == {t["trial_id"] for t in trials}


def test_summary(client: httpx.Client, finished: dict[str, Any]) -> None:
    summary = client.get(f"/studies/{finished['id']}/summary").json()
    assert summary["study_id"] == finished["id"]
    assert summary["trials_done"] == summary["trials_total"] == 4
    assert summary["partial"] is False
    assert {o["optimizer"] for o in summary["optimizers"]} == {"adam", "radam"}
    assert len(summary["cells"]) == 4


def test_figures(client: httpx.Client, finished: dict[str, Any]) -> None:
    base = f"/studies/{finished['id']}/figures"
    png = client.get(f"{base}/figure6.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = client.get(f"{base}/lr_sensitivity.svg")
    assert svg.status_code == 200
    assert b"<svg" in svg.content[:2000]
    # a study with a single warmup setting has no warmup figure
    warmup = client.get(f"{base}/warmup.png")
    assert warmup.status_code == 404
    assert "warmup" in warmup.json()["detail"]


def test_listed_with_links(client: httpx.Client, finished: dict[str, Any]) -> None:
    page = client.get("/studies", params={"status": "succeeded"}).json()
    ids = [s["id"] for s in page["items"]]
    assert finished["id"] in ids
    links = finished["links"]
    assert links["summary"] == f"/studies/{finished['id']}/summary"
    assert links["figures"]["figure6.png"].endswith("/figures/figure6.png")
    assert links["ray_job"]
