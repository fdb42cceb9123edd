"""The service's settings, in one ``Settings(BaseSettings)`` read from the environment.

Names are the environment variables (case-insensitive): ``RAY_ADDRESS`` (unset: the service
starts its own single-node Ray head on 127.0.0.1), ``MLFLOW_TRACKING_URI`` (unset: SQLite in the
project home), ``MLFLOW_UI_URL`` (for links; unset on the embedded default: the service starts an
MLflow UI on loopback over the same store), ``API_TOKEN`` (bearer token for POST and cancel),
``ROBUSTNESS_HOME`` and ``ROBUSTNESS_DATA_DIR`` (where records and datasets live; never taken
from a request), and the embedded head's ``RAY_NUM_CPUS`` and ``RAY_NICENESS``.

Every setting has one name, shared with the engine and the CLI where they read it too: the
limits are ``ROBUSTNESS_MAX_TRIALS`` (also read by ``studies.admission`` for ``robustness run``),
``ROBUSTNESS_MAX_ACTIVE_STUDIES``, ``ROBUSTNESS_MAX_BODY_BYTES``, ``ROBUSTNESS_PAGE_LIMIT``
and ``ROBUSTNESS_RETRY_AFTER_S``; the reconciler's ``ROBUSTNESS_RECONCILE_INTERVAL_S`` (5 s)
and ``ROBUSTNESS_MAX_RESTARTS`` (3 resubmissions of a study whose driver died); the reads'
``ROBUSTNESS_READ_CACHE_S`` (1 s) (``LIMITS``). The names used before (``MAX_TRIALS``,
``DATA_DIR``, ...) are not read; ``retired_names`` lists any still set, and the service warns.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from studies.admission import DEFAULT_MAX_TRIALS, MAX_TRIALS_ENV

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})

#: field -> its one environment name, for the settings whose name is not the field's own
LIMITS: dict[str, str] = {
    "max_trials": MAX_TRIALS_ENV,
    "max_active_studies": "ROBUSTNESS_MAX_ACTIVE_STUDIES",
    "max_body_bytes": "ROBUSTNESS_MAX_BODY_BYTES",
    "retry_after_s": "ROBUSTNESS_RETRY_AFTER_S",
    "page_limit": "ROBUSTNESS_PAGE_LIMIT",
    "reconcile_interval_s": "ROBUSTNESS_RECONCILE_INTERVAL_S",
    "max_restarts": "ROBUSTNESS_MAX_RESTARTS",
    "read_cache_s": "ROBUSTNESS_READ_CACHE_S",
}
DATA_DIR_ENV = "ROBUSTNESS_DATA_DIR"
#: names this service read before they were unified, and the name that replaced each
RETIRED: dict[str, str] = {
    "MAX_TRIALS": MAX_TRIALS_ENV,
    "MAX_ACTIVE_STUDIES": LIMITS["max_active_studies"],
    "MAX_BODY_BYTES": LIMITS["max_body_bytes"],
    "RETRY_AFTER_S": LIMITS["retry_after_s"],
    "PAGE_LIMIT": LIMITS["page_limit"],
    "DATA_DIR": DATA_DIR_ENV,
}


def retired_names(environ: dict[str, str] | None = None) -> list[str]:
    """A sentence for each retired name still set in the environment."""
    env = dict(os.environ) if environ is None else environ
    return [
        f"{old} is no longer read; set {new} instead"
        for old, new in RETIRED.items()
        if env.get(old) and not env.get(new)
    ]


def is_loopback(host: str) -> bool:
    """``localhost``, or any address in 127.0.0.0/8 or ::1."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    # No populate_by_name: pydantic-settings would then read the field names (MAX_TRIALS)
    # from the environment too, two names for one setting.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Where things run and are recorded
    ray_address: str | None = None  # a cluster's address; None: start a local head
    mlflow_tracking_uri: str | None = None  # None: sqlite:///<home>/mlflow.db
    mlflow_ui_url: str | None = None  # base URL of the MLflow UI, for links
    mlflow_ui: bool = True  # embedded default: start an MLflow UI on loopback
    robustness_home: Path = Path(".robustness")
    data_dir: Path | None = Field(default=None, validation_alias=DATA_DIR_ENV)  # None: <home>/data
    experiment: str = "robustness"

    # Safety
    api_token: SecretStr | None = None  # bearer token for POST /studies and cancel

    # Limits
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, validation_alias=LIMITS["max_body_bytes"]
    )  # bytes per request body
    max_trials: int = Field(
        default=DEFAULT_MAX_TRIALS, ge=1, validation_alias=LIMITS["max_trials"]
    )  # trials per study
    max_active_studies: int = Field(
        default=4, ge=1, validation_alias=LIMITS["max_active_studies"]
    )  # queued + running at once
    retry_after_s: int = Field(
        default=30, ge=1, validation_alias=LIMITS["retry_after_s"]
    )  # seconds, sent with 429
    page_limit: int = Field(
        default=100, ge=1, validation_alias=LIMITS["page_limit"]
    )  # studies per page, at most

    # The reconciler (service.reconciler): how often it compares records with Ray's jobs, and
    # how many times a study whose driver died is resubmitted before it is failed
    reconcile_interval_s: float = Field(
        default=5.0, gt=0, validation_alias=LIMITS["reconcile_interval_s"]
    )  # seconds
    max_restarts: int = Field(
        default=3, ge=0, validation_alias=LIMITS["max_restarts"]
    )  # per study, counted on its parent run
    # How stale a read may be (service.read_cache): a page of the study list is kept this long,
    # and a finished study's record, served from memory, is read again this often (only
    # another process can change it; this service's own writes drop it at once)
    read_cache_s: float = Field(
        default=1.0, ge=0, validation_alias=LIMITS["read_cache_s"]
    )  # seconds

    # The embedded Ray head
    ray_num_cpus: int | None = Field(default=None, ge=1)  # None: all cores
    ray_start_timeout_s: float = Field(default=90.0, gt=0)  # seconds
    # Niceness of the head and everything it starts (drivers, trials): on one machine the API
    # answers first and training takes the rest of the CPU; 0 shares it evenly.
    ray_niceness: int = Field(default=10, ge=0, le=19)

    @cached_property
    def home(self) -> Path:
        return self.robustness_home.expanduser().resolve()

    @cached_property
    def tracking_uri(self) -> str:
        """The tracking URI with a relative SQLite path made absolute (jobs run elsewhere)."""
        uri = self.mlflow_tracking_uri
        if not uri:
            return f"sqlite:///{self.home / 'mlflow.db'}"
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
            return prefix + str(Path(uri.removeprefix(prefix)).resolve())
        return uri

    @cached_property
    def resolved_data_dir(self) -> Path:
        return (self.data_dir or self.home / "data").expanduser().resolve()

    @property
    def embedded(self) -> bool:
        """True on the embedded default: no cluster address given."""
        return not self.ray_address

    def token(self) -> str | None:
        token = self.api_token.get_secret_value() if self.api_token else ""
        return token or None  # an empty API_TOKEN means no token

    def local_env(self) -> dict[str, str]:
        """The engine's environment in this process (``studies.paths`` reads it)."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "ROBUSTNESS_HOME": str(self.home),
            "ROBUSTNESS_DATA_DIR": str(self.resolved_data_dir),
        }

    def job_env(self) -> dict[str, str]:
        """What a study's Ray Job needs to find the same records, data and Tune state. On a
        cluster, paths are passed only when set explicitly (the nodes' own defaults otherwise:
        this machine's paths need not exist there)."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.embedded or "robustness_home" in self.model_fields_set:
            env["ROBUSTNESS_HOME"] = str(self.home)
        if self.embedded or "data_dir" in self.model_fields_set:
            env["ROBUSTNESS_DATA_DIR"] = str(self.resolved_data_dir)
        for name in ("ROBUSTNESS_STORAGE", "ROBUSTNESS_OPTUNA_STORAGE", "ROBUSTNESS_DOWNLOAD"):
            if os.environ.get(name):  # shared storage a cluster's nodes reach
                env[name] = os.environ[name]
        return env
