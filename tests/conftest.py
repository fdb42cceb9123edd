"""The test session's data: CIFAR-10 is imported once, through ``robustness data import``'s
code path, from the JPEG archive beside the clone (``../shared/data/``, where CI keeps it)
when the data directory lacks it; without either, the tests that need it skip and say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studies.workloads import archives, sources

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO_ROOT / sources.SHARED_CIFAR_TAR


def pytest_sessionstart(session: pytest.Session) -> None:
    env = os.environ.get("ROBUSTNESS_DATA_DIR")
    data_dir = Path(env) if env else REPO_ROOT / ".robustness" / "data"
    if not SHARED_CIFAR.is_file() or sources.locate("cifar10", data_dir=data_dir).found:
        return
    print(f"\nimporting CIFAR-10 for the tests: {SHARED_CIFAR} -> {data_dir / 'cifar10'}")
    archives.import_archive("cifar10", SHARED_CIFAR, data_dir=data_dir)


@pytest.fixture
def spec_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every validation of a ``StudySpec`` in this process from here on (``parse``, from a
    dict or JSON, ``model_validate``, a cached parse's first), by the method called: the
    tests of "a spec is parsed once per process boundary" count them."""
    from studies.spec import StudySpec

    calls: list[str] = []
    for name in ("model_validate", "model_validate_json"):
        original = getattr(StudySpec, name)  # bound to StudySpec

        def counting(cls: type, *args: object, _original=original, _name=name, **kwargs: object):  # type: ignore[no-untyped-def]
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(StudySpec, name, classmethod(counting))
    return calls
