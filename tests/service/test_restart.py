"""The service restarted gracefully (SIGTERM, then started again) in the middle of a study: the
new process lists the study from MLflow, finds its Ray job gone (the embedded head went down
with the old process), resumes it from Tune's saved state without counting a restart, and the
study finishes and is summarised."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from service_helpers import digits_spec, start_service, wait_for, wait_progress

from service.processes import supervise

pytestmark = pytest.mark.slow

TOTAL = 4  # trials: two optimizers x two learning rates
EPOCHS = 12  # long enough (seconds per trial) that the first poll after one trial finishes
# lands well before the last one does, even on a loaded 2-core CI machine


def test_restart_mid_study_resumes_and_finishes(home: Path) -> None:
    spec = digits_spec(
        name="restart",
        learning_rates=[0.01, 0.001],
        epochs=EPOCHS,
        train_subset=600,
        max_concurrent_trials=1,  # one at a time, so the restart lands mid-study
    )
    first = start_service(home)
    try:
        with httpx.Client(base_url=first.url, timeout=60.0) as client:
            response = client.post("/studies", json=spec)
            assert response.status_code == 202, response.text
            study_id = response.json()["id"]
            before = wait_progress(client, study_id, done_at_least=1, timeout_s=240)
            assert before["status"] == "running", before
            assert before["progress"]["done"] < TOTAL
    finally:
        first.stop()

    second = start_service(home)
    try:
        with httpx.Client(base_url=second.url, timeout=60.0) as client:
            listed = {s["id"]: s for s in client.get("/studies").json()["items"]}
            assert study_id in listed
            assert listed[study_id]["status"] in ("queued", "running")
            after = wait_for(client, study_id, timeout_s=360)
            assert after["status"] == "succeeded", after
            assert after["progress"]["done"] == TOTAL
            # a graceful stop (SIGTERM) suspended it: that is not its driver dying, so the
            # resubmission is not counted against ROBUSTNESS_MAX_RESTARTS
            assert after["restarts"] == 0, after
            summary = client.get(f"/studies/{study_id}/summary").json()
            assert summary["trials_done"] == summary["trials_total"] == TOTAL
            assert summary["partial"] is False
            trials = client.get(f"/studies/{study_id}/trials").json()
            assert sorted(t["trial_id"] for t in trials) == sorted({t["trial_id"] for t in trials})
            assert all(t["epochs_done"] == EPOCHS for t in trials if t["status"] == "finished")
    finally:
        second.stop()


def _is_head(pid: int) -> bool:
    args = supervise.cmdline(pid)
    return supervise.pid_alive(pid) and "start" in args and "--head" in args


def test_service_killed_mid_study_reattaches_to_its_head_and_finishes(home: Path) -> None:
    """SIGKILL: the service gets to stop nothing, and its Ray head (in a session of its own)
    lives on with the study's job. The next service on the same home reattaches to that head
    (its record names the same pid; no second head is started), and the study finishes."""
    import json
    import os
    import signal

    home = home / "killed"
    spec = digits_spec(
        name="service-killed",
        learning_rates=[0.01, 0.001],
        epochs=EPOCHS,
        train_subset=600,
        max_concurrent_trials=1,
    )
    first = start_service(home)
    head_pid: int | None = None
    second = None
    try:
        with httpx.Client(base_url=first.url, timeout=60.0) as client:
            response = client.post("/studies", json=spec)
            assert response.status_code == 202, response.text
            study_id = response.json()["id"]
            before = wait_progress(client, study_id, done_at_least=1, timeout_s=240)
            assert before["status"] == "running" and before["progress"]["done"] < TOTAL, before
        head_pid = int(json.loads((home / "ray-head.json").read_text())["pid"])
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        first.stop()  # reaps it
        assert _is_head(head_pid), "the head should outlive a SIGKILLed service"

        second = start_service(home)
        assert int(json.loads((home / "ray-head.json").read_text())["pid"]) == head_pid
        with httpx.Client(base_url=second.url, timeout=60.0) as client:
            after = wait_for(client, study_id, timeout_s=360)
            assert after["status"] == "succeeded", after
            assert after["progress"]["done"] == TOTAL
            assert after["restarts"] == 0, after  # its job never stopped
    finally:
        if second is not None:
            second.stop()
        first.stop()
        if head_pid is not None and _is_head(head_pid):  # a failed test leaves no head behind
            os.killpg(head_pid, signal.SIGKILL)
            pytest.fail("the head outlived the second service")
    assert head_pid is not None and not _is_head(head_pid), "the second service stops the head"
