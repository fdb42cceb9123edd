"""The workload interface: what a study trains and measures, for built-ins and plugins alike.

A workload is a dataset with its models, its loss and its metric. The built-in ones
(``cifar10``, ``fashion_mnist``, ``digits``; models ``resnet20``, ``cnn``, ``mlp``) are
``studies.workloads.builtin``'s; a plugin is a package that registers one in the entry-point
group ``robustness.workloads`` (``studies.workloads.registry`` finds both). The spec names a
workload as its ``dataset`` and one of the workload's ``models`` as its ``model``.

A subclass sets ``name``, ``models`` and ``metric`` and implements ``load`` and
``build_model``; ``loss`` (cross-entropy) and ``metric_sum`` / ``metric_value`` (accuracy)
default to classification's. docs/workloads.md has a complete example.

The trainer (``studies.training``) calls, per trial:

1. ``load(data_dir=, train_subset=, test_subset=, image_size=, device=, download=)`` once per
   process and spec: the whole dataset as tensors on ``device`` (a ``Dataset``);
2. ``build_model(model, ds)`` after seeding torch from the trial's seed;
3. ``loss(model(x), y)`` per training batch (a mean; the divergence check reads it);
4. after each epoch, over the test batches (in order, ``EVAL_BATCH_SIZE`` at a time):
   ``test_loss = sum of loss(out, y, reduction="sum") / n`` and
   ``metric_value(sum of metric_sum(out, y), n)`` with ``n = sum of count(y)`` (examples by
   default): the number recorded under ``metric.name``. A NaN there (or a non-finite test
   loss) records the trial as diverged; an exception fails the trial, with its traceback.

Packs (K grid points in one program, ``studies.training.pack``) need the classification
defaults of ``loss`` and ``metric_sum`` (``packable``); other workloads run one trial per
grid point, and the study's record says so.

Importing this module imports no torch (the service lists workloads without it).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from studies.metrics import ACCURACY, Metric

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from studies.workloads.dataset import Dataset

__all__ = ["ACCURACY", "DataSource", "DataStatus", "Metric", "Workload"]


@dataclass(frozen=True)
class DataStatus:
    """Where a workload's data is (``found``, ``where``), or how to get it (``hint``)."""

    found: bool
    where: str = ""  # a path or a description ("bundled with scikit-learn")
    hint: str = ""  # what to do when it is not found


class DataSource(ABC):
    """Where a workload's data comes from, for ``robustness data status | fetch``."""

    @abstractmethod
    def status(self, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
        """Look on disk only (fast: the service asks per request)."""

    def fetch(self, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
        """Make the data available (download, unpack) and say where it is; the default
        fetches nothing and reports the status."""
        return self.status(data_dir)


class BundledData(DataSource):
    """Data that ships inside a package (scikit-learn's datasets, a plugin's own files)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def status(self, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
        return DataStatus(True, self.where)


class Workload(ABC):
    """A dataset, the models that train on it, its loss and its metric.

    Class attributes (or instance attributes set in ``__init__``):

    - ``name``: what a spec's ``dataset`` says (lower case, ``[a-z0-9_]``);
    - ``models``: the model names a spec's ``model`` may say, the default first;
    - ``metric``: a ``studies.metrics.Metric`` (default ``ACCURACY``, test accuracy, higher
      is better, failed runs count 0);
    - ``images``: whether ``image_size`` (resize) applies;
    - ``source``: a ``DataSource`` for ``robustness data status | fetch`` (None: bundled);
    - ``description``: one line for ``robustness workloads`` and ``GET /workloads``.
    """

    name: str = ""
    models: tuple[str, ...] = ()
    metric: Metric = ACCURACY
    images: bool = False
    description: str = ""
    source: DataSource | None = None

    @abstractmethod
    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        train_subset: int | None = None,  # the first N training examples (None: all)
        test_subset: int | None = None,  # the first N test examples (None: all)
        image_size: int | None = None,  # pixels per side, where ``images``; None: as stored
        device: str | torch.device = "cpu",
        download: bool = False,  # fetch missing data first (``source.fetch``)
    ) -> Dataset:
        """The whole dataset as tensors on ``device``."""

    @abstractmethod
    def build_model(self, model: str, ds: Dataset) -> nn.Module:
        """The network ``model`` (one of ``models``) for ``ds``'s inputs and classes, freshly
        initialised (torch's generators are already seeded from the trial's seed)."""

    def loss(
        self, outputs: Tensor, targets: Tensor, *, reduction: Literal["mean", "sum"] = "mean"
    ) -> Tensor:
        """The training loss: cross-entropy of logits ``[B, C]`` against labels ``[B]``."""
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, reduction=reduction)

    def metric_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The metric's sum over one test batch (a 0-d tensor): correct predictions."""
        return (outputs.argmax(dim=1) == targets).sum()

    def count(self, targets: Tensor) -> int:
        """How many units a test batch's sums are over: its examples (override with the
        tokens, ``targets.numel()``, for a per-token loss and metric)."""
        return int(targets.shape[0])

    def metric_value(self, total: float, count: int) -> float:
        """The metric from ``metric_sum``'s total over the test set's ``count`` units (the
        sum of ``count`` over its batches): the mean. Override for a metric that is not a
        mean (a perplexity: ``math.exp(total / count)``)."""
        return total / count

    @property
    def packable(self) -> bool:
        """Whether packs may train it: the classification loss and metric, unchanged."""
        cls = type(self)
        return cls.loss is Workload.loss and cls.metric_sum is Workload.metric_sum

    def check(self) -> None:
        """Raise ``ValueError`` when the class is not a usable workload (called at
        registration, so a broken plugin is reported, not run)."""
        if (
            not self.name
            or not self.name.replace("_", "").isalnum()
            or self.name != self.name.lower()
        ):
            raise ValueError(f"a workload's name must be lower-case [a-z0-9_], got {self.name!r}")
        if not self.models:
            raise ValueError(f"workload {self.name!r} names no models")
        if not isinstance(self.metric, Metric):
            raise ValueError(f"workload {self.name!r}: metric must be a studies.metrics.Metric")
