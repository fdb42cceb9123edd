"""scikit-learn's bundled 8x8 digits (as ``load_digits`` returns them) with a fixed
stratified 80/20 split (seed 0), normalised by the training split's mean and std."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from studies.workloads.dataset import SUBSET_SEED, Dataset


def load_digits(*, train_subset: int | None, device: str | torch.device) -> Dataset:
    images, labels = _read_sklearn_digits()
    images = images / 16.0  # pixel values 0..16 -> [0, 1]
    train_idx, test_idx = _stratified_split(labels, test_fraction=0.2, seed=SUBSET_SEED)
    x_train, y_train = images[train_idx], labels[train_idx]
    x_test, y_test = images[test_idx], labels[test_idx]
    mean, std = float(x_train.mean()), float(x_train.std())  # of the whole training split
    if train_subset is not None:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]

    def prepare(x: np.ndarray) -> Tensor:
        return torch.from_numpy((x - mean) / std).unsqueeze(1).to(device)

    return Dataset(
        name="digits",
        train_x=prepare(x_train),
        train_y=torch.from_numpy(y_train).to(device),
        test_x=prepare(x_test),
        test_y=torch.from_numpy(y_test).to(device),
        num_classes=10,
        in_channels=1,
        image_size=8,
        augment=False,
        mean=(mean,),
        std=(std,),
    )


def _read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1,797 8x8 images, values 0..16), read from its own
    ``digits.csv.gz`` as ``load_digits`` does, without importing scikit-learn (which takes
    2-4 s here, paid by every digits trial); ``load_digits`` if the file has moved."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64)


def _stratified_split(
    labels: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/test split holding ``test_fraction`` of every class out for
    testing, each part in a seeded random order."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(len(members) * test_fraction)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
