"""Fixtures of the service tests: one temporary home per module, and no cluster address
inherited from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-home")


@pytest.fixture(autouse=True)
def _no_cluster_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # never attach a test to someone else's cluster through the environment
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
