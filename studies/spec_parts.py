"""The parts a study spec (``studies.spec.StudySpec``) is made of: the names it accepts
(open names of optimizers, workloads and models; the built-in ones; warmup kinds), its warmup (``WarmupSpec``), its search
(``SearchSpec``) and what each trial may use (``Resources``). Pydantic only: validating a spec
never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from studies.errors import SpecError

# Open names: any workload (the spec's ``dataset``), model and optimizer installed where the study
# runs. A spec is well formed with any of them; the registry (``studies.workloads.registry``)
# checks them where a study enters (the service's POST, ``robustness run``), so validating a
# spec never imports torch or a plugin.
_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
OptimizerName = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME_PATTERN)]
DatasetName = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME_PATTERN)]
ModelName = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME_PATTERN)]
BuiltinOptimizer = Literal["radam", "adam", "adamw", "sgd"]
BuiltinDataset = Literal["cifar10", "fashion_mnist", "digits", "shakespeare"]
BuiltinModel = Literal["resnet20", "cnn", "mlp"]
WarmupKind = Literal["none", "linear", "untuned_linear", "untuned_exponential"]

# The built-in names as tuples. They are repeated here rather than imported from radam.factory,
# studies.workloads.builtin and studies.workloads.models so that the vocabulary never imports
# torch; a test checks that they agree.
OPTIMIZERS: tuple[str, ...] = get_args(BuiltinOptimizer)
DATASETS: tuple[str, ...] = get_args(BuiltinDataset)
MODELS: tuple[str, ...] = get_args(BuiltinModel)
WARMUPS: tuple[str, ...] = get_args(WarmupKind)

_NO_WARMUP: tuple[WarmupKind, ...] = ("none",)
_ADAM_FAMILY: tuple[str, ...] = ("adam", "adamw")  # warm up by default

PositiveLr = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def unique(values: list[Any], what: str) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat, got {values}")
    return values


class WarmupSpec(StrictModel):
    """Which warmups the grid crosses, and with which optimizers.

    ``kinds``: warmup schedules (``none``, ``linear`` from 1e-6 as in the paper, Ma & Yarats'
    ``untuned_linear`` / ``untuned_exponential``). ``steps``: the lengths, in iterations, of
    the ``linear`` kind (the untuned kinds derive theirs from beta2). ``optimizers``: the ones
    that get these warmups; the others take ``none``. A single ``kind`` is accepted on input
    as shorthand for ``kinds: [kind]``.
    """

    kinds: list[WarmupKind] = Field(default_factory=lambda: list(_NO_WARMUP), min_length=1)
    steps: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)  # iterations
    optimizers: list[OptimizerName] = Field(default_factory=lambda: list(_ADAM_FAMILY))

    @model_validator(mode="before")
    @classmethod
    def _kind_shorthand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "kind" in data:
            if "kinds" in data:
                raise ValueError("give either kind or kinds, not both")
            data = {k: v for k, v in data.items() if k != "kind"} | {"kinds": [data["kind"]]}
        return data

    @field_validator("kinds")
    @classmethod
    def _kinds_unique(cls, kinds: list[str]) -> list[str]:
        return unique(kinds, "warmup kinds")

    @field_validator("steps")
    @classmethod
    def _steps_unique(cls, steps: list[int]) -> list[int]:
        return unique(steps, "warmup steps")

    @field_validator("optimizers")
    @classmethod
    def _optimizers_unique(cls, names: list[str]) -> list[str]:
        return unique(names, "warmup optimizers")

    @model_validator(mode="after")
    def _lengths_match_kinds(self) -> Self:
        if "linear" in self.kinds and not self.steps:
            raise SpecError(
                "the linear warmup needs its lengths (iterations)", field="warmup.steps"
            )
        if self.steps and "linear" not in self.kinds:
            raise SpecError(
                f"{self.steps} given, but only the linear warmup takes a length "
                f"(kinds: {self.kinds})",
                field="warmup.steps",
            )
        return self

    def points(self) -> list[tuple[str, int]]:
        """(kind, warmup_steps) pairs, in order; 0 steps for the kinds without a length."""
        out: list[tuple[str, int]] = []
        for kind in self.kinds:
            if kind == "linear":
                out.extend(("linear", s) for s in self.steps)
            else:
                out.append((kind, 0))
        return out


SearchKind = Literal["grid", "optuna", "random"]
SAMPLED_KINDS: tuple[str, ...] = ("optuna", "random")


class SearchSpec(StrictModel):
    """How trials are chosen: ``grid`` (the full cross product, the default), ``optuna``
    (Optuna's TPE) or ``random`` (seeded random search).

    A sampled search (``optuna`` or ``random``) gives every optimizer a search of its own, so
    optimizers are compared at equal budgets (Sivaprasad et al. 2020): per optimizer and per
    repeat one sampler (its own state, seeded from ``(seed, repeat)``) over the same space, the log
    learning rate in ``lr_range`` (default: the spec's smallest to largest learning rate)
    and, for an optimizer that warms up linearly, the log warmup length in
    ``warmup_steps_range`` (default: the spec's shortest to longest); ``num_samples``
    samples each, each run once per seed. ``repeats`` whole searches, the unit a tuning
    comparison replicates. ``random`` draws log-uniformly (Optuna's ``RandomSampler``).
    """

    kind: SearchKind = "grid"
    num_samples: int = Field(default=20, ge=1)  # samples per optimizer and repeat, x seeds
    repeats: int = Field(default=1, ge=1, le=100)  # independent searches per optimizer
    seed: int = Field(default=0, ge=0)  # repeat r's samplers: seeded from (seed, r)
    lr_range: tuple[PositiveLr, PositiveLr] | None = None  # log-uniform bounds
    warmup_steps_range: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = (
        None  # iterations
    )
    metric: Literal["test_acc"] = "test_acc"  # maximised, at the trial's last epoch

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        if self.lr_range is not None and self.lr_range[0] >= self.lr_range[1]:
            raise ValueError(f"lr_range must be (low, high) with low < high, got {self.lr_range}")
        if self.warmup_steps_range is not None and (
            self.warmup_steps_range[0] > self.warmup_steps_range[1]
        ):
            raise ValueError(
                f"warmup_steps_range must be (low, high) with low <= high, "
                f"got {self.warmup_steps_range}"
            )
        return self


class Resources(StrictModel):
    """What one trial may use; ``gpu`` may be fractional to pack several trials per GPU."""

    cpu: float = Field(default=1.0, gt=0.0)  # CPU cores (torch threads = max(1, floor(cpu)))
    gpu: float = Field(default=0.0, ge=0.0)  # GPUs; 0.25 packs four trials on one GPU
