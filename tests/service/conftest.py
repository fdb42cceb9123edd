"""Fixtures of the service tests: one temporary home per module, no cluster address
inherited from the environment, and a client for a module's ``service`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.processes.service_process import ServiceProcess


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-home")


@pytest.fixture(autouse=True)
def _no_cluster_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # never attach a test to someone else's cluster through the environment
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    """An HTTP client for the module's ``service`` fixture (each module starts its own)."""
    with httpx.Client(base_url=service.url, timeout=60.0) as c:
        yield c
