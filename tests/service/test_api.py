"""The service through its front door, on one real process (uvicorn, its own local Ray head,
SQLite MLflow): a study's whole life (submit, progress, trials as JSON and CSV, summary,
figures); every bad request answered with the right 4xx and a message naming the field (never
a 500, never a trace); auth on POST and cancel; idempotent POSTs; the limit on active studies
(429 + Retry-After); cancel; presets; health.

The life-cycle tests come first: they wait for their study to finish, so that the later ones
find no study active (the limit here is one)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from service_helpers import digits_spec, service_env, start_service, wait_for

from service.processes.service_process import ServiceProcess
from studies import tracking

pytestmark = pytest.mark.slow

TOKEN = "test-token-5f1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 4096  # bytes
NO_DEBIAN = Path("/nonexistent/debian-fashion-mnist")


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    process = start_service(
        home,
        API_TOKEN=TOKEN,
        ROBUSTNESS_MAX_ACTIVE_STUDIES="1",
        ROBUSTNESS_MAX_BODY_BYTES=str(MAX_BODY),
        ROBUSTNESS_MAX_TRIALS="50",
        ROBUSTNESS_DEBIAN_FASHION_MNIST=str(NO_DEBIAN),  # Fashion-MNIST absent, even if installed
    )
    try:
        yield process
    finally:
        process.stop()


# ---- a study's whole life ----


@pytest.fixture(scope="module")
def finished(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/studies", json=digits_spec(name="lifecycle"), headers=AUTH)
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


def test_figures(client: httpx.Client, finished: dict[str, Any], home: Path) -> None:
    base = f"/studies/{finished['id']}/figures"
    png = client.get(f"{base}/figure6.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    # a finished study's figure is the file its runner logged, not rendered again per request
    uri = f"sqlite:///{home / 'mlflow.db'}"
    logged = tracking.store_for(uri).download_artifact(finished["id"], "figure6.png")
    assert png.content == logged
    svg = client.get(f"{base}/lr_sensitivity.svg")
    assert svg.status_code == 200
    assert b"<svg" in svg.content[:2000]
    budget = client.get(f"{base}/expected_max.png")
    assert budget.status_code == 200 and budget.content.startswith(b"\x89PNG")
    assert b"<svg" in client.get(f"{base}/expected_max.svg").content[:2000]
    # a study with a single warmup setting has no warmup figure
    warmup = client.get(f"{base}/warmup.png")
    assert warmup.status_code == 404
    assert "warmup" in warmup.json()["detail"]


FIGURES_WITHOUT_WARMUP = {
    f"{name}.{fmt}"
    for name in ("figure6", "lr_sensitivity", "expected_max")
    for fmt in ("png", "svg")
}
MEDIA = {"png": "image/png", "svg": "image/svg+xml"}


def assert_listed_figures_served(client: httpx.Client, study: dict[str, Any]) -> set[str]:
    """Every figure a study's links list answers 200 with its image, in the detail and in the
    list alike; returns the names listed."""
    figures: dict[str, str] = study["links"]["figures"]
    page = client.get("/studies", params={"status": study["status"]}).json()
    (listed,) = [s for s in page["items"] if s["id"] == study["id"]]
    assert listed["links"]["figures"] == figures
    for name, url in figures.items():
        assert url == f"/studies/{study['id']}/figures/{name}"
        response = client.get(url)
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"].startswith(MEDIA[name.rsplit(".", 1)[1]]), name
    return set(figures)


def test_listed_with_links(client: httpx.Client, finished: dict[str, Any]) -> None:
    page = client.get("/studies", params={"status": "succeeded"}).json()
    ids = [s["id"] for s in page["items"]]
    assert finished["id"] in ids
    links = finished["links"]
    assert links["summary"] == f"/studies/{finished['id']}/summary"
    assert links["ray_job"]
    # one warmup setting: no warmup figure listed (it would answer 404), every listed one served
    assert assert_listed_figures_served(client, finished) == FIGURES_WITHOUT_WARMUP


def test_a_warmup_study_lists_its_warmup_figure(client: httpx.Client) -> None:
    """adam with and without a linear warmup: the warmup figure is listed, and served."""
    warmup = {"kinds": ["none", "linear"], "steps": [5], "optimizers": ["adam"]}
    spec = digits_spec(name="warmup-figures", optimizers=["adam"], warmup=warmup)
    response = client.post("/studies", json=spec, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["links"]["figures"] == {}  # no trial finished: nothing to draw yet
    study = wait_for(client, response.json()["id"], timeout_s=300)
    assert study["status"] == "succeeded", study
    assert assert_listed_figures_served(client, study) == FIGURES_WITHOUT_WARMUP | {
        "warmup.png",
        "warmup.svg",
    }


def test_a_sampled_study_serves_its_own_table_and_figures(
    client: httpx.Client, finished: dict[str, Any]
) -> None:
    """Random search, each optimizer its own: the summary has a search per optimizer, the
    links list only the figures it has, and those are served (the grid's are 404)."""
    del finished  # the grid study is done: this one may start (one active study at a time)
    spec = digits_spec(
        name="sampled", search={"kind": "random", "num_samples": 2}, learning_rates=[0.01, 0.1]
    )
    response = client.post("/studies", json=spec, headers=AUTH)
    assert response.status_code == 202, response.text
    study = wait_for(client, response.json()["id"], timeout_s=300)
    assert study["status"] == "succeeded"
    assert assert_listed_figures_served(client, study) == {
        "lr_samples.png",
        "lr_samples.svg",
        "tuning_curve.png",
        "tuning_curve.svg",
    }
    summary = client.get(f"/studies/{study['id']}/summary").json()
    assert summary["search"] == "random"
    searches = summary["sampled"]["optimizers"]
    assert [(o["optimizer"], o["samples"]) for o in searches] == [("radam", 2), ("adam", 2)]
    rows = client.get(f"/studies/{study['id']}/trials").json()
    assert {(r["optimizer"], r["repeat"], r["sample"]) for r in rows} == {
        (o, 0, s) for o in ("radam", "adam") for s in (0, 1)
    }
    grid_figure = client.get(f"/studies/{study['id']}/figures/figure6.png")
    assert grid_figure.status_code == 404 and "tuning_curve" in grid_figure.json()["detail"]


def test_mlflow_record_is_complete(home: Path, finished: dict[str, Any]) -> None:
    """The POST writes only the run and its tags; the submitter adds the spec as params and
    spec.json before the job starts: a finished study's parent run has them all."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    record = tracking.store_for(uri).get_study(finished["id"])
    run = MlflowClient(tracking_uri=uri).get_run(record.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "digits"
    assert json.loads(run.data.params["optimizers"]) == ["adam", "radam"]
    spec = tracking.store_for(uri).download_artifact(finished["id"], "spec.json")
    assert json.loads(spec) == finished["spec"]


def test_mlflow_links_land_where_a_researcher_looks(
    home: Path, finished: dict[str, Any], tmp_path: Path
) -> None:
    """Each MLflow link the service answers with (and the quickstart prints), opened in
    headless Chromium against a real ``mlflow server`` on this study's store (SQLite): the
    comparison's first chart plots the study's axes against test_acc, the trials table lists
    every trial best first, the study run is in the model-training layout (tests/mlflow_pages.py;
    screenshots under ``tmp_path``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from browser import browser
    from mlflow_pages import Trial, assert_researcher_view, open_study_links

    from service.links import study_links
    from service.processes.mlflow_ui import MlflowUi

    browser()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    record = tracking.store_for(uri).get_study(finished["id"])
    trials = [
        Trial(t.trial_id, t.history["test_acc"][-1])
        for t in tracking.store_for(uri).load_trials(finished["id"])
    ]
    ui = MlflowUi(tracking_uri=uri, artifacts_dir=home / "mlartifacts", log_dir=home / "ui-logs")
    ui.start(wait_s=180)
    try:
        links = study_links(record, mlflow_ui=ui.url, ray_dashboard=None)
        assert links.mlflow_compare and links.mlflow_trials and links.mlflow_run
        seen = open_study_links(
            compare=links.mlflow_compare,
            trials=links.mlflow_trials,
            run=links.mlflow_run,
            shots=tmp_path,
        )
    finally:
        ui.stop()
    # the digits study: 2 optimizers x 2 learning rates, one seed, no warmup
    assert_researcher_view(
        seen,
        study_name=record.name,
        experiment="robustness",
        trials=trials,
        axes=["optimizer", "lr"],
    )


# ---- the front door ----


def test_health_and_readiness(client: httpx.Client) -> None:
    alive = client.get("/healthz")
    assert alive.json() == {"status": "alive"}
    # every response says how long the service itself took over it
    assert alive.headers["server-timing"].startswith("app;dur=")
    assert float(alive.headers["server-timing"].removeprefix("app;dur=")) >= 0.0
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ray"] == "ok"
    assert ready.json()["mlflow"] == "ok"


def test_presets(client: httpx.Client) -> None:
    names = [p["name"] for p in client.get("/presets").json()]
    assert "figure6" in names and "figure6-quick" in names
    one = client.get("/presets/figure6").json()
    assert one["spec"]["dataset"] == "cifar10"
    assert one["num_trials"] == 36
    missing = client.get("/presets/figure99")
    assert missing.status_code == 404
    assert "figure99" in missing.json()["detail"]


def test_openapi_documents_the_endpoints(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert "/studies" in schema["paths"]
    assert "/studies/{study_id}/figures/{name}.{fmt}" in schema["paths"]
    assert "StudySpec" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    # (case, body (dict = JSON, bytes = raw), status, a word the message must contain)
    ("unknown optimizer", digits_spec(optimizers=["adam", "lion"]), 422, "optimizers"),
    ("unknown dataset", digits_spec(dataset="imagenet"), 422, "dataset"),
    ("unknown preset", {"preset": "figure99"}, 422, "figure99"),
    ("unknown model", digits_spec(model="vit"), 422, "model"),
    ("negative learning rate", digits_spec(learning_rates=[0.1, -0.01]), 422, "learning_rates"),
    ("zero epochs", digits_spec(epochs=0), 422, "epochs"),
    ("negative seed", digits_spec(seeds=[-1]), 422, "seeds"),
    ("NaN learning rate", b'{"name": "x", "learning_rates": [NaN]}', 400, "learning_rates.0"),
    ("Infinity epochs", b'{"name": "x", "epochs": Infinity}', 400, "epochs"),
    ("wrong type", digits_spec(epochs="ten"), 422, "epochs"),
    ("wrong type in a list", digits_spec(learning_rates=["fast"]), 422, "learning_rates"),
    ("unknown key", digits_spec(optimiser="adam"), 422, "optimiser"),
    ("unknown override", {"preset": "figure6-quick", "overrides": {"epochz": 2}}, 422, "epochz"),
    ("bad override value", {"preset": "figure6-quick", "overrides": {"epochs": -2}}, 422, "epochs"),
    ("unknown key beside a preset", {"preset": "figure6", "color": "red"}, 422, "color"),
    (
        "grid over the trial limit",
        digits_spec(learning_rates=[round(0.001 * (i + 1), 4) for i in range(30)]),
        422,
        "num_trials",
    ),
    ("malformed JSON", b'{"name": "x", ', 400, "JSON"),
    ("not an object", b"[1, 2, 3]", 400, "object"),
    ("empty body", b"", 400, "JSON"),
    ("missing field", {"name": "only-a-name"}, 422, "dataset"),
    ("oversized body", b'{"name": "' + b"x" * (2 * MAX_BODY) + b'"}', 413, "limit"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "word"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request_is_refused_naming_the_field(
    client: httpx.Client, case: str, body: Any, status: int, word: str
) -> None:
    if isinstance(body, bytes):
        response = client.post(
            "/studies", content=body, headers={**AUTH, "Content-Type": "application/json"}
        )
    else:
        response = client.post("/studies", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()
    assert word.lower() in error["detail"].lower(), error
    assert "Traceback" not in response.text


def test_study_on_an_absent_dataset_is_refused_up_front(home: Path, client: httpx.Client) -> None:
    """Fashion-MNIST is nowhere this service looks (its data dir is empty, the Debian path
    points at nothing): 422 on ``dataset`` with ``robustness data status``'s words, at once,
    and no study is recorded."""
    listed = client.get("/studies", params={"limit": 100}).json()["items"]

    started = time.monotonic()
    response = client.post("/studies", json={"preset": "figure6-quick"}, headers=AUTH)
    took_s = time.monotonic() - started

    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == "dataset"
    status = subprocess.run(
        [sys.executable, "-m", "studies", "data", "status", "fashion_mnist"],
        env={**os.environ, **service_env(home, ROBUSTNESS_DEBIAN_FASHION_MNIST=str(NO_DEBIAN))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 1 and error["detail"] == status.stdout.strip()
    assert "robustness data fetch fashion_mnist" in error["detail"]
    assert took_s < 1.0, f"refused after {took_s:.2f} s"
    assert client.get("/studies", params={"limit": 100}).json()["items"] == listed
    recorded = tracking.store_for(f"sqlite:///{home / 'mlflow.db'}").list_studies(limit=1000)
    assert not [r for r in recorded if r.name == "figure6-quick"]  # nothing written to MLflow


@pytest.mark.parametrize(
    ("method", "path", "status", "word"),
    [
        ("GET", "/studies/" + "0" * 32, 404, "0" * 32),
        ("GET", "/studies/not-an-id", 404, "not-an-id"),
        ("GET", "/studies/../../etc/passwd", 404, ""),
        ("GET", "/studies/" + "0" * 32 + "/summary", 404, "0" * 32),
        ("GET", "/studies/" + "0" * 32 + "/trials", 404, "0" * 32),
        ("GET", "/studies/" + "0" * 32 + "/figures/figure6.png", 404, "0" * 32),
        ("GET", "/studies/" + "0" * 32 + "/figures/figure7.png", 422, "name"),
        ("GET", "/studies/" + "0" * 32 + "/figures/figure6.jpg", 422, "fmt"),
        ("GET", "/studies/" + "0" * 32 + "/trials?format=xml", 422, "format"),
        ("GET", "/studies?limit=0", 422, "limit"),
        ("GET", "/studies?status=sleeping", 422, "status"),
        ("POST", "/studies/" + "0" * 32 + "/cancel", 404, "0" * 32),
    ],
)
def test_unknown_things_are_4xx(
    client: httpx.Client, method: str, path: str, status: int, word: str
) -> None:
    response = client.request(method, path, headers=AUTH)
    assert response.status_code == status, response.text
    assert word in response.json()["detail"]


def test_post_and_cancel_need_the_token(client: httpx.Client) -> None:
    spec = digits_spec()
    missing = client.post("/studies", json=spec)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert (
        client.post("/studies", json=spec, headers={"Authorization": "Bearer nope"}).status_code
        == 403
    )
    assert client.post("/studies", json=spec, headers={"Authorization": TOKEN}).status_code == 401
    cancel = client.post("/studies/" + "0" * 32 + "/cancel")
    assert cancel.status_code == 401
    # reading needs no token
    assert client.get("/studies").status_code == 200


def test_idempotency_limit_and_cancel(client: httpx.Client) -> None:
    spec = digits_spec(name="idempotent", epochs=3, train_subset=1500)
    key = {"Idempotency-Key": "retry-me-7"}
    first = client.post("/studies", json=spec, headers={**AUTH, **key})
    assert first.status_code == 202, first.text
    study = first.json()
    assert study["status"] in ("queued", "running")
    assert study["links"]["self"] == f"/studies/{study['id']}"
    assert study["links"]["ray_job"].endswith(f"/jobs/{study['id']}")
    assert first.headers["Location"] == study["links"]["self"]

    # a retry with the same key returns the same study, even at the active-study limit
    again = client.post("/studies", json=spec, headers={**AUTH, **key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == study["id"]
    assert again.json()["replayed"] is True
    # the same key for another study is refused
    other = client.post("/studies", json=digits_spec(name="other"), headers={**AUTH, **key})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]

    # a second study while the first is active: over the limit of one
    busy = client.post("/studies", json=digits_spec(name="second"), headers=AUTH)
    assert busy.status_code == 429, busy.text
    assert int(busy.headers["Retry-After"]) > 0

    listed = client.get("/studies").json()["items"]
    assert [s["id"] for s in listed].count(study["id"]) == 1

    cancelled = client.post(f"/studies/{study['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    after = wait_for(client, study["id"], timeout_s=60)
    assert after["status"] == "cancelled"
    # cancelling twice is a conflict, not a crash
    twice = client.post(f"/studies/{study['id']}/cancel", headers=AUTH)
    assert twice.status_code == 409
    assert "cancelled" in twice.json()["detail"]
    by_status = client.get("/studies", params={"status": "cancelled"}).json()["items"]
    assert study["id"] in [s["id"] for s in by_status]
