"""Fixtures for the deployment tests: Postgres and an MLflow server on it, on loopback; and the
real compose stack.

Session-scoped (the MLflow server's first start migrates the schema, tens of seconds), and
skipped with the reason where Postgres cannot run (no binaries, or root without a postgres
user). ``ray_cluster``: a head that runs no trials and two one-CPU workers on loopback, shared
by the topology tests.

``compose_stack``: docker-compose.yml's services built and running in a private Docker daemon,
on loopback (tests/deploy/compose_stack.py). Its ``api_url``, ``api_token`` and ``mlflow_url``
are the stack's API and MLflow UI for any test that needs the stack (a browser check of the
links the API gives, for one). Skipped with the reason where no Docker engine can run here, or
with ROBUSTNESS_COMPOSE_TEST=0; ROBUSTNESS_COMPOSE_TEST=1 (`make compose-test`) fails instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


COMPOSE_TEST_ENV = "ROBUSTNESS_COMPOSE_TEST"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the compose stack last, together, in their order: the stack (five
    containers, their healthchecks) then runs alone, and the session's end takes it down."""
    on_stack = [item for item in items if "compose_stack" in getattr(item, "fixturenames", ())]
    if on_stack:
        rest = [item for item in items if item not in on_stack]
        items[:] = rest + on_stack


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(COMPOSE_TEST_ENV) == "1":
        pytest.fail(f"{COMPOSE_TEST_ENV}=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[object]:
    from compose_stack import REPO, ComposeStack, PrivateDockerd, engine_unavailable

    if os.environ.get(COMPOSE_TEST_ENV) == "0":
        pytest.skip(f"{COMPOSE_TEST_ENV}=0")
    why = engine_unavailable()
    if why:
        _skip_or_fail(why)
    # Fashion-MNIST for figure6-quick, where the host has it or gets it: Debian's package,
    # installed with apt-get where root (the CLI's `data fetch`; no download).
    fetch = subprocess.run(
        [str(Path(sys.executable).parent / "robustness"), "data", "--data-dir",
         str(REPO / ".robustness" / "compose-test" / "no-data"), "fetch", "fashion_mnist",
         "--no-download"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if fetch.returncode != 0:
        _skip_or_fail(f"no Fashion-MNIST for the study: {fetch.stdout}{fetch.stderr}")
    fashion = Path(fetch.stdout.strip().splitlines()[-1].rsplit(" in ", 1)[1])
    workdir = REPO / ".robustness" / "compose-test"
    workdir.mkdir(parents=True, exist_ok=True)
    interfaces = sorted(name for _, name in socket.if_nameindex())  # before any dockerd
    dockerd = PrivateDockerd()
    try:
        dockerd.start()
    except Exception as exc:  # no engine can run here (cgroups, overlayfs, ...): say why
        _skip_or_fail(f"the private dockerd did not start: {exc}")
    stack = None
    try:
        stack = ComposeStack(workdir, dockerd.host, fashion)
        stack.interfaces = interfaces
        stack.compose("down", "--volumes", "--timeout", "10", check=False)  # a stale run's
        print(stack.base_images(), file=sys.stderr)
        stack.build()
        stack.up()
        yield stack
    finally:
        try:
            if stack is not None:
                stack.down(volumes=True)
        finally:
            if stack is not None:
                stack.timings["data-root"] = dockerd.data_root_size()  # type: ignore[assignment]
                (workdir / "timings.json").write_text(json.dumps(stack.timings, indent=2))
                print(f"compose stack timings (s): {stack.timings}", file=sys.stderr)
            dockerd.stop()  # by its pid, when this session started it
