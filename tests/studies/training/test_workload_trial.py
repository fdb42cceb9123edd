"""A trial on a plugin's workload: its loss, its metric (here lower is better) recorded under
the metric's name, a NaN metric recorded as diverged, a model that raises failing the trial
with its error, and a torch optimizer beside the project's."""

from __future__ import annotations

import math
from collections.abc import Iterator
from importlib import metadata
from typing import Any, Literal

import pytest
import torch
from torch import Tensor, nn

from studies.metrics import Metric
from studies.spec import StudySpec, TrialConfig
from studies.training.trial import run_trial
from studies.workloads import registry
from studies.workloads.dataset import Dataset
from studies.workloads.interface import Workload

MSE = Metric(
    name="test_mse", label="test MSE", unit="squared units", direction="lower", failed_value=10.0
)


class Regression(Workload):
    """y = x @ w + noise, 4 features; MSE loss and metric (lower is better)."""

    name = "toy_regression"
    models = ("linear", "raises")
    metric = MSE
    nan_metric = False

    def load(
        self,
        *,
        train_subset: int | None = None,
        test_subset: int | None = None,
        device: str | torch.device = "cpu",
        **_: Any,
    ) -> Dataset:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(300, 4, generator=gen)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(300, generator=gen)
        return Dataset(
            name=self.name,
            train_x=x[:200][:train_subset],
            train_y=y[:200][:train_subset],
            test_x=x[200:][:test_subset],
            test_y=y[200:][:test_subset],
        )

    def build_model(self, model: str, ds: Dataset) -> nn.Module:
        if model == "raises":
            raise RuntimeError("this model cannot be built")
        return nn.Linear(ds.input_shape[0], 1)

    def loss(
        self, outputs: Tensor, targets: Tensor, *, reduction: Literal["mean", "sum"] = "mean"
    ) -> Tensor:
        return nn.functional.mse_loss(outputs.squeeze(-1), targets, reduction=reduction)

    def metric_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.loss(outputs, targets, reduction="sum")

    def metric_value(self, total: float, count: int) -> float:
        return math.nan if self.nan_metric else total / count


class _EntryPoint(metadata.EntryPoint):
    def load(self) -> Any:
        return WORKLOAD


WORKLOAD = Regression()


@pytest.fixture(autouse=True)
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    registry.refresh()
    ep = _EntryPoint("toy_regression", "toy:WORKLOAD", registry.WORKLOAD_GROUP)
    monkeypatch.setitem(registry._entry_points, "workload", {"toy_regression": ep})
    WORKLOAD.nan_metric = False
    yield
    registry.refresh()


def _spec(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "toy",
        "dataset": "toy_regression",
        "model": "linear",
        "optimizers": ["nadam"],
        "learning_rates": [0.05],
        "epochs": 3,
        "batch_size": 20,
    }
    return registry.admit(StudySpec.parse(base | changes))


def test_a_plugin_workload_trains_and_records_its_own_metric() -> None:
    spec = _spec()
    assert spec.metric == MSE and not WORKLOAD.packable
    history = run_trial(spec, TrialConfig(optimizer="nadam", lr=0.05, seed=0), threads=1)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    mses = [row["test_mse"] for row in history]
    assert "test_acc" not in history[0]
    assert mses[-1] < mses[0] / 2  # it learns the linear map
    assert history[-1]["test_loss"] == pytest.approx(mses[-1])
    assert history[-1]["objective"] == -mses[-1]  # searches maximise: lower is better
    assert not any(row["diverged"] for row in history)


def test_a_nan_metric_is_recorded_as_diverged_not_crashed() -> None:
    WORKLOAD.nan_metric = True
    history = run_trial(_spec(), TrialConfig(optimizer="rmsprop", lr=0.01, seed=0), threads=1)
    assert len(history) == 1 and history[0]["diverged"] is True
    assert math.isnan(history[0]["test_mse"])
    assert history[0]["objective"] == -MSE.failed_value


def test_a_model_that_raises_fails_the_trial_with_its_error() -> None:
    with pytest.raises(RuntimeError, match="cannot be built"):
        run_trial(_spec(model="raises"), TrialConfig(optimizer="nadam", lr=0.05, seed=0), threads=1)


def test_the_spec_optimizer_hyperparameters_reach_a_torch_optimizer() -> None:
    spec = _spec(optimizers=["adamax"], betas=(0.8, 0.95), weight_decay=0.01)
    from studies.training.trial_state import build_state

    ds = WORKLOAD.load()
    state = build_state(
        spec, TrialConfig(optimizer="adamax", lr=0.05, seed=0), ds, device=torch.device("cpu")
    )
    assert isinstance(state.optimizer, torch.optim.Adamax)
    group = state.optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.95) and group["weight_decay"] == 0.01


def test_a_warmup_applies_to_a_torch_optimizer() -> None:
    spec = _spec(
        optimizers=["nadam"],
        epochs=1,
        warmup={"kinds": ["linear"], "steps": [100], "optimizers": ["nadam"]},
    )
    (config,) = spec.trial_configs()
    assert (config.warmup, config.warmup_steps) == ("linear", 100)
    (row,) = run_trial(spec, config, threads=1)
    # 10 iterations of a 100-iteration linear warmup from 1e-6 to 0.05
    assert row["lr"] == pytest.approx(1e-6 + (0.05 - 1e-6) * 9 / 100, rel=0.15)
