"""Many trials' epochs in one write: a pack's members report together, once per epoch.

The runner's Tune callback records a pack's epoch for each of its K members while the pack
waits in ``tune.report``. MLflow's ``log_batch`` is one run at a time and, on a SQL store,
several sessions and a commit each: 80-110 ms per epoch of a 12-member pack on SQLite here.
On a SQL store (SQLite, Postgres, MySQL) this writes every member's metrics in one
transaction, as MLflow's own ``SqlMetric`` rows with its latest-metric bookkeeping (done for
all runs at once), so what is read back is what ``log_batch`` would have left: 13-18 ms for
the same epoch (``bench/README.md``; ``tests/deploy/test_store_contract.py`` checks the two
give the same records).

A step given twice in one call keeps the later value. Anything the one transaction does not
take (a run that is deleted or unknown, a database hiccup) rolls it back, and the rows are
written run by run with ``log_batch``, which raises what ``log_epoch`` would. On a tracking
server (REST) the rows are written run by run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from studies.tracking.connection import Connection
from studies.tracking.trials import epoch_metrics, log_metrics

EpochRow = tuple[str, int, Mapping[str, float]]  # (run id, epoch, metrics)


class _NotBatched(Exception):
    """The one transaction was not taken (rolled back): write run by run."""


def log_epochs(conn: Connection, rows: Sequence[EpochRow]) -> None:
    if not rows:
        return
    conn.count_write()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = conn.client._tracking_client.store
    if isinstance(store, SqlAlchemyStore):
        try:
            _log_in_one_transaction(store, rows)
            return
        except Exception:  # rolled back: the per-run path below raises what it must
            pass
    for run_id, epoch, metrics in rows:
        log_metrics(conn, run_id, epoch_metrics(epoch, metrics))


def _log_in_one_transaction(store: Any, rows: Sequence[EpochRow]) -> None:
    from mlflow.entities import LifecycleStage
    from mlflow.store.tracking.dbmodels.models import SqlMetric, SqlRun
    from mlflow.utils.validation import _validate_metric

    timestamp = int(time.time() * 1000)
    # (run, metric, step) -> row: a step given twice in one call keeps the later value
    points: dict[tuple[str, str, int], Any] = {}
    for run_id, epoch, metrics in rows:
        for name, raw in metrics.items():
            value, step = float(raw), int(epoch)
            _validate_metric(name, value, timestamp, step)  # type: ignore[no-untyped-call]
            is_nan, stored = store.sanitize_metric_value(value)
            points[(run_id, name, step)] = SqlMetric(
                run_uuid=run_id,
                key=name,
                value=stored,
                timestamp=timestamp,
                step=step,
                is_nan=is_nan,
            )
    run_ids = sorted({run_id for run_id, _, _ in rows})
    with store.ManagedSessionMaker(read_only=False) as session, session.no_autoflush:
        active = {
            run_uuid
            for run_uuid, stage in store._get_query(session, SqlRun)
            .filter(SqlRun.run_uuid.in_(run_ids))
            .with_entities(SqlRun.run_uuid, SqlRun.lifecycle_stage)
            .all()
            if stage == LifecycleStage.ACTIVE
        }
        if active != set(run_ids):
            raise _NotBatched(f"runs not active: {sorted(set(run_ids) - active)}")
        instances = list(points.values())
        session.add_all(instances)
        session.add_all(_latest_metrics(session, instances))
        session.commit()


def _latest_metrics(session: Any, instances: Sequence[Any]) -> list[Any]:
    """MLflow's latest-metric rows brought up to date for every run at once (what its
    ``_update_latest_metrics_if_necessary`` does per run: a value replaces the latest when its
    (step, timestamp, value) is greater), rows locked in one order; the new rows to add."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric

    run_ids = sorted({metric.run_uuid for metric in instances})
    keys = sorted({metric.key for metric in instances})
    latest: dict[tuple[str, str], Any] = {
        (row.run_uuid, row.key): row
        for row in session.query(SqlLatestMetric)
        .filter(SqlLatestMetric.run_uuid.in_(run_ids), SqlLatestMetric.key.in_(keys))
        .order_by(SqlLatestMetric.run_uuid, SqlLatestMetric.key)
        .with_for_update()
        .all()
    }
    created: list[Any] = []
    for metric in instances:
        row = latest.get((metric.run_uuid, metric.key))
        if row is None:
            row = SqlLatestMetric(run_uuid=metric.run_uuid, key=metric.key)
            latest[(metric.run_uuid, metric.key)] = row
            created.append(row)
        elif (metric.step, metric.timestamp, metric.value) <= (row.step, row.timestamp, row.value):
            continue  # not more recent than what the run shows
        row.value, row.step = metric.value, metric.step
        row.timestamp, row.is_nan = metric.timestamp, metric.is_nan
    return created
