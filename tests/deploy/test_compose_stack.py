"""`docker compose up`, for real: the stack built from the project's files, started, and tested.

A private dockerd (no bridge, no iptables; scripts/private_dockerd.sh) builds the base images
(pulled where a registry answers, else stand-ins from Debian's archive:
scripts/docker_base_images.sh) and the project's two images, then runs docker-compose.yml's
loopback variant (scripts/compose_variants.py: host networking, every listener on 127.0.0.x).
The tests run in file order on one stack (the ``compose_stack`` fixture, conftest.py):

1. the project image imports every module of radam/, studies/ and service/ and `pip check`s;
2. all five services become healthy and the API is ready (Ray and MLflow reachable);
3. a reduced figure6-quick (3 epochs, 2 seeds, 2,000 training images, packed: 24
   configurations) POSTed with the token succeeds although the Ray worker's container is
   SIGKILLed (`docker kill`) mid-study and started again: every configuration is in MLflow on
   Postgres as a nested run of the study's run with each epoch's metrics once, none lost; the
   summary, the figures and the trials CSV are served (the figures listed are exactly those);
   Optuna's database exists; the study's MLflow links, as the API answers them, open in
   headless Chromium where a researcher looks (tests/mlflow_pages.py);
4. the API container restarted mid-study (a smaller study: 2 epochs, 1 seed): the study goes
   on (its Ray job is not resubmitted) and finishes;
5. `down` (volumes kept) and `up`: the finished studies are listed and their summaries served;
6. the network rule held: no process of the stack had a connection to an address outside
   127.0.0.0/8 (sampled all along), and no network interface (a bridge, a veth) appeared.
The fixture then takes the stack down with its volumes and stops the dockerd it started.

It runs where a Docker engine can (root, Debian's docker.io and docker-compose; `make test`
installs them) and skips with the reason elsewhere; ROBUSTNESS_COMPOSE_TEST=0 skips it,
ROBUSTNESS_COMPOSE_TEST=1 (`make compose-test`) turns every skip into a failure.
"""

from __future__ import annotations

import csv
import io
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from compose_stack import SERVICES, ComposeStack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EPOCHS = 3  # the study through the worker's kill: one epoch before it, two after
SEEDS = [0, 1]
# figure6-quick's data, cut down (the stack is under test here, not the optimizers): a third
# of its training images, half its test images.
SUBSETS = {"train_subset": 2000, "test_subset": 1000}
# The study through the API's restart: smaller (CI's time), still running when it restarts.
RESTART_EPOCHS = 2
RESTART_SEEDS = [0]
CONFIGURATIONS = 3 * 4 * len(SEEDS)  # optimizers x learning rates x seeds
FIGURES = ("figure6", "lr_sensitivity", "expected_max")
METRICS = ("train_loss", "test_loss", "test_acc", "lr")
STUDY_TIMEOUT_S = 900  # one study, faults included, on a loaded 2-core machine

# Imports every module of the three packages (each a module of its own: one failing import is
# named), then `pip check`. Run in the image, as its user, with no network at all.
IMPORT_ALL = """
import importlib, pkgutil, subprocess, sys
failed = []
count = 0
for name in ("radam", "studies", "service"):
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
            count += 1
        except Exception as exc:
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print(f"imported {count} modules")
print("\\n".join(failed))
check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
print(check.stdout + check.stderr)
sys.exit(1 if failed or check.returncode else 0)
"""


def _submit(stack: ComposeStack, epochs: int, seeds: list[int]) -> dict[str, Any]:
    overrides = {"epochs": epochs, "seeds": seeds, **SUBSETS}
    body = {"preset": "figure6-quick", "overrides": overrides}
    with stack.http() as client:
        response = client.post("/studies", json=body)
    assert response.status_code == 202, response.text
    study: dict[str, Any] = response.json()
    assert study["num_trials"] == 3 * 4 * len(seeds)
    assert study["spec"]["pack_size"] == "auto"  # packed: several configurations per Tune trial
    return study


def _get(stack: ComposeStack, path: str, **params: Any) -> Any:
    with stack.http() as client:
        response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def _trials(stack: ComposeStack, study_id: str) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = _get(stack, f"/studies/{study_id}/trials")
    return trials


def _mid_study(stack: ComposeStack, study_id: str) -> list[dict[str, Any]]:
    """Trials once at least one epoch is recorded and the study is still running."""

    def probe() -> list[dict[str, Any]] | None:
        study = _get(stack, f"/studies/{study_id}")
        assert study["status"] in ("queued", "running"), (
            f"the study is {study['status']} before the fault could be injected: "
            "make it longer (EPOCHS)"
        )
        trials = _trials(stack, study_id)
        return trials if any(t["epochs_done"] >= 1 for t in trials) else None

    result: list[dict[str, Any]] = stack.wait_for(
        "a first epoch recorded", probe, timeout=STUDY_TIMEOUT_S, interval=0.5
    )
    return result


def _finished(stack: ComposeStack, study_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        study: dict[str, Any] = _get(stack, f"/studies/{study_id}")
        return study if study["status"] not in ("queued", "running") else None

    result: dict[str, Any] = stack.wait_for(
        "the study finished", probe, timeout=STUDY_TIMEOUT_S, interval=2
    )
    return result


# --- 1. the image ---------------------------------------------------------------------------


def test_the_image_imports_every_module_and_its_requirements_hold(
    compose_stack: ComposeStack,
) -> None:
    with compose_stack.timed("image check"):
        out = compose_stack.docker(
            "run", "--rm", "--network", "none", "radam-robustness:latest",
            "python", "-c", IMPORT_ALL,
            timeout=600, check=False,
        )  # fmt: skip
    assert "imported" in out and "No broken requirements found" in out, out
    mlflow_check = compose_stack.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python",
        "radam-robustness-mlflow:latest", "-m", "pip", "check", check=False,
    )  # fmt: skip
    assert "No broken requirements found" in mlflow_check, mlflow_check


# --- 2. healthy and ready -------------------------------------------------------------------


def test_five_services_healthy_and_the_api_ready(compose_stack: ComposeStack) -> None:
    assert compose_stack.health() == dict.fromkeys(SERVICES, "healthy")
    ready = _get(compose_stack, "/readyz")
    assert ready["status"] == "ready", ready
    assert ready["ray"] == "ok" and ready["mlflow"] == "ok", ready
    # Everything on loopback, nothing published through a bridge: host networking only.
    for service in SERVICES:
        mode = compose_stack.docker(
            "inspect", "--format", "{{.HostConfig.NetworkMode}}", compose_stack.container(service)
        )
        assert mode.strip() == "host", service
    networks = compose_stack.docker("network", "ls", "--format", "{{.Name}}").split()
    assert sorted(networks) == ["host", "none"]


# --- 3. a study through a worker's SIGKILL ----------------------------------------------------


@pytest.fixture(scope="module")
def survived_worker_kill(compose_stack: ComposeStack) -> dict[str, Any]:
    """A study during which the Ray worker's container is SIGKILLed and started again."""
    with compose_stack.timed("study with the worker killed"):
        study = _submit(compose_stack, EPOCHS, SEEDS)
        before = _mid_study(compose_stack, study["id"])
        worker = compose_stack.container("ray-worker")
        with compose_stack.timed("worker kill and start"):
            compose_stack.docker("kill", "--signal", "KILL", worker)
            # `docker kill` counts as a manual stop for the restart policy: started again by
            # hand, as an operator (or a node's supervisor) would.
            compose_stack.wait_for(
                "the worker container stopped",
                lambda: not compose_stack.state("ray-worker")["Running"],
                timeout=60,
            )
            compose_stack.compose("start", "ray-worker")
            compose_stack.wait_for(
                "the worker healthy again",
                lambda: compose_stack.health()["ray-worker"] == "healthy",
                timeout=300,
            )
        finished = _finished(compose_stack, study["id"])
    return {"study": finished, "epochs_before_kill": before}


def test_a_study_survives_the_worker_sigkill(
    compose_stack: ComposeStack, survived_worker_kill: dict[str, Any]
) -> None:
    study = survived_worker_kill["study"]
    assert study["status"] == "succeeded", (study, compose_stack.logs("ray-head", "ray-worker"))
    progress = study["progress"]
    assert progress["total"] == CONFIGURATIONS
    assert progress["failed"] == 0 and progress["pending"] == 0 and progress["running"] == 0
    assert progress["finished"] + progress["diverged"] == CONFIGURATIONS  # no trial lost
    trials = _trials(compose_stack, study["id"])
    assert len(trials) == CONFIGURATIONS
    configurations = {(t["optimizer"], t["lr"], t["seed"]) for t in trials}
    assert len(configurations) == CONFIGURATIONS
    for trial in trials:
        if trial["status"] == "finished":
            assert trial["epochs_done"] == EPOCHS, trial
    # The kill interrupted training: some trial had not finished all its epochs then.
    assert any(t["epochs_done"] < EPOCHS for t in survived_worker_kill["epochs_before_kill"])


def test_mlflow_on_postgres_holds_every_configuration_and_epoch_once(
    compose_stack: ComposeStack, survived_worker_kill: dict[str, Any]
) -> None:
    from mlflow.tracking import MlflowClient

    study = survived_worker_kill["study"]
    client = MlflowClient(tracking_uri=compose_stack.mlflow_url)
    experiment = client.get_experiment_by_name("robustness")
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`robustness.study_id` = '{study['id']}' "
        "and tags.`robustness.kind` = 'study'",
    )
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        max_results=1000,
    )
    trials = {t["run_id"]: t for t in _trials(compose_stack, study["id"])}
    assert {run.info.run_id for run in children} == set(trials)  # one nested run each
    assert len(children) == CONFIGURATIONS
    for run in children:
        epochs = trials[run.info.run_id]["epochs_done"]
        for metric in METRICS:
            history = client.get_metric_history(run.info.run_id, metric)
            steps = [m.step for m in history]
            assert len(steps) == len(set(steps)), f"{metric} logged twice: {sorted(steps)}"
            assert len(steps) == epochs, (run.data.tags.get("robustness.trial_id"), metric, steps)
    # The runs are in Postgres, where the mlflow service keeps them; Optuna has its database.
    import psycopg2

    connection = psycopg2.connect(compose_stack.postgres_dsn("mlflow"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM runs WHERE experiment_id = %s AND run_uuid IN "
                "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = %s)",
                (int(experiment.experiment_id), parent.info.run_id),
            )
            assert cursor.fetchone() == (CONFIGURATIONS,)
            cursor.execute("SELECT datname FROM pg_database WHERE datname = 'optuna'")
            assert cursor.fetchone() == ("optuna",)
    finally:
        connection.close()


def test_summary_figures_and_trials_csv_are_served(
    compose_stack: ComposeStack, survived_worker_kill: dict[str, Any]
) -> None:
    study = survived_worker_kill["study"]
    summary = _get(compose_stack, f"/studies/{study['id']}/summary")
    assert summary["status"] == "succeeded" and summary["partial"] is False
    assert summary["trials_done"] == CONFIGURATIONS and summary["epochs"] == EPOCHS
    figures = study["links"]["figures"]
    # The figures of a study that does not vary the warmup (no warmup figure: it has none), and
    # every one listed is served.
    wanted = [f"{name}.{fmt}" for name in FIGURES for fmt in ("png", "svg")]
    assert sorted(figures) == sorted(wanted), figures
    with compose_stack.http() as client:
        for name in wanted:
            response = client.get(figures[name])
            assert response.status_code == 200, (name, response.text[:300])
            magic = b"\x89PNG" if name.endswith(".png") else b"<?xml"
            assert response.content.startswith(magic), (name, response.content[:40])
        response = client.get(f"/studies/{study['id']}/trials", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == CONFIGURATIONS


def test_mlflow_links_land_where_a_researcher_looks(
    compose_stack: ComposeStack, survived_worker_kill: dict[str, Any], tmp_path: Path
) -> None:
    """The study's MLflow links, as the API container answers them, opened in headless
    Chromium against the stack's MLflow server (on Postgres): the same checks as against the
    embedded server (tests/mlflow_pages.py; screenshots under ``tmp_path``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from browser import browser
    from mlflow_pages import Trial, assert_researcher_view, open_study_links

    browser()
    study = survived_worker_kill["study"]
    links = study["links"]
    for name in ("mlflow_compare", "mlflow_trials", "mlflow_run"):
        assert links[name].startswith(f"{compose_stack.mlflow_url}/"), links
    trials = [
        Trial(t["trial_id"], t["history"]["test_acc"][-1])
        for t in _trials(compose_stack, study["id"])
    ]
    with compose_stack.timed("mlflow links in chromium"):
        seen = open_study_links(
            compare=links["mlflow_compare"],
            trials=links["mlflow_trials"],
            run=links["mlflow_run"],
            shots=tmp_path,
        )
    # figure6-quick's grid: 3 optimizers x 4 learning rates x 2 seeds
    assert_researcher_view(
        seen,
        study_name=study["name"],
        experiment="robustness",
        trials=trials,
        axes=["optimizer", "lr", "seed"],
    )


# --- 4. the API restarted mid-study ---------------------------------------------------------


def test_a_study_goes_on_across_an_api_restart(compose_stack: ComposeStack) -> None:
    with compose_stack.timed("study with the api restarted"):
        study = _submit(compose_stack, RESTART_EPOCHS, RESTART_SEEDS)
        _mid_study(compose_stack, study["id"])
        with compose_stack.timed("api restart"):
            compose_stack.compose("restart", "api", timeout=120)
            compose_stack.wait_for(
                "the api healthy again",
                lambda: compose_stack.health()["api"] == "healthy",
                timeout=180,
            )
        finished = _finished(compose_stack, study["id"])
    assert finished["status"] == "succeeded", finished
    assert finished["restarts"] == 0  # the driver ran on: the restart resubmitted nothing
    assert finished["progress"]["done"] == finished["num_trials"] == 3 * 4 * len(RESTART_SEEDS)
    trials = _trials(compose_stack, finished["id"])
    assert all(t["epochs_done"] == RESTART_EPOCHS for t in trials if t["status"] == "finished")


# --- 5. down (volumes kept) and up ----------------------------------------------------------


def test_down_and_up_keep_the_studies(compose_stack: ComposeStack) -> None:
    listed = _get(compose_stack, "/studies")["items"]
    finished = [s for s in listed if s["status"] == "succeeded"]
    assert finished, listed
    summaries = {s["id"]: _get(compose_stack, f"/studies/{s['id']}/summary") for s in finished}
    compose_stack.down(volumes=False)
    assert compose_stack.compose("ps", "-q").split() == []
    started = time.monotonic()
    compose_stack.up("up again")
    compose_stack.wait_for(
        "the api ready again",
        lambda: _get(compose_stack, "/readyz")["status"] == "ready",
        timeout=120,
    )
    compose_stack.timings["up again, ready"] = round(time.monotonic() - started, 1)
    relisted = {s["id"]: s for s in _get(compose_stack, "/studies")["items"]}
    for study_id, summary in summaries.items():
        assert relisted[study_id]["status"] == "succeeded"
        assert _get(compose_stack, f"/studies/{study_id}/summary") == summary


# --- 6. the network rule ----------------------------------------------------------------------


def test_the_stack_kept_to_loopback_and_made_no_interface(compose_stack: ComposeStack) -> None:
    compose_stack.check_network()
    assert compose_stack.outside == []
    assert sorted(name for _, name in socket.if_nameindex()) == compose_stack.interfaces
