"""CIFAR-10 from ``<data_dir>/cifar10/``, in either of the two layouts found in the wild,
detected on its own: torchvision's pickled batches (``cifar-10-batches-py/``) or image folders
(``train/<class>/*.jpg|png``, ``test/<class>/...``, what ``ImageFolder`` reads; classes in
sorted order, which for CIFAR-10 is its label order). If both are there, the pickled batches
win (they are the original bits).

Decoded image folders are cached as one uint8 tensor file in ``<data_dir>/cifar10/.cache/``,
keyed on the file list (names and sizes), written atomically; a second load reads that file
instead of 60,000 JPEGs. The training images of the image-folder layout are put in a fixed
pseudo-random order (seed 0) so that ``train_subset=N`` (the first N) is a class-balanced
sample, as it is for the pickled batches, whose order is already random.

Normalisation: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616), the per-channel
statistics of the training set. (The RAdam authors' ``cifar.py`` divides by (0.2023, 0.1994,
0.2010), a widely copied value about 1.2x smaller; ResNet-20's first conv is followed by batch
norm, which absorbs nearly all of that difference.)
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from studies.errors import DatasetNotFoundError
from studies.workloads import sources
from studies.workloads.dataset import SUBSET_SEED, RawImages
from studies.workloads.sources import IMAGE_SUFFIXES

CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CACHE_VERSION = 1  # bump when the cache file's content changes meaning


def load_cifar10(root: Path) -> RawImages:
    cifar_dir = root / "cifar10"
    batches_dir = sources.find_cifar_batches(cifar_dir)
    if batches_dir is not None:
        return _read_cifar_batches(batches_dir)
    if sources.find_image_folders(cifar_dir) is not None:
        return _read_cifar_image_folders(cifar_dir)
    raise DatasetNotFoundError(sources.locate("cifar10", data_dir=root).hint)


def _read_cifar_batches(batches_dir: Path) -> RawImages:
    """torchvision's layout: Python pickles of {data: uint8 (N, 3072) RRR..GGG..BBB, labels}."""
    train = [_read_cifar_pickle(batches_dir / f"data_batch_{i}") for i in range(1, 6)]
    test = _read_cifar_pickle(batches_dir / "test_batch")
    return RawImages(
        train_x=torch.cat([x for x, _ in train]),
        train_y=torch.cat([y for _, y in train]),
        test_x=test[0],
        test_y=test[1],
    )


def _read_cifar_pickle(path: Path) -> tuple[Tensor, Tensor]:
    if not path.is_file():
        raise DatasetNotFoundError(f"CIFAR-10 batch {path} is missing; the layout needs all six")
    # The official files are Python 2 pickles: encoding="bytes" reads them (keys come back as
    # bytes; pickles written by Python 3 have str keys, handled alike). Trusted local files only.
    with path.open("rb") as fh:
        entry = pickle.load(fh, encoding="bytes")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    labels = entry.get("labels", entry.get("fine_labels"))
    if "data" not in entry or labels is None:
        raise DatasetNotFoundError(f"{path} is not a CIFAR-10 batch (no data/labels)")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), torch.as_tensor(np.asarray(labels), dtype=torch.int64)


def _read_cifar_image_folders(cifar_dir: Path) -> RawImages:
    train = _list_image_folder(cifar_dir / "train")
    test = _list_image_folder(cifar_dir / "test")
    if train.classes != test.classes:
        raise DatasetNotFoundError(
            f"{cifar_dir}/train and {cifar_dir}/test hold different classes: "
            f"{train.classes} vs {test.classes}"
        )
    key = hashlib.sha256(f"v{CACHE_VERSION}\n{train.listing}{test.listing}".encode()).hexdigest()
    cache_file = cifar_dir / ".cache" / "cifar10-uint8.pt"
    cached = _read_cache(cache_file, key)
    if cached is not None:
        return cached
    order = torch.randperm(len(train.files), generator=torch.Generator().manual_seed(SUBSET_SEED))
    raw = RawImages(
        train_x=_decode_images(train.files)[order],
        train_y=torch.tensor(train.labels, dtype=torch.int64)[order],
        test_x=_decode_images(test.files),
        test_y=torch.tensor(test.labels, dtype=torch.int64),
    )
    _write_cache(cache_file, key, raw)
    return raw


@dataclass(frozen=True)
class _ImageFolder:
    """One split of an image-folder dataset. ``listing`` holds a ``class/name:size`` line per
    file: the cache key. Names and sizes cost one directory scan and one stat a file, and
    change when images are added, removed or replaced by different ones."""

    files: list[str]
    labels: list[int]
    classes: list[str]
    listing: str


def _list_image_folder(split_dir: Path) -> _ImageFolder:
    classes = sorted(
        e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")
    )
    files: list[str] = []
    labels: list[int] = []
    lines: list[str] = []
    for label, cls in enumerate(classes):
        entries = sorted(
            (e for e in os.scandir(split_dir / cls) if _is_image(e)), key=lambda e: e.name
        )
        files.extend(e.path for e in entries)
        labels.extend([label] * len(entries))
        lines.extend(f"{cls}/{e.name}:{e.stat().st_size}\n" for e in entries)
    if not files:
        raise DatasetNotFoundError(f"no .jpg/.png images under {split_dir}/<class>/")
    return _ImageFolder(files, labels, classes, f"{split_dir.name}\n{''.join(lines)}")


def _is_image(entry: os.DirEntry[str]) -> bool:
    return entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file()


def _decode_images(files: Sequence[str]) -> Tensor:
    """Decode to one uint8 (N, 3, H, W) tensor. JPEGs go through libjpeg-turbo in batched
    calls (about 12,000 32x32 images/s on one core here); other formats one at a time."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    rgb = ImageReadMode.RGB
    images: list[Tensor | None] = [None] * len(files)
    jpeg_at = [i for i, f in enumerate(files) if f.lower().endswith((".jpg", ".jpeg"))]
    chunk = 5000  # files per decode call: bounds the encoded bytes held at once
    for start in range(0, len(jpeg_at), chunk):
        part = jpeg_at[start : start + chunk]
        decoded = decode_jpeg([read_file(files[i]) for i in part], mode=rgb)
        for i, img in zip(part, decoded, strict=True):
            images[i] = img
    for i, f in enumerate(files):
        if images[i] is None:
            images[i] = decode_image(read_file(f), mode=rgb)
    shapes = {tuple(img.shape) for img in images if img is not None}
    if len(shapes) != 1:
        raise DatasetNotFoundError(
            f"images of different sizes {sorted(shapes)} under {Path(files[0]).parents[1]}"
        )
    return torch.stack([img for img in images if img is not None])


def _read_cache(cache_file: Path, key: str) -> RawImages | None:
    if not cache_file.is_file():
        return None
    try:
        blob = torch.load(cache_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: rebuild it
        warnings.warn(f"ignoring unreadable cache {cache_file}: {exc}", stacklevel=3)
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    return RawImages(blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"])


def _write_cache(cache_file: Path, key: str, raw: RawImages) -> None:
    """Write to a temporary file beside the cache then rename: readers running at the same
    time (parallel trials) see the old file or the whole new one, never half of one."""
    blob = {
        "key": key,
        "train_x": raw.train_x,
        "train_y": raw.train_y,
        "test_x": raw.test_x,
        "test_y": raw.test_y,
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(blob, fh)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the data directory is shared
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only data directory still loads, only slower
        warnings.warn(f"could not write the decoded-image cache {cache_file}: {exc}", stacklevel=3)
