"""Trial records: a nested run per trial (start, log an epoch, end; settle the ones a dead
driver left open). The runner's Tune callback calls these many times a second: one
``log_batch`` per epoch, run ids remembered on the connection.

A trial run carries tags ``mlflow.parentRunId``, ``robustness.kind=trial``,
``robustness.trial_id``, ``robustness.status``, ``robustness.node``; params optimizer, lr,
warmup, warmup_steps, seed and the rest; per-epoch metrics at ``step=epoch``; metric
``train_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from studies.status import TRIAL_RUN_STATUS, TrialStatus
from studies.tracking.connection import (
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    SEARCH_PAGE,
    TAG_KIND,
    TAG_NODE,
    TAG_PARENT,
    TAG_STATUS,
    TAG_STUDY_ID,
    TAG_TRIAL_ID,
    Connection,
    chunks,
    quoted,
)
from studies.tracking.studies import flatten

_CLOSED_RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


def start_trial(conn: Connection, study_id: str, trial_id: str, params: Mapping[str, Any]) -> str:
    client = conn.client
    parent = conn.parent(study_id)
    parent_id = parent.info.run_id
    conn.count_write()
    key = (parent_id, trial_id)
    run_id = conn.trial_runs.get(key)
    if run_id is None:
        existing = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent_id}' "
            f"and tags.`{TAG_TRIAL_ID}` = {quoted(trial_id, what='trial id')}",
            max_results=1,
        )
        if existing:
            run_id = existing[0].info.run_id
    if run_id is not None:  # resumed: the same run, open again
        client.log_batch(
            run_id, tags=[RunTag(TAG_STATUS, TrialStatus.RUNNING.value)], synchronous=True
        )
        client.update_run(run_id, status="RUNNING")
        conn.trial_runs[key] = run_id
        return run_id
    tags = {
        TAG_PARENT: parent_id,
        TAG_KIND: "trial",
        TAG_STUDY_ID: study_id,
        TAG_TRIAL_ID: trial_id,
        TAG_STATUS: TrialStatus.RUNNING.value,
    }
    run = client.create_run(parent.info.experiment_id, run_name=trial_id, tags=tags)
    new_run_id: str = run.info.run_id
    flat = [Param(name, value) for name, value in flatten(params).items()]
    for chunk in chunks(flat, PARAMS_PER_BATCH):
        client.log_batch(new_run_id, params=chunk, synchronous=True)
    conn.trial_runs[key] = new_run_id
    return new_run_id


def log_metrics(conn: Connection, run_id: str, batch: Sequence[Metric]) -> None:
    conn.count_write()
    for chunk in chunks(list(batch), METRICS_PER_BATCH):
        conn.client.log_batch(run_id, metrics=chunk, synchronous=True)


def epoch_metrics(epoch: int, metrics: Mapping[str, float]) -> list[Metric]:
    timestamp = int(time.time() * 1000)
    return [Metric(name, float(value), timestamp, int(epoch)) for name, value in metrics.items()]


def history_metrics(history: Mapping[str, Sequence[float]], *, first_epoch: int) -> list[Metric]:
    timestamp = int(time.time() * 1000)
    return [
        Metric(name, float(value), timestamp, first_epoch + index)
        for name, values in history.items()
        for index, value in enumerate(values)
    ]


def end_trial(
    conn: Connection,
    run_id: str,
    status: TrialStatus,
    *,
    node: str | None,
    train_seconds: float | None,
) -> None:
    client = conn.client
    tags = [RunTag(TAG_STATUS, status.value)]
    if node is not None:
        tags.append(RunTag(TAG_NODE, node))
    metrics = []
    if train_seconds is not None:
        metrics.append(Metric("train_seconds", float(train_seconds), int(time.time() * 1000), 0))
    conn.count_write()
    client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)
    run_status = TRIAL_RUN_STATUS[status]
    if run_status in _CLOSED_RUN_STATUSES:
        client.set_terminated(run_id, status=run_status)
    else:
        client.update_run(run_id, status=run_status)


def settle_open_trials(conn: Connection, study_id: str, status: TrialStatus) -> list[str]:
    """Give every trial of the study still recorded ``running`` the status ``status`` (for a
    study that ended with trials open: cancelled -> failed; a driver that died -> pending,
    to be resumed); return their trial ids. The run is left open for ``pending``."""
    parent = conn.parent(study_id)
    client = conn.client
    settled: list[str] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent.info.run_id}' "
            f"and tags.`{TAG_KIND}` = 'trial' "
            f"and tags.`{TAG_STATUS}` = '{TrialStatus.RUNNING.value}'",
            max_results=SEARCH_PAGE,
            page_token=token,
        )
        for run in page:
            end_trial(conn, run.info.run_id, status, node=None, train_seconds=None)
            settled.append(run.data.tags.get(TAG_TRIAL_ID, run.info.run_name))
        token = page.token
        if not token:
            return settled
