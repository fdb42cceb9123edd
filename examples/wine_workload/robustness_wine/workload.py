"""``wine``: which of three cultivars a wine comes from, given 13 chemical measurements.

The data is the UCI wine data set (178 wines) as scikit-learn ships it, so it is on every
machine that has scikit-learn, offline. The split is fixed: a seeded permutation, the first
124 wines for training and the other 54 for testing; the features are standardised with the
training part's mean and standard deviation. Models: ``wine_mlp`` (13 -> 32 -> 3, ReLU) and
``wine_linear`` (multinomial logistic regression). The metric is test accuracy; a run that
never reports one counts at chance, a third.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from studies.metrics import Metric
from studies.workloads.dataset import Dataset
from studies.workloads.interface import BundledData, Workload

SPLIT_SEED = 0
NUM_TRAIN = 124  # of 178 wines; the other 54 are the test set


class WineWorkload(Workload):
    name = "wine"
    models = ("wine_mlp", "wine_linear")
    description = "UCI wine cultivars (scikit-learn's copy): 178 wines, 13 features, 3 classes"
    metric = Metric(
        name="test_acc",
        label="test accuracy",
        unit="fraction",
        direction="higher",
        failed_value=1 / 3,  # chance: three classes
        display_scale=100.0,
        display_unit="%",
        threshold=1.0,  # percentage point
    )
    source = BundledData("bundled with scikit-learn (sklearn.datasets.load_wine)")

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
        from sklearn.datasets import load_wine

        raw = load_wine()
        x = torch.tensor(raw.data, dtype=torch.float32)
        y = torch.tensor(raw.target, dtype=torch.int64)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
        train, test = order[:NUM_TRAIN], order[NUM_TRAIN:]
        train = train[:train_subset] if train_subset is not None else train
        test = test[:test_subset] if test_subset is not None else test
        mean, std = x[train].mean(dim=0), x[train].std(dim=0)
        x = (x - mean) / std
        return Dataset(
            name=self.name,
            train_x=x[train].to(device),
            train_y=y[train].to(device),
            test_x=x[test].to(device),
            test_y=y[test].to(device),
            num_classes=3,
        )

    def build_model(self, model: str, ds: Dataset) -> nn.Module:
        features = ds.input_shape[0]
        if model == "wine_linear":
            return nn.Linear(features, ds.num_classes)
        return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, ds.num_classes))
