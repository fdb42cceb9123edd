"""The study spec: the single description of a study, JSON in and out.

A ``StudySpec`` names a dataset and a model, the optimizers, their learning rates, the warmup,
the seeds and the training schedule, how to search (a full grid, or per optimizer Optuna's TPE
or random search), and what each
trial may use. ``StudySpec.trial_configs()`` expands a grid into ``TrialConfig`` points; the
runner turns them into Ray Tune trials and ``TrialConfig.key`` names each one stably.

Warmup semantics (decided here, documented in ``spec_parts.WarmupSpec``): the warmup kinds (and, for
``linear``, the lengths) are crossed only with the optimizers listed in ``warmup.optimizers``
(default: the Adam family, ``adam`` and ``adamw``); every other optimizer (RAdam, SGD) runs once
per learning rate and seed with no warmup. Figure 7 is thus ``optimizers=[adamw, radam]``,
``warmup={kinds: [linear], steps: [100, 200, 500, 1000]}``.

Validation names the field and the reason. ``StudySpec.parse(...)`` turns pydantic's error into
a ``SpecError`` whose ``field`` is the dotted path of the first offending field. How many trials
a deployment accepts is not the spec's business: ``studies.admission.check_trials``, called
where a study enters (the service, the CLI). A spec is parsed once per process and handed on
as a ``StudySpec``; a process that receives it as JSON uses ``StudySpec.from_json_cached``.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from studies.errors import SpecError
from studies.metrics import ACCURACY, Metric
from studies.spec_parts import (
    DATASETS,
    DatasetName,
    ModelName,
    OptimizerName,
    PositiveLr,
    Resources,
    SearchSpec,
    StrictModel,
    WarmupKind,
    WarmupSpec,
    unique,
)


class TrialConfig(StrictModel):
    """One point of the grid. ``key`` is stable: ``radam-lr0.01-none-s0``,
    ``adamw-lr0.1-linear500-s2``."""

    optimizer: OptimizerName
    lr: PositiveLr
    warmup: WarmupKind = "none"
    warmup_steps: int = Field(default=0, ge=0)  # iterations; 0 unless warmup is linear
    seed: int = Field(default=0, ge=0)
    # a sampled search's point: which repeat of the search, which sample of it (from 0)
    repeat: int | None = Field(default=None, ge=0)
    sample: int | None = Field(default=None, ge=0)

    @property
    def key(self) -> str:
        warmup = f"linear{self.warmup_steps}" if self.warmup == "linear" else self.warmup
        key = f"{self.optimizer}-lr{self.lr:g}-{warmup}-s{self.seed}"
        if self.sample is not None:
            key += f"-r{self.repeat or 0}n{self.sample}"
        return key


class StudySpec(StrictModel):
    """A study: optimizers x learning rates x warmups x seeds on one dataset and model."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    dataset: DatasetName
    model: ModelName
    optimizers: list[OptimizerName] = Field(min_length=1)
    # one list for every optimizer, or one per optimizer (a key for each, no others)
    learning_rates: list[PositiveLr] | dict[OptimizerName, list[PositiveLr]]
    warmup: WarmupSpec = Field(default_factory=WarmupSpec)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)

    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=128, ge=1)  # examples per iteration
    lr_milestones: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)  # epochs
    lr_gamma: float = Field(default=0.1, gt=0.0, le=1.0)  # lr factor at each milestone
    weight_decay: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam family
    eps: float = Field(default=1e-8, gt=0.0, allow_inf_nan=False)  # Adam family
    augment: bool = False  # random crop (pad 4) + horizontal flip of training images
    train_subset: int | None = Field(default=None, ge=1)  # first N training examples
    test_subset: int | None = Field(default=None, ge=1)  # first N test examples (quick studies)
    # pixels per side the images are resized to when loaded (antialiased bilinear, once per
    # process; a quick study's way to cut compute); None: the dataset's own size
    image_size: int | None = Field(default=None, ge=4, le=512)
    # A trial stops, recorded as diverged, when a batch's loss is non-finite or above this
    # (nats; cross-entropy starts near ln(10) = 2.3). None: only a non-finite loss stops it.
    divergence_loss: float | None = Field(default=1e4, gt=0.0)

    # What the study measures: the workload's metric, written where the study enters (the
    # registry's check_spec) so that its records and summaries say what they hold without
    # importing the workload. None (a study recorded before workloads were open): accuracy.
    metric: Metric | None = None

    search: SearchSpec = Field(default_factory=SearchSpec)
    resources_per_trial: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(default=None, ge=1)  # None: as resources allow
    max_failures: int = Field(default=1, ge=0)  # retries of a crashed trial (not a diverged one)
    # Grid points trained as one program in one Tune trial (studies.training.pack): 1, one trial per
    # point; "auto", as many as help (the runner decides from the cluster). Grid search only.
    pack_size: int | Literal["auto"] = 1

    @field_validator("optimizers")
    @classmethod
    def _optimizersunique(cls, names: list[str]) -> list[str]:
        return unique(names, "optimizers")

    @field_validator("seeds")
    @classmethod
    def _seedsunique(cls, seeds: list[int]) -> list[int]:
        return unique(seeds, "seeds")

    @field_validator("lr_milestones")
    @classmethod
    def _milestones_increasing(cls, milestones: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(milestones)):
            raise ValueError(f"lr_milestones must increase, got {milestones}")
        return milestones

    @field_validator("pack_size", mode="before")
    @classmethod
    def _pack_size_valid(cls, value: Any) -> Any:
        # one message for both arms of the union (pydantic would list an error per arm)
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            return value
        raise ValueError(f"must be an integer >= 1 or 'auto', got {value!r}")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        for beta in betas:
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"each beta must be in [0, 1), got {betas}")
        return betas

    @field_validator("learning_rates")
    @classmethod
    def _lrs_nonemptyunique(
        cls, lrs: list[float] | dict[str, list[float]]
    ) -> list[float] | dict[str, list[float]]:
        lists = lrs.values() if isinstance(lrs, dict) else [lrs]
        for values in lists:
            if not values:
                raise ValueError("a learning-rate list must not be empty")
            unique(values, "learning rates")
        return lrs

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if isinstance(self.learning_rates, dict):
            keys, wanted = set(self.learning_rates), set(self.optimizers)
            if keys != wanted:
                raise SpecError(
                    "a mapping needs exactly one list per optimizer; "
                    f"missing {sorted(wanted - keys)}, extra {sorted(keys - wanted)}",
                    field="learning_rates",
                )
        if self.warmup.kinds != ["none"] and not set(self.warmup.optimizers) & set(self.optimizers):
            raise SpecError(
                f"{self.warmup.optimizers} names none of the study's optimizers "
                f"{self.optimizers}, so no trial would warm up",
                field="warmup.optimizers",
            )
        if any(m >= self.epochs for m in self.lr_milestones):
            raise SpecError(
                f"{self.lr_milestones} must be epoch indices below epochs ({self.epochs})",
                field="lr_milestones",
            )
        if (
            self.model == "cnn"
            and self.dataset in DATASETS
            and self.image_size is not None
            and self.image_size % 4
        ):
            raise SpecError(
                f"the cnn pools twice by 2, so it needs an image size divisible by 4, "
                f"got {self.image_size}",
                field="image_size",
            )
        if self.search.kind != "grid" and isinstance(self.pack_size, int) and self.pack_size > 1:
            raise SpecError(
                f"packs of {self.pack_size} apply to grid search only; with search "
                f"{self.search.kind!r} every trial runs on its own (pack_size: 1 or auto)",
                field="pack_size",
            )
        return self

    # ---- reading the spec -------------------------------------------------------------------

    @property
    def measured(self) -> Metric:
        """The metric the study records and summarises (accuracy unless its workload says)."""
        return self.metric if self.metric is not None else ACCURACY

    def with_metric(self, metric: Metric) -> StudySpec:
        """This spec with its workload's ``metric`` written in (where the study enters); a
        spec that already names another one is an error."""
        if self.metric is not None and self.metric != metric:
            raise SpecError(
                f"the workload {self.dataset!r} measures {metric.name!r} "
                f"({metric.direction} is better), not {self.metric.name!r}",
                field="metric",
            )
        return self.model_copy(update={"metric": metric})

    def lrs_for(self, optimizer: str) -> list[float]:
        if isinstance(self.learning_rates, dict):
            return list(self.learning_rates[optimizer])
        return list(self.learning_rates)

    def warmups_for(self, optimizer: str) -> list[tuple[str, int]]:
        """(kind, warmup_steps) points this optimizer is crossed with."""
        if optimizer in self.warmup.optimizers:
            return self.warmup.points()
        return [("none", 0)]

    def trial_configs(self) -> list[TrialConfig]:
        """The grid, in the order optimizer, lr, warmup, seed.

        For a sampled search there is no fixed grid (the samplers pick the points), so
        this returns an empty list; ``num_trials`` still counts the trials the study will run.
        """
        if self.search.kind != "grid":
            return []
        return [
            TrialConfig(optimizer=opt, lr=lr, warmup=kind, warmup_steps=steps, seed=seed)  # type: ignore[arg-type]
            for opt in self.optimizers
            for lr in self.lrs_for(opt)
            for kind, steps in self.warmups_for(opt)
            for seed in self.seeds
        ]

    @property
    def sampled(self) -> bool:
        """A sampled search (``optuna`` or ``random``), not a grid."""
        return self.search.kind != "grid"

    @property
    def varies_warmup(self) -> bool:
        """More than one warmup setting in the grid (optimizers without a warmup count as
        ``none``): the study has a warmup figure and warmup tables."""
        return len({point for opt in self.optimizers for point in self.warmups_for(opt)}) > 1

    @property
    def num_trials(self) -> int:
        if self.sampled:  # every optimizer the same budget
            search = self.search
            return len(self.optimizers) * search.repeats * search.num_samples * len(self.seeds)
        return sum(
            len(self.lrs_for(opt)) * len(self.warmups_for(opt)) * len(self.seeds)
            for opt in self.optimizers
        )

    def lr_bounds(self) -> tuple[float, float]:
        """(low, high) of the log-lr search: ``search.lr_range`` or the spec's learning rates."""
        if self.search.lr_range is not None:
            return self.search.lr_range
        all_lrs = [lr for opt in self.optimizers for lr in self.lrs_for(opt)]
        return min(all_lrs), max(all_lrs)

    # ---- JSON in and out --------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Self:
        """Validate a dict or a JSON document; raise ``SpecError`` naming the first bad field.
        The trial limit is admission's (``studies.admission.check_trials``, where a study
        enters: the service and the CLI), not the spec's."""
        try:
            if isinstance(data, str | bytes):
                spec = cls.model_validate_json(data)
            else:
                spec = cls.model_validate(dict(data))
        except ValidationError as exc:
            raise spec_error(exc) from None
        return spec

    @classmethod
    def from_json_cached(cls, data: str | Mapping[str, Any]) -> StudySpec:
        """The spec of a JSON text (or its dict), parsed once per process: Tune's workers and
        callbacks receive the study's spec as JSON, once per trial."""
        text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
        return _parse_cached(text)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())  # type: ignore[no-any-return]


def trial_params(spec: StudySpec, cfg: TrialConfig) -> dict[str, Any]:
    """The params of a trial's nested MLflow run: its grid point, then the settings it trained
    with (the runner's and ``robustness import``'s, so both record a trial alike)."""
    return {
        **cfg.model_dump(exclude_none=True),  # repeat and sample only for a sampled search
        "dataset": spec.dataset,
        "model": spec.model,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "weight_decay": spec.weight_decay,
        "momentum": spec.momentum,
        "betas": list(spec.betas),
        "eps": spec.eps,
        "lr_milestones": list(spec.lr_milestones),
        "lr_gamma": spec.lr_gamma,
        "train_subset": spec.train_subset,
        "image_size": spec.image_size,
        "augment": spec.augment,
    }


def spec_error(exc: ValidationError) -> SpecError:
    """A ``SpecError`` from pydantic's error: ``field`` is the first error's dotted path, the
    message lists every error as ``path: reason``."""
    errors = exc.errors(include_url=False)
    # A value that fails both arms of a union (learning_rates: list or mapping) also fails
    # the arm of the other shape; that "should be a valid dictionary" line is noise.
    shape_only = {"list_type", "dict_type"}
    if any(err["type"] not in shape_only for err in errors):
        errors = [err for err in errors if err["type"] not in shape_only]
    reasons: list[str] = []
    fields: list[str] = []
    for err in errors:
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError) and cause.field:
            # raised by a model-level check that knows its field; its message carries it
            fields.append(cause.field)
            reasons.append(str(cause))
            continue
        path = _dotted(err["loc"])
        fields.append(path)
        reasons.append(f"{path}: {str(err['msg']).removeprefix('Value error, ')}")
    error = SpecError("invalid study spec: " + "; ".join(reasons))
    error.field = fields[0] if fields else None
    return error


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``("learning_rates", "list[constrained-float]", 1)`` -> ``"learning_rates.1"``: pydantic
    puts the union arm's type in the path; users wrote no such key."""
    parts = [str(p) for p in loc if isinstance(p, int) or p.isidentifier() or "[" not in p]
    return ".".join(parts) or "spec"


@functools.lru_cache(maxsize=16)
def _parse_cached(text: str) -> StudySpec:
    return StudySpec.parse(text)
