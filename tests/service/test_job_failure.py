"""A study's Ray job ended behind the service's back: its driver killed (SIGKILL: nothing
in the job gets to write anything), or the job stopped through Ray's Jobs API rather than the
service (with its driver frozen, so it cannot record its own cancel, and as it is).

* A killed driver is not the study's end: the service's reconciler sees the job FAILED while
  the record is active, resubmits the study with resume (counting the restart on the record),
  and the study finishes: every trial complete with all its epochs, each epoch recorded once.
* A job stopped behind the service's back: the reconciler reports the study ``cancelled``
  with the reason and writes that back to the record (so lists and a restarted service see
  it too), and a cancel is refused (409).

One real service process (uvicorn, its own local Ray head, SQLite MLflow). A study that the
test stops cannot end first, by construction, not by a race: it has far more work than the
test's own deadlines leave time for (``STOPPED_EPOCHS``), and the test stops it once its first
trial runs; the test checks that Ray saw the job end the way the test ended it (FAILED /
STOPPED, never SUCCEEDED) and what the service answers then, body by body."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import TERMINAL, digits_spec, start_service, wait_for

from service.processes.service_process import ServiceProcess
from studies import tracking

pytestmark = pytest.mark.slow

LEARNING_RATES = [0.03, 0.01, 0.003, 0.001]
TOTAL = 8  # trials: two optimizers x four learning rates, one at a time
START_TIMEOUT_S = 300.0  # a fresh head's first job, torch imports, a trial actor: on 2 cores
RAY_TIMEOUT_S = 120.0  # for Ray to notice a dead driver, or to stop a job
# The studies the test stops: 500,000 epochs a trial, one trial at a time. An epoch is ten
# optimizer steps, an evaluation, a Tune report and an MLflow write: even at 1 ms an epoch
# (tens of ms here) the first trial alone outlasts START_TIMEOUT_S + RAY_TIMEOUT_S, the most
# the test waits before it stops the job, so the study cannot finish before it is stopped
# however loaded the machine is (60 epochs, as before, could: ~1 s a trial when idle).
STOPPED_EPOCHS = 500_000
assert STOPPED_EPOCHS * 0.001 > START_TIMEOUT_S + RAY_TIMEOUT_S  # seconds


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    process = start_service(home)
    # The service's head uses Ray's token auth (its default), with the token in ~/.ray; our own
    # Jobs client in this process needs it too. Undone afterwards for the tests that follow.
    had_auth_mode = os.environ.get("RAY_AUTH_MODE")
    try:
        from service.processes.local_ray import enable_token_auth

        enable_token_auth()
        yield process
    finally:
        if had_auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        process.stop()


@pytest.fixture(scope="module")
def tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def submit_long_study(
    client: httpx.Client,
    name: str,
    *,
    learning_rates: list[float] = LEARNING_RATES,
    epochs: int = STOPPED_EPOCHS,
) -> str:
    spec = digits_spec(
        name=name,
        learning_rates=learning_rates,
        epochs=epochs,
        train_subset=600,
        max_concurrent_trials=1,
    )
    response = client.post("/studies", json=spec)
    assert response.status_code == 202, response.text
    assert response.json()["num_trials"] == 2 * len(learning_rates)
    study_id: str = response.json()["id"]
    return study_id


def wait_trial_started(client: httpx.Client, study_id: str) -> dict[str, Any]:
    """Until the study is running with a trial started (its driver is up and recording)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/studies/{study_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] not in TERMINAL, f"the study ended before the test acted: {body}"
        progress = body["progress"]
        if body["status"] == "running" and progress["running"] + progress["done"] >= 1:
            assert progress["done"] < TOTAL, body
            return body
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} started no trial in {START_TIMEOUT_S} s: {body}")


def jobs_client(study: dict[str, Any]) -> Any:
    from ray.job_submission import JobSubmissionClient

    dashboard = study["links"]["ray_job"].split("/#/")[0]
    return JobSubmissionClient(dashboard)


def driver_pid(jobs: Any, study_id: str) -> int:
    """The pid of the study's driver (the runner), checked to be that process before anyone
    signals it."""
    deadline = time.monotonic() + RAY_TIMEOUT_S
    info = None
    while time.monotonic() < deadline:
        info = jobs.get_job_info(study_id)
        assert info.status.value == "RUNNING", info
        if info.driver_info is not None and info.driver_info.pid:
            pid = int(info.driver_info.pid)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert "studies run" in cmdline and study_id in cmdline, cmdline
            return pid
        time.sleep(0.5)
    raise AssertionError(f"Ray names no driver for job {study_id}: {info}")


def wait_job_status(jobs: Any, study_id: str, *, until: str) -> None:
    """Until Ray says the job's status is ``until``; any other end fails the test."""
    deadline = time.monotonic() + RAY_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = jobs.get_job_status(study_id).value
        if status == until:
            return
        assert status in ("PENDING", "RUNNING"), f"job {study_id} ended {status}, not {until}"
        time.sleep(0.5)
    raise AssertionError(f"job {study_id} still {status} after {RAY_TIMEOUT_S} s")


def listed(client: httpx.Client, status: str) -> set[str]:
    response = client.get("/studies", params={"status": status})
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def assert_written_back(client: httpx.Client, tracking_uri: str, study: dict[str, Any]) -> None:
    """The ended status the service reported is in the MLflow record and in the lists; a
    cancel of the ended study is a conflict (409) and changes nothing."""
    study_id, status = study["id"], study["status"]
    record = tracking.store_for(tracking_uri).get_study(study_id)
    assert record.status == status, record
    assert record.error == study["error"]
    assert study_id in listed(client, status)
    assert study_id not in listed(client, "running")

    cancel = client.post(f"/studies/{study_id}/cancel")
    assert cancel.status_code == 409, cancel.text
    assert cancel.headers["content-type"] == "application/json"
    assert cancel.json() == {
        "detail": f"study {study_id} is already {status}; only a queued or running study "
        "can be cancelled",
        "field": None,
    }
    assert client.get(f"/studies/{study_id}").json()["status"] == status
    assert tracking.store_for(tracking_uri).get_study(study_id).status == status


RESUMED_RATES = [0.01, 0.003]  # four trials, one at a time
RESUMED_EPOCHS = 30  # ~3 s a trial unloaded: the kill lands in the first or second trial
RESUME_TIMEOUT_S = 600.0  # Ray noticing the dead driver, a new driver, the rest of the study


def wait_epoch_logged(client: httpx.Client, study_id: str) -> dict[str, Any]:
    """Until a trial has logged an epoch (so the kill lands mid-trial, with Tune state saved)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        trials = client.get(f"/studies/{study_id}/trials").json()
        if any(t["epochs_done"] >= 1 for t in trials):
            body: dict[str, Any] = client.get(f"/studies/{study_id}").json()
            assert body["status"] not in TERMINAL, body
            return body
        time.sleep(0.3)
    raise AssertionError(f"study {study_id} logged no epoch in {START_TIMEOUT_S} s")


def test_killed_driver_is_resumed_and_the_study_completes(
    client: httpx.Client, tracking_uri: str
) -> None:
    from mlflow.tracking import MlflowClient

    study_id = submit_long_study(
        client, "killed-driver", learning_rates=RESUMED_RATES, epochs=RESUMED_EPOCHS
    )
    started = wait_epoch_logged(client, study_id)
    jobs = jobs_client(started)
    os.kill(driver_pid(jobs, study_id), signal.SIGKILL)

    study = wait_for(client, study_id, timeout_s=RESUME_TIMEOUT_S)
    assert study["status"] == "succeeded", study
    assert study["restarts"] >= 1, study
    record = tracking.store_for(tracking_uri).get_study(study_id)
    assert record.status == "succeeded" and record.restarts == study["restarts"], record
    total = 2 * len(RESUMED_RATES)
    assert study["progress"]["done"] == study["progress"]["finished"] == total, study

    trials = tracking.store_for(tracking_uri).load_trials(study_id)
    assert len(trials) == total  # none recorded twice
    mlflow = MlflowClient(tracking_uri=tracking_uri)
    for trial in trials:
        assert trial.status == "finished", trial
        assert trial.epochs_done == RESUMED_EPOCHS, trial
        assert trial.run_id is not None
        steps = [m.step for m in mlflow.get_metric_history(trial.run_id, "test_acc")]
        # each epoch logged once: a resumed driver skips the epochs the record already has
        assert sorted(steps) == list(range(1, RESUMED_EPOCHS + 1)), (trial.trial_id, steps)


STOPPED_BY_SERVICE = "its Ray job was stopped"


def kill_if_still_there(pid: int, study_id: str) -> None:
    """SIGKILL the study's driver if it outlived the test (only that process: the pid must still
    be the runner of this study)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # gone, as it should be
    if study_id.encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("frozen", [True, False], ids=["driver-frozen", "driver-free"])
def test_job_stopped_through_ray_cancels_the_study_and_its_record(
    client: httpx.Client, tracking_uri: str, frozen: bool
) -> None:
    """``ray job stop`` sends the driver SIGTERM, then SIGKILL after a few seconds. The runner
    takes SIGTERM as an interrupt and records ``cancelled`` itself (no error) if it gets that
    far before the SIGKILL; otherwise the record still says ``running`` and it is the service
    that must write ``cancelled``, with its reason.

    driver-frozen: the driver is SIGSTOPped first (a runner too slow to react, e.g. saving
    Tune's state on a loaded machine), so it cannot write anything before the SIGKILL: the
    write-back is the service's, every time. driver-free: the job stopped as it is; which of
    the two writes the record depends on timing, so either error is accepted, and the study
    and its record must end ``cancelled`` either way."""
    study_id = submit_long_study(client, "stopped-job-frozen" if frozen else "stopped-job")
    started = wait_trial_started(client, study_id)
    jobs = jobs_client(started)
    pid = driver_pid(jobs, study_id)
    try:
        if frozen:
            os.kill(pid, signal.SIGSTOP)
        assert jobs.stop_job(study_id) is True
        wait_job_status(jobs, study_id, until="STOPPED")
    finally:
        kill_if_still_there(pid, study_id)

    study = wait_for(client, study_id, timeout_s=RAY_TIMEOUT_S)
    assert study["status"] == "cancelled", study
    if frozen:
        assert study["error"] == STOPPED_BY_SERVICE, study["error"]
    else:
        assert study["error"] in (None, STOPPED_BY_SERVICE), study["error"]
    assert study["restarts"] == 0, study  # a stopped job is the study's end, not resubmitted
    assert study["eta_seconds"] == 0.0, study
    # its first trial never finishes (STOPPED_EPOCHS); an ended study runs nothing: the trial
    # it left open is pending, as a resume would run it again
    assert study["progress"] == {
        "total": TOTAL,
        "done": 0,
        "finished": 0,
        "running": 0,
        "failed": 0,
        "diverged": 0,
        "pending": TOTAL,
    }, study
    assert study["links"]["figures"] == {}  # no finished trial: no figure to draw

    assert_written_back(client, tracking_uri, study)
