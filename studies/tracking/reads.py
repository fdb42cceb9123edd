"""Reading a study's trials back while it runs: two strategies behind one interface.

* ``SqlTrialReader`` for a SQL store (``sqlite:``, ``postgresql:``, ...): the store's tables
  straight, a handful of queries for every run, tag, param and metric row of a study (MLflow's
  ``search_runs`` builds every run's full entity: 3 s for 1000 runs here, against ~0.1 s), and
  re-reading only the runs with new metric rows.
* ``ServerTrialReader`` for a tracking server (``http(s):``): ``search_runs`` and the server's
  ``get-history-bulk`` endpoint, 100 runs a request.

Non-finite values: MLflow's SQL store keeps NaN (an ``is_nan`` flag) but stores +-inf as +-max
float; both readers map +-max float back to +-inf, so a diverged trial reads as written. A
step logged twice (a resumed trial) keeps its latest value. Evidence: ``bench/load_trials.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from studies.errors import TrackingError
from studies.results import TrialRecord
from studies.status import TrialStatus
from studies.tracking.connection import (
    SEARCH_PAGE,
    TAG_KIND,
    TAG_NODE,
    TAG_PARENT,
    TAG_STATUS,
    TAG_TRIAL_ID,
    Connection,
    chunks,
)

# The tracking server's get-history-bulk endpoint: at most 100 runs and 25,000 points a call.
_BULK_RUNS_PER_REQUEST = 100
_BULK_MAX_RESULTS = 25_000
_SQL_RUNS_PER_QUERY = 500  # keeps "IN (...)" under every backend's bound-parameter limit
_MAX_FLOAT = 1.7976931348623157e308  # how MLflow's SQL store writes +-inf


class TrialReader(Protocol):
    """Reads every trial of a study (by its parent run), with full histories, by trial id."""

    def read(self, parent: Run) -> list[TrialRecord]: ...

    def forget(self, run_ids: set[str]) -> None:
        """Drop what is remembered of these runs (a snapshot serves them from now on)."""


class SqlTrialReader:
    def __init__(self, store: Any) -> None:
        self._store = store
        self._live: _LiveHistories = {}

    def read(self, parent: Run) -> list[TrialRecord]:
        # no lock: concurrent reads of the same runs compute the same rows; the dict's
        # single assignments are atomic
        trials = _sql_trials(self._store, parent.info.run_id, self._live)
        return sorted(trials, key=lambda trial: trial.trial_id)

    def forget(self, run_ids: set[str]) -> None:
        for run_id in run_ids & set(self._live):
            self._live.pop(run_id, None)


class ServerTrialReader:
    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def read(self, parent: Run) -> list[TrialRecord]:
        runs = _trial_runs_of(self._client, parent)
        histories = _bulk_histories(self._client, runs)
        trials = [_trial_from_run(run, histories.get(run.info.run_id, {})) for run in runs]
        return sorted(trials, key=lambda trial: trial.trial_id)

    def forget(self, run_ids: set[str]) -> None:
        return None


def reader_for(conn: Connection) -> TrialReader:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = conn.client._tracking_client.store
    if isinstance(store, SqlAlchemyStore):
        return SqlTrialReader(store)
    return ServerTrialReader(conn.client)


_TRIAL_PARAMS = ("optimizer", "lr", "warmup", "warmup_steps", "seed", "repeat", "sample")
_TRIAL_TAGS = (TAG_KIND, TAG_TRIAL_ID, TAG_STATUS, TAG_NODE)


def _sql_trials(store: Any, parent_run_id: str, live: _LiveHistories) -> list[TrialRecord]:
    """A study's trials straight from the store's tables: the nested runs (by their
    ``mlflow.parentRunId`` tag), their few tags and params, ``train_seconds``, and the metric
    histories. A handful of queries instead of MLflow's ``search_runs``, which builds every
    run's full entity (3 s for 1000 runs here, against ~0.1 s)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import select

    runs_t, tags_t = SqlRun.__table__, SqlTag.__table__
    params_t, latest_t = SqlParam.__table__, SqlLatestMetric.__table__
    names: dict[str, str] = {}
    tags: dict[str, dict[str, str]] = {}
    params: dict[str, dict[str, str]] = {}
    train_seconds: dict[str, float] = {}
    with store.ManagedSessionMaker() as session:
        connection = session.connection()
        query: Any = (
            select(runs_t.c.run_uuid, runs_t.c.name)
            .join(tags_t, tags_t.c.run_uuid == runs_t.c.run_uuid)
            .where(
                tags_t.c.key == TAG_PARENT,
                tags_t.c.value == parent_run_id,
                runs_t.c.lifecycle_stage == "active",
            )
        )
        names = {run_id: name for run_id, name in connection.execute(query)}
        for chunk in chunks(list(names), _SQL_RUNS_PER_QUERY):
            query = select(tags_t.c.run_uuid, tags_t.c.key, tags_t.c.value).where(
                tags_t.c.run_uuid.in_(chunk), tags_t.c.key.in_(_TRIAL_TAGS)
            )
            for run_id, key, value in connection.execute(query):
                tags.setdefault(run_id, {})[key] = value
            query = select(params_t.c.run_uuid, params_t.c.key, params_t.c.value).where(
                params_t.c.run_uuid.in_(chunk), params_t.c.key.in_(_TRIAL_PARAMS)
            )
            for run_id, key, value in connection.execute(query):
                params.setdefault(run_id, {})[key] = value
            query = select(latest_t.c.run_uuid, latest_t.c.value, latest_t.c.is_nan).where(
                latest_t.c.run_uuid.in_(chunk), latest_t.c.key == "train_seconds"
            )
            for run_id, value, is_nan in connection.execute(query):
                train_seconds[run_id] = math.nan if is_nan else value
    trial_ids = [run_id for run_id in names if tags.get(run_id, {}).get(TAG_KIND) == "trial"]
    histories = _sql_histories_incremental(store, trial_ids, live)
    return [
        _trial_record(
            run_id,
            names[run_id] or run_id,
            params.get(run_id, {}),
            tags[run_id],
            train_seconds.get(run_id),
            histories.get(run_id, {}),
        )
        for run_id in trial_ids
    ]


def _trial_runs_of(client: MlflowClient, parent: Run) -> list[Run]:
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent.info.run_id}' "
            f"and tags.`{TAG_KIND}` = 'trial'",
            max_results=SEARCH_PAGE,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trial_from_run(run: Run, history: dict[str, list[float]]) -> TrialRecord:
    metrics: dict[str, float] = run.data.metrics
    return _trial_record(
        run.info.run_id,
        run.info.run_name or run.info.run_id,
        run.data.params,
        run.data.tags,
        metrics.get("train_seconds"),
        history,
    )


def _trial_record(
    run_id: str,
    run_name: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    train_seconds: float | None,
    history: dict[str, list[float]],
) -> TrialRecord:
    return TrialRecord(
        trial_id=tags.get(TAG_TRIAL_ID, run_name),
        optimizer=params.get("optimizer", ""),
        lr=float(params.get("lr", "nan")),
        warmup=params.get("warmup", "none"),
        warmup_steps=int(float(params.get("warmup_steps", "0") or 0)),
        seed=int(float(params.get("seed", "0") or 0)),
        status=TrialStatus.parse(tags.get(TAG_STATUS)),
        history={name: history[name] for name in sorted(history) if name != "train_seconds"},
        node=tags.get(TAG_NODE) or None,
        run_id=run_id,
        train_seconds=_finite_or_inf(train_seconds) if train_seconds is not None else None,
        repeat=_int_or_none(params.get("repeat")),
        sample=_int_or_none(params.get("sample")),
    )


def _int_or_none(text: str | None) -> int | None:
    """A sampled trial's repeat or sample index; None for a grid trial (absent, or logged as
    JSON ``null`` by a caller that flattened a ``TrialConfig`` with its unset fields)."""
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _finite_or_inf(value: float) -> float:
    """Undo the SQL store's +-inf -> +-max float."""
    if value >= _MAX_FLOAT:
        return math.inf
    if value <= -_MAX_FLOAT:
        return -math.inf
    return value


class _Histories:
    """Collects (run, key, step, timestamp, value) rows; the latest write of a step wins (a
    resumed trial may log an epoch twice)."""

    def __init__(self) -> None:
        self._points: dict[str, dict[str, dict[int, tuple[int, float]]]] = {}

    def add(self, run_id: str, key: str, step: int, timestamp: int, value: float) -> None:
        steps = self._points.setdefault(run_id, {}).setdefault(key, {})
        previous = steps.get(step)
        if previous is None or timestamp >= previous[0]:
            steps[step] = (timestamp, value)

    def result(self) -> dict[str, dict[str, list[float]]]:
        return {
            run_id: {
                key: [_finite_or_inf(steps[step][1]) for step in sorted(steps)]
                for key, steps in keys.items()
            }
            for run_id, keys in self._points.items()
        }


def _bulk_histories(client: MlflowClient, runs: Sequence[Run]) -> dict[str, dict[str, list[float]]]:
    """Every per-epoch metric history of these runs (not from a SQL store: ``_sql_trials``
    reads those): the server's get-history-bulk endpoint, or one call per run for any other."""
    histories = _Histories()
    run_ids = [run.info.run_id for run in runs]
    if not run_ids:
        return {}
    store = client._tracking_client.store
    from mlflow.store.tracking.rest_store import RestStore

    if isinstance(store, RestStore):
        # The keys any run logged, from the latest values search_runs already returned.
        keys = sorted({key for run in runs for key in run.data.metrics} - {"train_seconds"})
        _rest_histories(store, run_ids, keys, histories)
    else:  # pragma: no cover - no such store in this project
        for run in runs:
            for key in run.data.metrics:
                for metric in client.get_metric_history(run.info.run_id, key):
                    histories.add(run.info.run_id, key, metric.step, metric.timestamp, metric.value)
    return histories.result()


_LIVE_RUNS_KEPT = 5_000  # runs (164 epochs x 4 metrics: ~20 kB each); past it, start over

_LiveHistories = dict[str, tuple[int, dict[str, list[float]]]]


def _sql_histories_incremental(
    store: Any, run_ids: Sequence[str], live: _LiveHistories
) -> dict[str, dict[str, list[float]]]:
    """Live reads of a running study re-read only the runs whose metric-row count changed
    (rows are only ever added, a rewritten epoch included); ``live``: run id -> (rows,
    histories), the reader's memory of earlier reads."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from sqlalchemy import func, select

    table = SqlMetric.__table__
    counts: dict[str, int] = {}
    with store.ManagedSessionMaker() as session:
        connection = session.connection()
        for chunk in chunks(list(run_ids), _SQL_RUNS_PER_QUERY):
            query: Any = (
                select(table.c.run_uuid, func.count())
                .where(table.c.run_uuid.in_(chunk))
                .group_by(table.c.run_uuid)
            )
            counts.update({run_id: int(rows) for run_id, rows in connection.execute(query)})
    result: dict[str, dict[str, list[float]]] = {}
    stale: list[str] = []
    for run_id in run_ids:
        cached = live.get(run_id)
        if cached is not None and cached[0] == counts.get(run_id, 0):
            result[run_id] = cached[1]
        else:
            stale.append(run_id)
    fresh = _sql_histories(store, stale) if stale else {}
    if len(live) + len(stale) > _LIVE_RUNS_KEPT:
        live.clear()
    for run_id in stale:
        history = fresh.get(run_id, {})
        live[run_id] = (counts.get(run_id, 0), history)
        result[run_id] = history
    return result


def _sql_histories(store: Any, run_ids: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """One SELECT of plain columns per 500 runs, on the connection (no ORM objects), ordered by
    the store's (run_uuid, key, step) index (adding timestamp to the ORDER BY costs a sort: +50%
    here); a step logged twice keeps its latest value."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from sqlalchemy import select

    table = SqlMetric.__table__
    columns = (table.c.run_uuid, table.c.key, table.c.step, table.c.timestamp, table.c.value)
    curves: dict[str, dict[str, dict[int, float]]] = {}
    with store.ManagedSessionMaker() as session:
        connection = session.connection()
        for chunk in chunks(list(run_ids), _SQL_RUNS_PER_QUERY):
            query: Any = (
                select(*columns, table.c.is_nan)
                .where(table.c.run_uuid.in_(chunk), table.c.key != "train_seconds")
                .order_by(table.c.run_uuid, table.c.key, table.c.step)
            )
            last_run: str | None = None
            last_key: str | None = None
            last_step, last_stamp = -1, -1
            keys: dict[str, dict[int, float]] = {}
            steps: dict[int, float] = {}
            for run_id, key, step, stamp, value, is_nan in connection.execute(query):
                if run_id != last_run:
                    keys = curves.setdefault(run_id, {})
                    last_run, last_key = run_id, None
                if key != last_key:
                    steps = keys.setdefault(key, {})
                    last_key, last_step = key, -1
                if step == last_step and stamp < last_stamp:
                    continue  # an older write of the same epoch
                last_step, last_stamp = step, stamp
                if is_nan:
                    value = math.nan
                elif value >= _MAX_FLOAT or value <= -_MAX_FLOAT:
                    value = _finite_or_inf(value)
                steps[step] = value
    # Rows came ordered by step, so each dict's values are already in epoch order.
    return {
        run_id: {key: list(steps.values()) for key, steps in keys.items()}
        for run_id, keys in curves.items()
    }


def _rest_histories(
    store: Any, run_ids: Sequence[str], keys: Sequence[str], histories: _Histories
) -> None:
    """The server's ``/ajax-api/2.0/mlflow/metrics/get-history-bulk``: 100 runs and one key per
    request; a chunk that hits the 25,000-point cap is split and asked again."""
    from mlflow.utils.rest_utils import http_request

    def fetch(chunk: list[str], key: str) -> None:
        response = http_request(  # type: ignore[no-untyped-call]
            host_creds=store.get_host_creds(),
            endpoint="/ajax-api/2.0/mlflow/metrics/get-history-bulk",
            method="GET",
            params={"run_id": chunk, "metric_key": key, "max_results": _BULK_MAX_RESULTS},
        )
        if response.status_code != 200:
            raise TrackingError(
                f"MLflow get-history-bulk answered {response.status_code}: {response.text[:200]}"
            )
        points = response.json().get("metrics", [])
        if len(points) >= _BULK_MAX_RESULTS and len(chunk) > 1:
            half = len(chunk) // 2
            fetch(chunk[:half], key)
            fetch(chunk[half:], key)
            return
        for point in points:
            value = point.get("value", math.nan)
            histories.add(
                point["run_id"],
                point["key"],
                int(point.get("step", 0)),
                int(point.get("timestamp", 0)),
                float(value) if value is not None else math.nan,
            )

    for chunk in chunks(list(run_ids), _BULK_RUNS_PER_REQUEST):
        for key in keys:
            fetch(chunk, key)
