"""The test session's data: CIFAR-10 is imported once, through ``robustness data import``'s
code path, from the JPEG archive beside the clone (``../shared/data/``, where CI keeps it)
when the data directory lacks it; without either, the tests that need it skip and say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studies import data_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO_ROOT / data_sources.SHARED_CIFAR_TAR


def pytest_sessionstart(session: pytest.Session) -> None:
    env = os.environ.get("ROBUSTNESS_DATA_DIR")
    data_dir = Path(env) if env else REPO_ROOT / ".robustness" / "data"
    if not SHARED_CIFAR.is_file() or data_sources.locate("cifar10", data_dir=data_dir).found:
        return
    print(f"\nimporting CIFAR-10 for the tests: {SHARED_CIFAR} -> {data_dir / 'cifar10'}")
    data_sources.import_archive("cifar10", SHARED_CIFAR, data_dir=data_dir)
