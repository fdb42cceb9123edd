"""Fixtures for the deployment tests: Postgres and an MLflow server on it, on loopback.

Session-scoped (the MLflow server's first start migrates the schema, tens of seconds), and
skipped with the reason where Postgres cannot run (no binaries, or root without a postgres
user). ``ray_cluster``: a head that runs no trials and two one-CPU workers on loopback, shared
by the topology tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy_stack import MlflowServer, Postgres, RayCluster, postgres_bin


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


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    with RayCluster(workers=2, worker_cpus=1) as cluster:
        yield cluster
