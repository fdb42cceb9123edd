"""What a study's summary is: ``StudySummary`` (per cell, per optimizer, the verdicts, the
warmup tables), JSON round-trippable: ``summary.json`` on the parent run, the service's
``/summary`` body, and what the tables, the figures and the record page read. Computed from
trial records by ``summarize.summarize``, whose docstring gives the conventions (accuracies
in percent, which trials count, the test)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from studies.analysis.comparisons import Comparison
from studies.analysis.labels import warmup_label
from studies.analysis.sampled import SampledSummary
from studies.analysis.verdict import ALPHA, METHOD
from studies.metrics import ACCURACY, Metric

__all__ = [
    "BudgetCurve",
    "CellSummary",
    "Comparison",
    "OptimizerSummary",
    "SampledSummary",
    "StudySummary",
    "WarmupTable",
]


class CellSummary(BaseModel):
    """One grid cell: every seed of one (optimizer, lr, warmup, warmup_steps)."""

    optimizer: str
    lr: float
    warmup: str
    warmup_steps: int
    seeds: list[int] = Field(description="seeds whose accuracy counts (finished or diverged)")
    n_seeds: int
    n_diverged: int
    n_failed: int
    n_pending: int = Field(description="trials still running or not started")
    final_acc_mean_pct: float | None
    final_acc_std_pct: float | None = Field(description="sample std over seeds; None below 2")
    best_acc_mean_pct: float | None
    best_acc_std_pct: float | None
    curve_mean_pct: list[float | None] = Field(description="test accuracy after epoch i+1")
    curve_std_pct: list[float | None]

    @property
    def warmup_label(self) -> str:
        return warmup_label(self.warmup, self.warmup_steps)


class BudgetCurve(BaseModel):
    """Expected best accuracy at a budget of k = 1..N configurations of one warmup setting."""

    warmup: str
    warmup_steps: int
    label: str
    expected_max_pct: list[float] = Field(description="k = 1..N, percent")


class OptimizerSummary(BaseModel):
    """One optimizer over its grid (the cells with at least one counted seed)."""

    optimizer: str
    label: str
    n_cells: int
    best_lr: float | None
    best_warmup: str | None
    best_warmup_steps: int | None
    best_acc_pct: float | None
    worst_acc_pct: float | None
    spread_pct: float | None = Field(description="best - worst, points")
    mean_regret_pct: float | None = Field(description="mean over the grid of best - accuracy")
    share_within_1pt: float | None = Field(description="fraction of the grid within 1 point")
    expected_max_pct: list[float] = Field(
        default_factory=list,
        description="expected best accuracy of k = 1..N configurations drawn at random without "
        "replacement from the grid (Dodge et al. 2019, unbiased form)",
    )
    expected_max_by_warmup: list[BudgetCurve] = Field(
        default_factory=list, description="the same per warmup setting (warmup studies only)"
    )


class WarmupTable(BaseModel):
    """Final accuracy (mean over seeds, percent) of one optimizer over warmup x lr."""

    optimizer: str
    lrs: list[float]
    warmups: list[str]
    warmup_steps: list[int]
    labels: list[str]
    acc_pct: list[list[float | None]] = Field(description="rows: warmups, columns: lrs")


class StudySummary(BaseModel):
    """Everything the report, the service and the figures need, JSON round-trippable."""

    study_id: str = ""
    name: str = ""
    status: str | None = None
    trials_done: int = Field(description="trials in a terminal state")
    trials_total: int
    trials_counted: int = Field(description="finished or diverged: their accuracy counts")
    trials_failed: int
    partial: bool
    epochs: int
    varies_warmup: bool
    accuracy_unit: Literal["percent"] = "percent"
    test_method: str = METHOD
    test_alpha: float = ALPHA
    test_draws: int = Field(description="random relabellings when there are too many to list")
    test_seed: int
    cells: list[CellSummary]
    optimizers: list[OptimizerSummary]
    comparisons: list[Comparison]
    verdict: str
    warmup_tables: list[WarmupTable]
    # What the numbers are of: every ``*_pct`` / ``acc`` field holds this metric in its display
    # units (accuracy: percent, the fields' historical names), "best" in its direction.
    metric: Metric = ACCURACY
    search: str = Field(default="grid", description="grid, optuna or random")
    sampled: SampledSummary | None = Field(
        default=None,
        description="a sampled study's searches per optimizer (studies.analysis.sampled); its "
        "verdict is the study's, and the grid's comparisons are left empty",
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudySummary:
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> StudySummary:
        return cls.model_validate_json(text)

    @property
    def lrs(self) -> list[float]:
        return sorted({cell.lr for cell in self.cells})

    def cells_of(self, optimizer: str) -> list[CellSummary]:
        return [cell for cell in self.cells if cell.optimizer == optimizer]
