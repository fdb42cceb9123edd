"""Fixtures for the deployment tests: Postgres and an MLflow server on it, on loopback.

Session-scoped (the MLflow server's first start migrates the schema, tens of seconds), and
skipped with the reason where Postgres cannot run (no binaries, or root without a postgres
user). The topology test (Ray head + workers, the API in cluster mode) builds on these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy_stack import MlflowServer, Postgres, postgres_bin


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bin_dir, why = postgres_bin()
    if bin_dir is None:
        pytest.skip(why)
    with Postgres() as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server(postgres: Postgres) -> Iterator[MlflowServer]:
    with MlflowServer(postgres) as server:
        yield server
