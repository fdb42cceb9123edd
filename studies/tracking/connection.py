"""One tracking URI's MLflow client and the lookups a store remembers (run ids never change).

What every part of the store shares: the record's tag names, the error wrapper that turns
MLflow's and the network's exceptions into ``TrackingError``, and ``Connection``, which holds
the client, the experiment ids and the study parent runs found so far. State lives on the
``Connection`` (one per store, one store per URI), never in module globals.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from studies.errors import StudyNotFoundError, TrackingError

DEFAULT_EXPERIMENT = "robustness"

TAG_KIND = "robustness.kind"
TAG_STUDY_ID = "robustness.study_id"
TAG_STATUS = "robustness.status"
TAG_ERROR = "robustness.error"
TAG_UPDATED_AT = "robustness.updated_at"
TAG_NUM_TRIALS = "robustness.num_trials"
TAG_SPEC_JSON = "robustness.spec_json"  # the spec again, so listing studies downloads nothing
TAG_SNAPSHOT = "robustness.snapshot"  # token of the current trials.json; absent: none
TAG_RESTARTS = "robustness.restarts"  # how many times the study's driver was resubmitted
TAG_RESTART_REASON = "robustness.restart_reason"  # why, the last time
# the number of the driver's latest resubmission (its Ray job is <study id>-r<attempt>); absent:
# the restarts, as before graceful stops were told apart
TAG_ATTEMPT = "robustness.attempt"
TAG_SUSPENDED = "robustness.suspended"  # "1": a graceful stop of the service suspended it
TAG_LAUNCHER = "robustness.launcher"  # who runs its driver: "service" (a Ray job) or absent
TAG_TRIAL_ID = "robustness.trial_id"
TAG_NODE = "robustness.node"
TAG_PARENT = "mlflow.parentRunId"

# MLflow 3.17's UI opens an experiment on the view its kind names (tag mlflow.experimentKind,
# read by the experiment page); without the tag it guesses, and a fresh experiment lands on
# the GenAI overview (traces, token usage) instead of the runs table.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

SPEC_ARTIFACT = "spec.json"
SNAPSHOT_ARTIFACT = "trials.json"

# MLflow's limits (mlflow.utils.validation): values, and entities per log_batch call.
MAX_PARAM_VALUE = 6000  # characters
MAX_TAG_VALUE = 8000  # characters
MAX_KEY = 250  # characters
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
SEARCH_PAGE = 1000  # runs per search_runs page
_HEALTH_TIMEOUT = 10.0  # seconds to wait for a tracking server's /health (a busy one is slow)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


def wrap_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn MLflow's and the network's exceptions into ``TrackingError``."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except (StudyNotFoundError, TrackingError):
            raise
        except MlflowException as exc:
            raise TrackingError(f"MLflow refused {func.__name__}: {exc.message}") from exc
        except SQLAlchemyError as exc:  # our direct reads of a SQL store
            raise TrackingError(f"MLflow's database failed in {func.__name__}: {exc}") from exc
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise TrackingError(f"MLflow unreachable during {func.__name__}: {exc}") from exc

    return wrapper


class Connection:
    """A tracking URI's client (made on first use: a tracking server must answer /health
    first, failing fast rather than after MLflow's minutes of retries) and its lookups."""

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri
        self.lock = threading.Lock()
        self._client: MlflowClient | None = None
        self._experiment_ids: dict[str, str] = {}
        self._parents: dict[str, Run] = {}  # study id -> parent run (ids/info only)
        self.trial_runs: dict[tuple[str, str], str] = {}  # (parent run, trial id) -> run id
        # trial writes made through this connection: a snapshot taken after the last one is
        # current (see snapshots.Snapshots.is_current)
        self.trial_writes = 0

    @property
    def client(self) -> MlflowClient:
        client = self._client
        if client is not None:
            return client
        with self.lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> MlflowClient:
        uri = self.uri
        if uri.startswith(("http://", "https://")):
            check_server(uri)
            # Else every set_terminated costs one more request, to print "View run ... at"
            # on stdout (1000 lines for a 1000-trial study). The caller's setting wins.
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        try:
            client = MlflowClient(tracking_uri=uri)
            client._tracking_client.store  # noqa: B018  (opens the store: a bad URI fails here)
        except (MlflowException, SQLAlchemyError, OSError) as exc:
            raise TrackingError(f"bad MLflow tracking URI {uri!r}: {exc}") from exc
        return client

    def count_write(self) -> None:
        self.trial_writes += 1

    # ---- experiments --------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached
        client = self.client
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(
                    name,
                    artifact_location=sqlite_artifact_location(self.uri),
                    tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND},
                )
            except MlflowException:  # another process created it first
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            experiment_id = experiment.experiment_id
            if TAG_EXPERIMENT_KIND not in experiment.tags:  # made before the tag was set
                client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
        self._experiment_ids[name] = experiment_id
        return experiment_id

    def active_experiment_ids(self) -> list[str]:
        ids: list[str] = []
        token: str | None = None
        while True:
            page = self.client.search_experiments(
                view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            ids.extend(experiment.experiment_id for experiment in page)
            token = page.token
            if not token:
                return ids

    # ---- study parent runs --------------------------------------------------------------

    def remember_parent(self, study_id: str, run: Run) -> None:
        self._parents[study_id] = run

    def find_parent(self, study_id: str, *, required: bool = True) -> Run | None:
        """The parent run of a study (its info and tags as of the first lookup here)."""
        cached = self._parents.get(study_id)
        if cached is not None:
            return cached
        experiment_ids = self.active_experiment_ids()
        runs = (
            self.client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{TAG_STUDY_ID}` = {quoted(study_id, what='study id')} "
                f"and tags.`{TAG_KIND}` = 'study'",
                max_results=1,
            )
            if experiment_ids
            else []
        )
        if not runs:
            if required:
                raise StudyNotFoundError(f"no study has id {study_id!r}")
            return None
        self._parents[study_id] = runs[0]
        return runs[0]

    def forget_study(self, study_id: str) -> None:
        run = self._parents.pop(study_id, None)
        if run is not None:
            parent_id = run.info.run_id
            for key in [k for k in self.trial_runs if k[0] == parent_id]:
                del self.trial_runs[key]

    def parent(self, study_id: str) -> Run:
        run = self.find_parent(study_id)
        assert run is not None  # required=True raises instead
        return run

    def fresh_parent(self, study_id: str) -> Run:
        """The parent run as it is now (tags change; the remembered run only gives the id)."""
        return self.client.get_run(self.parent(study_id).info.run_id)


def check_server(tracking_uri: str) -> None:
    import requests

    url = tracking_uri.rstrip("/") + "/health"
    try:
        response = requests.get(url, timeout=_HEALTH_TIMEOUT)
    except requests.RequestException as exc:
        raise TrackingError(f"MLflow tracking server {tracking_uri} is unreachable: {exc}") from exc
    if response.status_code != 200:
        raise TrackingError(
            f"MLflow tracking server {tracking_uri} answered /health with "
            f"{response.status_code}: {response.text[:200]}"
        )


def sqlite_artifact_location(tracking_uri: str) -> str | None:
    """``<db dir>/mlartifacts`` for a SQLite store; the server's or store's default otherwise."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:":
        return None
    return (Path(database).resolve().parent / "mlartifacts").as_uri()


def quoted(value: str, *, what: str) -> str:
    """A value for an MLflow search filter; ids with quotes are refused rather than escaped."""
    if "'" in value or "\\" in value:
        raise TrackingError(f"{what} {value!r} contains a quote or backslash")
    return f"'{value}'"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def truncate(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    marker = "...[truncated]"
    return value[: limit - len(marker)] + marker


def chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
