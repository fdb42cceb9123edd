"""``FairSearch`` without Tune: the streams, their order, their seeds, what they are told."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from studies.runner.search import FairSearch
from studies.spec import StudySpec


def _spec(kind: str, **search: Any) -> StudySpec:
    return StudySpec.parse(
        {
            "name": "search",
            "dataset": "digits",
            "model": "mlp",
            "optimizers": ["radam", "adamw", "sgd"],
            "learning_rates": [0.001, 0.1],
            "warmup": {"kinds": ["linear"], "steps": [10, 1000], "optimizers": ["adamw"]},
            "seeds": [0, 1],
            "search": {"kind": kind, "num_samples": 4, **search},
        }
    )


def _drain(searcher: FairSearch, objective: float = 0.5) -> list[dict[str, Any]]:
    """Every suggestion, each completed at once (as with one trial at a time)."""
    out = []
    for i in range(10_000):
        config = searcher.suggest(f"t{i}")
        if config == "FINISHED":
            return out
        assert isinstance(config, dict)
        out.append(config)
        searcher.on_trial_complete(f"t{i}", {"objective": objective * config["lr"]})
    raise AssertionError("the searcher never finished")


@pytest.fixture(autouse=True)
def _storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUSTNESS_OPTUNA_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.mark.parametrize("kind", ["optuna", "random"])
def test_every_optimizer_gets_the_same_samples_in_round_robin(kind: str) -> None:
    spec = _spec(kind, repeats=2)
    configs = _drain(FairSearch(spec, "s1", {"spec": "x"}))
    assert len(configs) == spec.num_trials == 3 * 2 * 4 * 2
    for opt in spec.optimizers:
        mine = [c for c in configs if c["optimizer"] == opt]
        assert {(c["repeat"], c["sample"], c["__trial_index__"]) for c in mine} == {
            (r, s, i) for r in range(2) for s in range(4) for i in range(2)
        }
    # sample by sample: no optimizer starts its sample n+1 before every one has had sample n
    first = next(i for i, c in enumerate(configs) if c["sample"] == 1)
    assert first == 3 * 2 * 2  # every (optimizer, repeat) stream's sample 0, on both seeds
    assert all(c["spec"] == "x" for c in configs)  # the constants ride along
    for c in configs:
        assert 0.001 <= c["lr"] <= 0.1
        steps = c["warmup_steps"]
        assert (c["warmup"], 10 <= steps <= 1000) == (
            ("linear", True) if c["optimizer"] == "adamw" else ("none", False)
        )


def test_random_search_is_seeded_per_repeat_and_log_uniform() -> None:
    one = _spec("random", num_samples=20, repeats=2).to_dict()
    one |= {"optimizers": ["sgd"], "seeds": [0], "warmup": {"kinds": ["none"]}}
    spec = StudySpec.parse(one)
    configs = _drain(FairSearch(spec, "a", {}))
    again = _drain(FairSearch(spec.model_copy(), "b", {}))  # another study, same seeds
    lrs = [(c["optimizer"], c["repeat"], c["sample"], c["lr"]) for c in configs]
    assert lrs == [(c["optimizer"], c["repeat"], c["sample"], c["lr"]) for c in again]
    repeat0 = [c["lr"] for c in configs if c["repeat"] == 0 and c["optimizer"] == "sgd"]
    repeat1 = [c["lr"] for c in configs if c["repeat"] == 1 and c["optimizer"] == "sgd"]
    assert repeat0 != repeat1  # each repeat its own sampler seed
    logs = [math.log10(lr) for lr in repeat0 + repeat1]
    below = sum(1 for x in logs if x < -2) / len(logs)  # half the log range: about half
    assert 0.25 < below < 0.75  # 40 draws: a coarse check


def test_the_sampler_is_told_the_mean_over_seeds_and_resumes_from_a_save(tmp_path: Path) -> None:
    import optuna

    spec = _spec("optuna", num_samples=2)
    searcher = FairSearch(spec, "told", {})
    first = [searcher.suggest(f"t{i}") for i in range(2)]  # radam's sample 0, both seeds
    searcher.on_trial_complete("t0", {"objective": 0.2})
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = FairSearch(spec, "told", {})
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t1", {"objective": 0.4})
    assert isinstance(first[0], dict) and first[0]["optimizer"] == "radam"
    study = optuna.load_study(study_name="told.radam.r0", storage=_url())
    assert [t.value for t in study.trials] == [pytest.approx(0.3)]
    rest = _drain(restored)
    assert len(rest) == spec.num_trials - 2


def _url() -> str:
    import os

    return os.environ["ROBUSTNESS_OPTUNA_STORAGE"]
