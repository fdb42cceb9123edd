"""Packs only where they apply: PackedOptimizer's kinds and the classification loss; other
studies run one trial per grid point, and the reason is what the record's tag says."""

from __future__ import annotations

from typing import Any

from studies.runner.cluster import resolve_pack_size, unpacked_reason
from studies.spec import StudySpec


def _spec(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "packs",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "adamw"],
        "learning_rates": [0.01, 0.001],
        "pack_size": 4,
    }
    return StudySpec.parse(base | changes)


def test_the_project_optimizers_on_a_builtin_workload_pack() -> None:
    assert unpacked_reason(_spec()) is None
    assert resolve_pack_size(_spec(), pending=4) == 4


def test_a_torch_optimizer_runs_unpacked_and_says_why() -> None:
    spec = _spec(optimizers=["radam", "nadam"])
    reason = unpacked_reason(spec)
    assert reason is not None and "nadam" in reason and "radam" in reason
    assert resolve_pack_size(spec, pending=4) == 1


def test_no_reason_where_no_packs_were_asked_for() -> None:
    assert unpacked_reason(_spec(optimizers=["nadam"], pack_size=1)) is None
