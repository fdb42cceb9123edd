"""The study spec: what it accepts, what it refuses (naming the field), how big its grid is."""

from __future__ import annotations

import math
from typing import Any

import pytest

from studies.admission import DEFAULT_MAX_TRIALS, MAX_TRIALS_ENV, check_trials
from studies.errors import SpecError
from studies.spec import StudySpec, TrialConfig


def _spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "tiny",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "adamw", "sgd"],
        "learning_rates": [0.1, 0.01],
        "seeds": [0, 1],
        "epochs": 2,
    }
    return base | changes


def test_grid_is_the_full_cross_product_without_warmup() -> None:
    spec = StudySpec.parse(_spec())
    configs = spec.trial_configs()
    assert spec.num_trials == len(configs) == 3 * 2 * 2
    assert len({c.key for c in configs}) == len(configs)
    assert {c.warmup for c in configs} == {"none"}
    assert configs[0] == TrialConfig(optimizer="radam", lr=0.1, warmup="none", seed=0)


def test_warmup_lengths_cross_only_the_optimizers_that_warm_up() -> None:
    spec = StudySpec.parse(
        _spec(
            optimizers=["adamw", "radam"],
            warmup={"kind": "linear", "steps": [100, 200, 500]},
        )
    )
    configs = spec.trial_configs()
    adamw = [c for c in configs if c.optimizer == "adamw"]
    radam = [c for c in configs if c.optimizer == "radam"]
    assert len(adamw) == 2 * 3 * 2 and len(radam) == 2 * 2
    assert {(c.warmup, c.warmup_steps) for c in adamw} == {
        ("linear", 100),
        ("linear", 200),
        ("linear", 500),
    }
    assert {(c.warmup, c.warmup_steps) for c in radam} == {("none", 0)}
    assert spec.num_trials == len(configs) == 16


def test_varies_warmup_when_the_grid_has_more_than_one_warmup_setting() -> None:
    assert not StudySpec.parse(_spec()).varies_warmup
    one_length = {"kind": "linear", "steps": [100], "optimizers": ["adamw"]}
    assert not StudySpec.parse(_spec(optimizers=["adamw"], warmup=one_length)).varies_warmup
    # adamw warmed up beside radam without: two settings, a warmup figure's two rows
    assert StudySpec.parse(_spec(optimizers=["adamw", "radam"], warmup=one_length)).varies_warmup
    lengths = {"kind": "linear", "steps": [100, 200], "optimizers": ["adamw"]}
    assert StudySpec.parse(_spec(optimizers=["adamw"], warmup=lengths)).varies_warmup


def test_untuned_kinds_take_no_length_and_none_can_sit_beside_them() -> None:
    spec = StudySpec.parse(
        _spec(
            optimizers=["adamw"],
            seeds=[0],
            warmup={"kinds": ["none", "untuned_linear", "untuned_exponential"]},
        )
    )
    points = {(c.warmup, c.warmup_steps) for c in spec.trial_configs()}
    assert points == {("none", 0), ("untuned_linear", 0), ("untuned_exponential", 0)}


def test_learning_rates_per_optimizer() -> None:
    spec = StudySpec.parse(
        _spec(optimizers=["sgd", "adam"], learning_rates={"sgd": [0.1, 0.03], "adam": [1e-3]})
    )
    assert spec.num_trials == (2 + 1) * 2
    assert {c.lr for c in spec.trial_configs() if c.optimizer == "adam"} == {1e-3}


def test_trial_key_is_stable_and_readable() -> None:
    assert TrialConfig(optimizer="radam", lr=0.01, seed=0).key == "radam-lr0.01-none-s0"
    linear = TrialConfig(optimizer="adamw", lr=0.1, warmup="linear", warmup_steps=500, seed=2)
    assert linear.key == "adamw-lr0.1-linear500-s2"


def test_json_round_trip() -> None:
    spec = StudySpec.parse(_spec(warmup={"kind": "linear", "steps": [10]}))
    assert StudySpec.parse(spec.to_json()) == spec
    assert StudySpec.parse(spec.to_dict()) == spec


def test_a_sampled_search_counts_optimizers_repeats_samples_and_seeds() -> None:
    spec = StudySpec.parse(_spec(search={"kind": "optuna", "num_samples": 7}))
    assert spec.sampled and spec.search.repeats == 1
    assert spec.num_trials == len(spec.optimizers) * 7 * 2  # every optimizer the same budget
    random = StudySpec.parse(_spec(search={"kind": "random", "num_samples": 3, "repeats": 4}))
    assert random.num_trials == len(spec.optimizers) * 4 * 3 * 2
    assert spec.trial_configs() == []
    assert spec.lr_bounds() == (0.01, 0.1)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"learning_rates": [0.1, -0.01]}, "learning_rates.1", "greater than 0"),
        ({"learning_rates": [0.1, math.inf]}, "learning_rates.1", "finite"),
        ({"learning_rates": [0.1, math.nan]}, "learning_rates.1", "finite"),
        ({"learning_rates": []}, "learning_rates", "empty"),
        ({"learning_rates": {"radam": [0.1]}}, "learning_rates", "missing"),
        ({"optimizers": ["radam", "Lamb!"]}, "optimizers.1", "pattern"),
        ({"optimizers": ["radam", "radam"]}, "optimizers", "repeat"),
        ({"dataset": "Image Net"}, "dataset", "pattern"),
        ({"model": ""}, "model", "at least 1 character"),
        ({"warmup": {"kind": "linear"}}, "warmup.steps", "needs its lengths"),
        ({"warmup": {"kind": "untuned_linear", "steps": [10]}}, "warmup.steps", "only the linear"),
        ({"warmup": {"kind": "cosine"}}, "warmup.kinds.0", "'linear'"),
        (
            {"optimizers": ["sgd"], "warmup": {"kind": "linear", "steps": [5]}},
            "warmup.optimizers",
            "no trial would warm up",
        ),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"lr_milestones": [1, 5]}, "lr_milestones", "below epochs"),
        ({"betas": [0.9, 1.0]}, "betas", "[0, 1)"),
        ({"resources_per_trial": {"cpu": 0}}, "resources_per_trial.cpu", "greater than 0"),
        ({"search": {"kind": "bayes"}}, "search.kind", "'grid'"),
        ({"lr": 0.1}, "lr", "Extra inputs"),
    ],
)
def test_bad_specs_name_the_field_and_the_reason(
    changes: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(SpecError) as caught:
        StudySpec.parse(_spec(**changes))
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_the_trial_limit_is_admission_not_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    big = StudySpec.parse(_spec(seeds=list(range(DEFAULT_MAX_TRIALS))))  # a valid spec
    with pytest.raises(SpecError, match="more than the limit") as caught:
        check_trials(big)
    assert caught.value.field == "num_trials"
    spec = StudySpec.parse(_spec())  # 12 trials
    with pytest.raises(SpecError, match="limit of 10"):
        check_trials(spec, limit=10)
    monkeypatch.setenv(MAX_TRIALS_ENV, "11")
    with pytest.raises(SpecError, match="limit of 11"):
        check_trials(spec)
    assert check_trials(spec, limit=12) is spec  # the caller's limit wins
    monkeypatch.setenv(MAX_TRIALS_ENV, "1")
    assert StudySpec.parse(_spec()).num_trials == 12  # parsing applies no limit


def test_a_spec_is_frozen() -> None:
    spec = StudySpec.parse(_spec())
    with pytest.raises(ValueError):
        spec.epochs = 3  # type: ignore[misc]


def test_spec_names_agree_with_the_modules_that_implement_them() -> None:
    # spec_parts.py repeats the names so that validating a spec never imports torch
    from radam.factory import OPTIMIZERS
    from radam.schedules import WARMUPS
    from studies import spec_parts as spec
    from studies.workloads.models import MODELS
    from studies.workloads.sources import DATASETS

    assert spec.OPTIMIZERS == OPTIMIZERS
    assert spec.WARMUPS == WARMUPS
    assert spec.DATASETS == DATASETS
    assert spec.MODELS == MODELS
    from studies.workloads.builtin import BUILTIN_MODELS, BUILTIN_WORKLOADS
    from studies.workloads.optimizers import PROJECT_OPTIMIZERS

    assert tuple(w.name for w in BUILTIN_WORKLOADS) == DATASETS
    assert BUILTIN_MODELS == MODELS
    assert PROJECT_OPTIMIZERS == OPTIMIZERS


def test_pack_size_is_a_positive_integer_or_auto_and_grid_only() -> None:
    base = {
        "name": "packs",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["sgd"],
        "learning_rates": [0.1],
    }
    assert StudySpec.parse(base).pack_size == 1
    assert StudySpec.parse(base | {"pack_size": 8}).pack_size == 8
    assert StudySpec.parse(base | {"pack_size": "auto"}).pack_size == "auto"
    for bad in (0, -2, "big", True, 2.5):
        with pytest.raises(SpecError) as info:
            StudySpec.parse(base | {"pack_size": bad})
        assert info.value.field == "pack_size"
    optuna = base | {"search": {"kind": "optuna"}}
    assert StudySpec.parse(optuna | {"pack_size": "auto"}).pack_size == "auto"  # runs unpacked
    with pytest.raises(SpecError, match="grid search only") as info:
        StudySpec.parse(optuna | {"pack_size": 4})
    assert info.value.field == "pack_size"


def test_image_size_must_suit_the_cnn_and_is_a_trial_param() -> None:
    from studies.spec import trial_params

    with pytest.raises(SpecError) as refused:
        StudySpec.parse(_spec(model="cnn", image_size=14))
    assert refused.value.field == "image_size"
    spec = StudySpec.parse(_spec(model="cnn", image_size=16))
    assert trial_params(spec, spec.trial_configs()[0])["image_size"] == 16
