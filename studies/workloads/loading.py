"""The datasets of the study, as whole tensors: ``load_dataset(name)``.

Claims (each checked in ``tests/studies/workloads/test_data.py``):

- ``load_dataset`` reads ``cifar10`` (module ``cifar10``: torchvision's pickled batches or
  image folders, the decoded folders cached), ``fashion_mnist`` (``fashion_mnist``: IDX files,
  ours or Debian's) or ``digits`` (``digits``: scikit-learn's), normalises the images once on
  the target device, and resizes them when asked (antialiased bilinear, as PIL's BILINEAR).
  ``shakespeare`` is text (``shakespeare``: windows of characters; ``image_size`` is the
  context length there).
- Batches and their augmentation: ``batching``.
- Where a dataset is looked for, in which order, and how it is fetched or imported is
  ``studies.workloads.sources``; a dataset that is not there raises ``DatasetNotFoundError`` with
  the message ``robustness data status`` prints. Loading downloads only when asked
  (``download=True``): trials run in parallel and must not race to write the same folder,
  so ``robustness run`` and the quickstart fetch once, before any trial starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from studies import paths
from studies.errors import SpecError
from studies.workloads import sources
from studies.workloads.cifar10 import CIFAR10_MEAN, CIFAR10_STD, load_cifar10
from studies.workloads.dataset import Dataset, RawImages
from studies.workloads.digits import load_digits
from studies.workloads.fashion_mnist import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_fashion_mnist,
)
from studies.workloads.shakespeare import load_shakespeare
from studies.workloads.sources import DATASETS


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    train_subset: int | None = None,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
) -> Dataset:
    """Load dataset ``name`` (one of ``DATASETS``) whole onto ``device``.

    ``train_subset=N`` keeps the first N training examples (all of them if N is larger).
    ``image_size=S`` resizes every image to S x S pixels (``resize_images``) after it is
    normalised; None keeps the dataset's own size.
    ``download`` fetches a missing dataset first (``sources.fetch``: torchvision's
    download, then Debian's package for Fashion-MNIST); without it a missing dataset is an
    error that says how to get it.
    """
    if name not in DATASETS:
        raise SpecError(f"unknown dataset {name!r}; expected one of {DATASETS}", field="dataset")
    if train_subset is not None and train_subset < 1:
        raise SpecError(f"must be a positive number, got {train_subset}", field="train_subset")
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    if download and name != "digits":
        sources.fetch(name, data_dir=root)
    if name == "shakespeare":  # text: image_size is the context, in characters
        return load_shakespeare(root, context=image_size, train_subset=train_subset, device=device)
    if name == "cifar10":
        raw = load_cifar10(root)
        mean, std, augment = CIFAR10_MEAN, CIFAR10_STD, True
    elif name == "fashion_mnist":
        raw = load_fashion_mnist(root)
        mean, std, augment = FASHION_MNIST_MEAN, FASHION_MNIST_STD, False
    else:
        return resize_dataset(load_digits(train_subset=train_subset, device=device), image_size)
    if train_subset is not None:
        raw = RawImages(
            raw.train_x[:train_subset], raw.train_y[:train_subset], raw.test_x, raw.test_y
        )
    ds = Dataset(
        name=name,
        train_x=_normalise(raw.train_x, mean, std, device=device),
        train_y=raw.train_y.to(device),
        test_x=_normalise(raw.test_x, mean, std, device=device),
        test_y=raw.test_y.to(device),
        num_classes=10,  # both CIFAR-10 and Fashion-MNIST
        in_channels=int(raw.train_x.shape[1]),
        image_size=int(raw.train_x.shape[2]),
        augment=augment,
        mean=mean,
        std=std,
    )
    return resize_dataset(ds, image_size)


def resize_images(x: Tensor, size: int) -> Tensor:
    """``[N, C, H, W]`` images as ``[N, C, size, size]``: bilinear interpolation, antialiased
    when shrinking (the filter widened by the scale, as PIL's BILINEAR resize does), in
    chunks so that 60,000 images need no large temporary."""
    if size < 1:
        raise SpecError(f"must be a positive number, got {size}", field="image_size")
    if x.shape[-2:] == (size, size):
        return x
    parts = [
        torch.nn.functional.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        for chunk in torch.split(x, 8192)
    ]
    return torch.cat(parts)


def resize_dataset(ds: Dataset, image_size: int | None) -> Dataset:
    """``ds`` with its training and test images at ``image_size`` pixels per side."""
    if image_size is None or image_size == ds.image_size:
        return ds
    return dataclasses.replace(
        ds,
        train_x=resize_images(ds.train_x, image_size),
        test_x=resize_images(ds.test_x, image_size),
        image_size=image_size,
    )


def _normalise(
    images: Tensor, mean: Sequence[float], std: Sequence[float], *, device: str | torch.device
) -> Tensor:
    """uint8 NCHW -> float32 ``(x/255 - mean)/std``, done once, on ``device`` (moving the uint8
    tensor first: a quarter of the bytes to copy)."""
    x = images.to(device).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
