"""What goes in and out over HTTP, by direction: ``*Create`` in, ``*Public`` out.

A POST body is either a full study spec (``studies.spec.StudySpec``, unknown keys refused) or
``StudyCreate`` (a preset's name and dotted overrides). Timestamps are UTC ISO 8601; accuracies
are fractions in [0, 1] as in the records (the summary's are percent, and say so).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studies.results import StudyStatus, TrialStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyCreate(_In):
    """A study from a preset: ``{"preset": "figure6-quick", "overrides": {"epochs": 1}}``."""

    preset: str = Field(min_length=1, max_length=100)
    overrides: dict[str, Any] = Field(default_factory=dict)  # dotted keys of the spec


class FigureName(StrEnum):
    figure6 = "figure6"
    lr_sensitivity = "lr_sensitivity"
    warmup = "warmup"
    expected_max = "expected_max"
    tuning_curve = "tuning_curve"  # a sampled study's (search.kind optuna or random)
    lr_samples = "lr_samples"


class FigureFormat(StrEnum):
    png = "png"
    svg = "svg"


class TrialsFormat(StrEnum):
    json = "json"
    csv = "csv"


class ErrorPublic(BaseModel):
    """Every 4xx/5xx body: a message, and the offending field when there is one."""

    detail: str
    field: str | None = None


class Links(BaseModel):
    self: str
    summary: str
    trials: str
    figures: dict[str, str]
    cancel: str
    mlflow_run: str | None = None  # the study's parent run in the MLflow UI
    # the study's trial runs in the MLflow UI: compared in charts (its axes against its metric
    # first), and as a table sorted by the metric (studies.tracking.links)
    mlflow_compare: str | None = None
    mlflow_trials: str | None = None
    ray_job: str | None = None  # the study's Ray job (dashboard)


class Progress(BaseModel):
    total: int
    done: int  # finished + diverged + failed
    finished: int
    running: int
    failed: int
    diverged: int
    pending: int


class BestPublic(BaseModel):
    """The best trial so far, by best test accuracy (fraction)."""

    trial_id: str
    optimizer: str
    lr: float
    warmup: str
    warmup_steps: int
    seed: int
    best_acc: float
    epochs_done: int


class StudyBrief(BaseModel):
    id: str
    name: str
    status: StudyStatus
    num_trials: int
    created_at: datetime
    updated_at: datetime | None = None
    error: str | None = None
    # times its driver died and the reconciler resubmitted it (at most MAX_RESTARTS)
    restarts: int = 0
    links: Links


class StudyPublic(StudyBrief):
    spec: dict[str, Any]
    progress: Progress
    best: BestPublic | None = None
    eta_seconds: float | None = None  # estimate of the time left; None when unknown
    replayed: bool = False  # True when an Idempotency-Key returned an existing study


class StudyList(BaseModel):
    items: list[StudyBrief]
    limit: int
    offset: int
    status: StudyStatus | None = None


class TrialPublic(BaseModel):
    trial_id: str
    optimizer: str
    lr: float
    warmup: str
    warmup_steps: int
    seed: int
    status: TrialStatus
    epochs_done: int
    final_acc: float | None = None
    best_acc: float | None = None
    train_seconds: float | None = None
    node: str | None = None
    run_id: str | None = None
    repeat: int | None = None  # a sampled study's repeat and sample index; None in a grid
    sample: int | None = None
    history: dict[str, list[float]] = Field(default_factory=dict)


class PresetPublic(BaseModel):
    name: str
    num_trials: int
    spec: dict[str, Any]


class MetricPublic(BaseModel):
    name: str
    label: str
    unit: str
    direction: Literal["higher", "lower"]
    failed_value: float
    display_scale: float
    display_unit: str | None
    threshold: float


class DataPublic(BaseModel):
    found: bool
    where: str
    hint: str


class WorkloadPublic(BaseModel):
    """A workload this deployment can run (``dataset`` in a spec), or a broken plugin."""

    name: str
    plugin: str = Field(description="'builtin', or the distribution that registers it")
    entry_point: str
    error: str | None = Field(description="why the plugin is broken; None when it works")
    description: str
    models: list[str] = Field(description="the spec's model, the default first")
    metric: MetricPublic | None
    images: bool = Field(description="whether image_size applies")
    packable: bool = Field(description="whether packs (pack_size > 1) train it")
    data: DataPublic | None


class OptimizerPublic(BaseModel):
    """An optimizer a spec may name."""

    name: str
    source: str = Field(description="'builtin', 'torch.optim', or the plugin's distribution")
    packable: bool
    parameters: list[str] = Field(description="the spec hyperparameters it takes")
    error: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" or "unavailable"
    ray: str  # "ok" or the reason
    mlflow: str
    ray_address: str | None = None
    mlflow_ui: str | None = None
    mlflow_ui_state: str | None = None  # the embedded UI: "ok", "starting" or why not
