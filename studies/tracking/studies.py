"""Study records: the parent run of each study (create, read, list, count, set status).

A parent run carries tags ``robustness.kind=study``, ``robustness.study_id``,
``robustness.status`` (the truth; the MLflow run status follows it, see
``studies.status.STUDY_RUN_STATUS``), ``robustness.num_trials``, the spec as JSON (tag
``robustness.spec_json`` when it fits, else only the ``spec.json`` artifact) and, once written,
the spec flattened as params.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from mlflow.entities import Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from studies.errors import TrackingError
from studies.results import StudyRecord
from studies.status import (
    ACTIVE_RUN_STATUSES,
    STUDY_RUN_STATUS,
    TERMINAL_STUDY,
    StudyStatus,
)
from studies.tracking.connection import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    PARAMS_PER_BATCH,
    SEARCH_PAGE,
    SPEC_ARTIFACT,
    TAG_ATTEMPT,
    TAG_ERROR,
    TAG_KIND,
    TAG_LAUNCHER,
    TAG_NUM_TRIALS,
    TAG_PARENT,
    TAG_RESTART_REASON,
    TAG_RESTARTS,
    TAG_SPEC_JSON,
    TAG_STATUS,
    TAG_STUDY_ID,
    TAG_SUSPENDED,
    TAG_UPDATED_AT,
    Connection,
    chunks,
    now_iso,
    quoted,
    truncate,
)
from studies.tracking.links import study_view, view_tag_key

# The run statuses a study with each status may have: its own; an active study's run may
# still be RUNNING as MLflow opened it; a study just made terminal may not be closed yet.
_POSSIBLE_RUN_STATUSES: dict[StudyStatus, frozenset[str]] = {
    status: ACTIVE_RUN_STATUSES | {run_status} for status, run_status in STUDY_RUN_STATUS.items()
}


def flatten(mapping: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """The spec as MLflow params: nested dicts as dotted keys; lists and other non-strings as
    JSON; values cut to MLflow's 6000 characters (marked ``...[truncated]``)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[name[:MAX_KEY]] = truncate(text, MAX_PARAM_VALUE)
    return flat


def tags_of(run: Run) -> dict[str, str]:
    tags: dict[str, str] = run.data.tags
    return tags


def record_from_run(run: Run, *, spec: dict[str, object] | None = None) -> StudyRecord:
    tags = tags_of(run)
    if spec is None:
        spec_json = tags.get(TAG_SPEC_JSON)
        spec = cast(dict[str, object], json.loads(spec_json)) if spec_json else {}
    updated = tags.get(TAG_UPDATED_AT)
    restarts = int(tags.get(TAG_RESTARTS, "0") or 0)
    return StudyRecord(
        study_id=tags[TAG_STUDY_ID],
        name=run.info.run_name or tags[TAG_STUDY_ID],
        status=StudyStatus.parse(tags.get(TAG_STATUS)),
        spec=spec,
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        created_at=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
        updated_at=datetime.fromisoformat(updated) if updated else None,
        error=tags.get(TAG_ERROR) or None,
        num_trials=int(tags.get(TAG_NUM_TRIALS, "0") or 0),
        restarts=restarts,
        attempt=int(tags.get(TAG_ATTEMPT, "") or restarts),
        suspended=tags.get(TAG_SUSPENDED) == "1",
        launcher=tags.get(TAG_LAUNCHER) or None,
    )


def create_study(
    conn: Connection,
    spec: Mapping[str, Any],
    *,
    study_id: str | None,
    experiment: str,
    num_trials: int | None,
    check_unique: bool,
    details: bool,
    launcher: str | None = None,
) -> StudyRecord:
    client = conn.client
    if study_id is None:
        study_id = uuid.uuid4().hex[:12]
    quoted(study_id, what="study id")
    if check_unique and conn.find_parent(study_id, required=False) is not None:
        raise TrackingError(f"a study with id {study_id!r} already exists")
    experiment_id = conn.experiment_id(experiment)
    spec_dict = json.loads(json.dumps(dict(spec), default=str))
    if num_trials is None:
        num_trials = int(spec_dict.get("num_trials", 0) or 0)
    spec_json = json.dumps(spec_dict, sort_keys=True, separators=(",", ":"))
    tags = {
        TAG_KIND: "study",
        TAG_STUDY_ID: study_id,
        TAG_STATUS: StudyStatus.QUEUED.value,
        TAG_UPDATED_AT: now_iso(),
        TAG_NUM_TRIALS: str(num_trials),
    }
    if launcher:
        tags[TAG_LAUNCHER] = launcher
    spec_in_tag = len(spec_json) <= MAX_TAG_VALUE
    if spec_in_tag:
        tags[TAG_SPEC_JSON] = spec_json
    name = str(spec_dict.get("name") or f"study-{study_id}")
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    # the run as created carries every tag above; no read back (only the id is kept)
    conn.remember_parent(study_id, run)
    if not spec_in_tag:  # spec.json is then the record's only copy of the spec: write it now
        _write_spec_artifact(client, run.info.run_id, spec_dict)
    if details:
        _write_details(client, run, spec_dict, spec_artifact=spec_in_tag)
    return record_from_run(run, spec=spec_dict)


def write_study_details(conn: Connection, study_id: str, *, load_spec: Any) -> None:
    run = conn.fresh_parent(study_id)
    spec_json = tags_of(run).get(TAG_SPEC_JSON)
    spec = cast(dict[str, object], json.loads(spec_json)) if spec_json else load_spec(study_id)
    _write_details(conn.client, run, spec, spec_artifact=bool(spec_json))


def _write_details(
    client: MlflowClient, run: Run, spec: dict[str, object], *, spec_artifact: bool
) -> None:
    run_id = run.info.run_id
    params = [Param(key, value) for key, value in flatten(spec).items()]
    for chunk in chunks(params, PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk, synchronous=True)
    if spec_artifact:
        _write_spec_artifact(client, run_id, spec)
    # the view the study's MLflow links open (studies.tracking.links): on the experiment, where
    # MLflow's UI looks for a shared view's state
    client.set_experiment_tag(run.info.experiment_id, *study_view(run_id, spec))
    # MLflow opens every run RUNNING; a queued study's run is SCHEDULED until its runner
    # starts (only then: a study that started or ended meanwhile keeps its status)
    if tags_of(run).get(TAG_STATUS) == StudyStatus.QUEUED and run.info.status == "RUNNING":
        client.update_run(run_id, status=STUDY_RUN_STATUS[StudyStatus.QUEUED])


def _write_spec_artifact(client: MlflowClient, run_id: str, spec: dict[str, object]) -> None:
    client.log_text(run_id, json.dumps(spec, indent=2, sort_keys=True), SPEC_ARTIFACT)


def list_studies(
    conn: Connection,
    *,
    status: StudyStatus | str | None,
    limit: int,
    offset: int,
    experiment: str | None,
) -> list[StudyRecord]:
    if limit <= 0:
        return []
    client = conn.client
    if experiment is None:
        experiment_ids = conn.active_experiment_ids()
    else:
        found = client.get_experiment_by_name(experiment)
        experiment_ids = [found.experiment_id] if found is not None else []
    if not experiment_ids:
        return []
    filter_string = f"tags.`{TAG_KIND}` = 'study'"
    if status is not None:
        filter_string += f" and tags.`{TAG_STATUS}` = {quoted(str(status), what='status')}"
    wanted = offset + limit
    runs: list[Run] = []
    token: str | None = None
    while len(runs) < wanted:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=min(wanted - len(runs), SEARCH_PAGE),
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [record_from_run(run) for run in runs[offset:wanted]]


def parse_statuses(statuses: Sequence[StudyStatus | str]) -> set[StudyStatus]:
    try:
        return {StudyStatus(s) for s in statuses}
    except ValueError as exc:
        raise TrackingError(f"unknown study status: {exc}; one of {list(StudyStatus)}") from exc


def count_studies(conn: Connection, *, statuses: Sequence[StudyStatus | str], limit: int) -> int:
    """See ``StudyStore.count_studies``. Tags cannot be matched with ``IN``, so several
    statuses are found through the MLflow run status, which can be matched by excluding
    values: the run statuses a study with none of ``statuses`` may have are left out, then
    each run's tag is checked. ``set_study_status`` orders its two writes so that an active
    tag always has an active run status, which keeps the query a superset."""
    wanted = parse_statuses(statuses)
    if limit <= 0 or not wanted:
        return 0
    experiment_ids = conn.active_experiment_ids()
    if not experiment_ids:
        return 0
    filter_string = f"tags.`{TAG_KIND}` = 'study'"
    if len(wanted) == 1:
        filter_string += f" and tags.`{TAG_STATUS}` = {quoted(next(iter(wanted)), what='status')}"
    else:
        possible = set().union(*(_POSSIBLE_RUN_STATUSES[s] for s in wanted))
        filter_string += "".join(
            f" and attributes.status != '{run_status}'"
            for run_status in sorted(set(STUDY_RUN_STATUS.values()) - possible)
        )
    count = 0
    token: str | None = None
    while count < limit:
        page = conn.client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=min(limit - count, SEARCH_PAGE),
            page_token=token,
        )
        count += sum(1 for run in page if tags_of(run).get(TAG_STATUS) in wanted)
        token = page.token
        if not token:
            break
    return min(count, limit)


def set_study_status(
    conn: Connection, study_id: str, status: StudyStatus, *, error: str | None
) -> None:
    """The tag and the MLflow run status (the caller snapshots a terminal study's trials
    first)."""
    client = conn.client
    run_id = conn.parent(study_id).info.run_id
    tags = [RunTag(TAG_STATUS, status.value), RunTag(TAG_UPDATED_AT, now_iso())]
    tags.append(RunTag(TAG_ERROR, truncate(error, MAX_TAG_VALUE) if error else ""))
    run_status = STUDY_RUN_STATUS[status]
    # The tag is the truth; of the two writes, the one that makes the run active goes first
    # and the one that closes it last, so an active tag never sits on a closed run (see
    # count_studies) even if a crash falls between them.
    if status in TERMINAL_STUDY:
        client.log_batch(run_id, tags=tags, synchronous=True)
        client.set_terminated(run_id, status=run_status)
    else:
        client.update_run(run_id, status=run_status)
        client.log_batch(run_id, tags=tags, synchronous=True)


def record_restart(conn: Connection, study_id: str, *, reason: str, counted: bool) -> int:
    """One more resubmission of the study's driver on its parent run: its attempt number, and,
    when ``counted`` (its driver died), the restarts and the reason; the suspension mark goes.
    Returns the new attempt number. The study is running again (its run status)."""
    record = record_from_run(conn.fresh_parent(study_id))
    attempt = record.attempt + 1
    tags = [
        RunTag(TAG_ATTEMPT, str(attempt)),
        RunTag(TAG_SUSPENDED, ""),
        RunTag(TAG_UPDATED_AT, now_iso()),
    ]
    if counted:
        tags.append(RunTag(TAG_RESTARTS, str(record.restarts + 1)))
        tags.append(RunTag(TAG_RESTART_REASON, truncate(reason, MAX_TAG_VALUE)))
    client = conn.client
    client.update_run(record.run_id, status=STUDY_RUN_STATUS[StudyStatus.RUNNING])
    client.log_batch(record.run_id, tags=tags, synchronous=True)
    return attempt


def mark_suspended(conn: Connection, study_id: str) -> None:
    """A graceful stop took the study's driver down: its next resubmission is not counted."""
    run_id = conn.parent(study_id).info.run_id
    tags = [RunTag(TAG_SUSPENDED, "1"), RunTag(TAG_UPDATED_AT, now_iso())]
    conn.client.log_batch(run_id, tags=tags, synchronous=True)


def set_study_tags(conn: Connection, study_id: str, tags: Mapping[str, str]) -> None:
    run_id = conn.parent(study_id).info.run_id
    batch = [RunTag(key[:MAX_KEY], truncate(str(v), MAX_TAG_VALUE)) for key, v in tags.items()]
    conn.client.log_batch(run_id, tags=batch, synchronous=True)


def delete_study(conn: Connection, study_id: str) -> None:
    client = conn.client
    parent = conn.parent(study_id)
    parent_id = parent.info.run_id
    token: str | None = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent_id}'",
            max_results=SEARCH_PAGE,
            page_token=token,
        )
        for run in page:
            client.delete_run(run.info.run_id)
        token = page.token
        if not token:
            break
    client.delete_run(parent_id)
    with contextlib.suppress(MlflowException):  # a study made before the view tag existed
        client.delete_experiment_tag(parent.info.experiment_id, view_tag_key(parent_id))
    conn.forget_study(study_id)
