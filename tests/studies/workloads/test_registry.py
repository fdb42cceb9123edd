"""The registry of workloads and optimizers: built-ins through the same mechanism as plugins,
plugins through entry points, open names checked at the edge with the installed choices."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest
import torch

from studies.errors import PluginError, SpecError, UnknownNameError
from studies.metrics import ACCURACY
from studies.spec import StudySpec
from studies.workloads import optimizers, registry
from studies.workloads.interface import Workload


def _spec(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "t",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam"],
        "learning_rates": [0.01],
    }
    return StudySpec.parse(base | changes)


def test_validating_a_spec_and_listing_names_import_no_torch() -> None:
    code = (
        "import sys\n"
        "from studies.spec import StudySpec\n"
        "from studies.workloads import registry\n"
        "StudySpec.parse({'name': 'x', 'dataset': 'my_data', 'model': 'my_net',"
        " 'optimizers': ['nadam'], 'learning_rates': [0.1]})\n"
        "print(registry.workload_names())\n"
        "registry.check_workload('digits', 'mlp')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'cifar10', 'fashion_mnist', 'digits'" in out.stdout


def test_the_builtins_are_registered_workloads_measured_by_accuracy() -> None:
    for name in ("cifar10", "fashion_mnist", "digits"):
        workload = registry.get_workload(name)
        assert isinstance(workload, Workload)
        assert workload.metric == ACCURACY
        assert set(workload.models) == {"resnet20", "cnn", "mlp"}
        assert workload.packable
    assert registry.get_workload("digits").models[0] == "mlp"


def test_unknown_names_are_errors_that_list_what_is_installed() -> None:
    with pytest.raises(UnknownNameError) as caught:
        registry.check_spec(_spec(dataset="imagenet"))
    assert caught.value.field == "dataset"
    assert "imagenet" in str(caught.value) and "cifar10, fashion_mnist, digits" in str(caught.value)
    with pytest.raises(UnknownNameError) as caught:
        registry.check_spec(_spec(model="vit"))
    assert caught.value.field == "model" and "mlp, resnet20, cnn" in str(caught.value)
    with pytest.raises(UnknownNameError) as caught:
        registry.check_spec(_spec(optimizers=["radam", "lamb"]))
    assert caught.value.field == "optimizers"
    assert "nadam" in str(caught.value) and "torch_radam" in str(caught.value)


def test_admit_writes_the_workloads_metric_into_the_spec() -> None:
    spec = registry.admit(_spec())
    assert spec.metric == ACCURACY and spec.measured == ACCURACY
    again = StudySpec.parse(spec.to_json())
    assert again.metric == ACCURACY
    assert registry.admit(again) == again  # a recorded spec admits again unchanged


def test_a_hyperparameter_the_optimizer_does_not_take_is_an_error_naming_it() -> None:
    with pytest.raises(SpecError) as caught:
        registry.check_spec(_spec(optimizers=["nadam"], momentum=0.5))
    assert caught.value.field == "momentum" and "'nadam' takes no momentum" in str(caught.value)
    # defaults are not "set": they apply where the class takes them
    registry.check_spec(_spec(optimizers=["nadam", "rmsprop", "adagrad"]))
    registry.check_spec(_spec(optimizers=["rmsprop"], momentum=0.5))


def test_torch_optimizers_get_the_spec_hyperparameters_they_take() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    nadam = optimizers.make_optimizer("nadam", params, lr=0.01, weight_decay=0.1, betas=(0.8, 0.9))
    assert isinstance(nadam, torch.optim.NAdam)
    group = nadam.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.01, 0.1, (0.8, 0.9))
    rms = optimizers.make_optimizer("rmsprop", params, lr=0.01, momentum=0.5, eps=1e-6)
    assert isinstance(rms, torch.optim.RMSprop)
    assert (rms.param_groups[0]["momentum"], rms.param_groups[0]["eps"]) == (0.5, 1e-6)
    assert isinstance(optimizers.make_optimizer("torch_radam", params, lr=0.1), torch.optim.RAdam)
    from radam.optimizer import RAdam

    assert isinstance(optimizers.make_optimizer("radam", params, lr=0.1), RAdam)
    names = optimizers.optimizer_names()
    assert names[:4] == ("radam", "adam", "adamw", "sgd")
    assert {"nadam", "adamax", "rmsprop", "adagrad", "torch_radam"} <= set(names)
    assert "lbfgs" not in names


class _BrokenEntryPoint(metadata.EntryPoint):
    def load(self) -> Any:
        raise ImportError("No module named 'missing_dependency'")


class _Tiny(Workload):
    name = "tiny"
    models = ("linear",)

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def build_model(self, model: str, ds: Any) -> torch.nn.Module:
        return torch.nn.Linear(2, 2)


class _GoodEntryPoint(metadata.EntryPoint):
    def load(self) -> Any:
        return _Tiny


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.refresh()
    found = {
        "broken": _BrokenEntryPoint("broken", "broken_pkg:workload", registry.WORKLOAD_GROUP),
        "tiny": _GoodEntryPoint("tiny", "tiny_pkg:Tiny", registry.WORKLOAD_GROUP),
    }
    monkeypatch.setitem(registry._entry_points, "workload", found)
    monkeypatch.setitem(registry._entry_points, "optimizer", {})
    yield
    registry.refresh()


@pytest.mark.usefixtures("fake_plugins")
def test_plugins_register_and_a_broken_one_is_listed_with_its_error_not_raised() -> None:
    assert registry.workload_names()[-2:] == ("broken", "tiny")
    assert isinstance(registry.get_workload("tiny"), _Tiny)
    entries = {entry.name: (entry, w) for entry, w in registry.workload_entries()}
    broken, workload = entries["broken"]
    assert workload is None and broken.broken
    assert "missing_dependency" in (broken.error or "")
    with pytest.raises(PluginError) as caught:
        registry.check_spec(_spec(dataset="broken", model="x"))
    assert caught.value.field == "dataset" and "missing_dependency" in str(caught.value)
    with pytest.raises(UnknownNameError) as unknown:
        registry.check_spec(_spec(dataset="tiny", model="mlp"))
    assert "installed: linear" in str(unknown.value)
