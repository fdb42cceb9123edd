"""The built-in workloads, registered like plugins: ``cifar10``, ``fashion_mnist`` and
``digits``, image classification with the models ``resnet20``, ``cnn`` and ``mlp`` (any model
on any of them, as always), measured by test accuracy; and ``shakespeare``, character-level
language modelling measured by validation loss (``studies.workloads.text``). Their data comes through
``studies.workloads.sources`` and ``loading``; torch is imported when one is loaded or built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from studies.workloads.interface import DataSource, DataStatus, Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

    from studies.workloads.dataset import Dataset

BUILTIN_MODELS: tuple[str, ...] = ("resnet20", "cnn", "mlp")


class SourcesData(DataSource):
    """A built-in dataset's place on disk, as ``studies.workloads.sources`` resolves it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def status(self, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
        from studies.workloads import sources

        where = sources.locate(self.name, data_dir=data_dir)
        return DataStatus(where.found, str(where.path or ""), where.hint)

    def fetch(self, data_dir: str | os.PathLike[str] | None = None) -> DataStatus:
        from studies.workloads import sources

        where = sources.fetch(self.name, data_dir=data_dir)
        return DataStatus(where.found, str(where.path or ""), where.hint)


class ImageClassification(Workload):
    """One of the project's image datasets with the project's three networks."""

    models: tuple[str, ...] = BUILTIN_MODELS
    images: bool = True

    def __init__(self, name: str, default_model: str, description: str) -> None:
        self.name = name
        self.models = (default_model, *(m for m in BUILTIN_MODELS if m != default_model))
        self.description = description
        self.source = SourcesData(name)

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        train_subset: int | None = None,
        test_subset: int | None = None,
        image_size: int | None = None,
        device: str | torch.device = "cpu",
        download: bool = False,
    ) -> Dataset:
        from studies.workloads.loading import load_dataset

        ds = load_dataset(
            self.name,
            data_dir=data_dir,
            train_subset=train_subset,
            image_size=image_size,
            device=device,
            download=download,
        )
        return ds.first_test(test_subset)

    def build_model(self, model: str, ds: Dataset) -> nn.Module:
        from studies.workloads.models import build_model

        return build_model(
            model, num_classes=ds.num_classes, in_channels=ds.in_channels, image_size=ds.image_size
        )


def _text_workload() -> Workload:
    from studies.workloads.text import CharLanguageModel

    return CharLanguageModel()


BUILTIN_WORKLOADS: tuple[Workload, ...] = (
    ImageClassification("cifar10", "resnet20", "CIFAR-10: 32x32 colour images, 10 classes"),
    ImageClassification(
        "fashion_mnist", "cnn", "Fashion-MNIST: 28x28 grey clothing images, 10 classes"
    ),
    ImageClassification("digits", "mlp", "scikit-learn's 8x8 handwritten digits, 10 classes"),
    _text_workload(),
)
