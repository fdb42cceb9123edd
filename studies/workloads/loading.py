"""The datasets of the study, as whole tensors, and their batched augmentation.

Claims (each checked in ``tests/studies/workloads/test_data.py``):

- ``cifar10`` is read from ``<data_dir>/cifar10/`` in either of the two layouts found in the
  wild, detected on its own: torchvision's pickled batches (``cifar-10-batches-py/``) or
  image folders (``train/<class>/*.jpg|png``, ``test/<class>/...``, what ``ImageFolder``
  reads; classes in sorted order, which for CIFAR-10 is its label order). If both are there,
  the pickled batches win (they are the original bits). Decoded image folders are cached as
  one uint8 tensor file in ``<data_dir>/cifar10/.cache/``, keyed on the file list (names and
  sizes), written atomically; a second load reads that file instead of 60,000 JPEGs.
- The training images of the image-folder layout are put in a fixed pseudo-random order
  (seed 0) so that ``train_subset=N`` (the first N) is a class-balanced sample, as it is for
  the pickled batches, whose order is already random.
- CIFAR-10 normalisation: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616), the
  per-channel statistics of the training set. (The RAdam authors' ``cifar.py`` divides by
  (0.2023, 0.1994, 0.2010), a widely copied value about 1.2x smaller; ResNet-20's first conv
  is followed by batch norm, which absorbs nearly all of that difference.) Augmentation, as
  in their code (``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip``), is done here
  on whole batches on the tensors' device; the padding is black pixels, i.e. ``-mean/std``
  after normalisation, exactly what cropping before ``Normalize`` gives.
- ``fashion_mnist`` is read from IDX files (raw or ``.gz``) in torchvision's layout
  ``<data_dir>/fashion_mnist/FashionMNIST/raw/``, else from Debian's ``dataset-fashion-mnist``
  package (``studies.paths.debian_fashion_mnist()``). ``digits`` is scikit-learn's bundled
  8x8 digits (as ``load_digits`` returns them) with a fixed stratified 80/20 split (seed 0).
- Where a dataset is looked for, in which order, and how it is fetched or imported is
  ``studies.workloads.sources``; a dataset that is not there raises ``DatasetNotFoundError`` with
  the message ``robustness data status`` prints. Loading downloads only when asked
  (``download=True``): trials run in parallel and must not race to write the same folder,
  so ``robustness run`` and the quickstart fetch once, before any trial starts.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from studies import paths
from studies.errors import DatasetNotFoundError, SpecError
from studies.workloads import sources
from studies.workloads.sources import DATASETS, FASHION_MNIST_FILES, IMAGE_SUFFIXES

__all__ = ["DATASETS", "FASHION_MNIST_FILES", "Dataset", "batches", "load_dataset"]

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
# The usual Fashion-MNIST statistics of the training set (pixels in [0, 1]).
FASHION_MNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHION_MNIST_STD: tuple[float, ...] = (0.3530,)

CROP_PADDING = 4  # pixels, each side, as in the authors' RandomCrop(32, padding=4)
CACHE_VERSION = 1  # bump when the cache file's content changes meaning
SUBSET_SEED = 0  # the fixed order of image-folder training images, and the digits split


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole dataset in memory: images normalised float32 NCHW, labels int64.

    ``mean``/``std`` are the per-channel statistics the images were normalised with (so that
    augmentation can pad with black and figures can undo the normalisation).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    in_channels: int
    image_size: int
    augment: bool
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_x.shape[0])

    def __repr__(self) -> str:  # the shapes, not 60,000 images' worth of numbers
        return (
            f"Dataset({self.name!r}, train={self.num_train}, test={self.num_test}, "
            f"images={self.in_channels}x{self.image_size}x{self.image_size}, "
            f"classes={self.num_classes}, augment={self.augment}, device={self.train_x.device})"
        )


@dataclass(frozen=True)
class _RawImages:
    """Pixels as stored on disk: uint8 NCHW images, int64 labels."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


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
    if name == "cifar10":
        raw = _load_cifar10(root)
        mean, std, augment = CIFAR10_MEAN, CIFAR10_STD, True
    elif name == "fashion_mnist":
        raw = _load_fashion_mnist(root)
        mean, std, augment = FASHION_MNIST_MEAN, FASHION_MNIST_STD, False
    else:
        return resize_dataset(_load_digits(train_subset=train_subset, device=device), image_size)
    if train_subset is not None:
        raw = _RawImages(
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


def steps_per_epoch(ds: Dataset, batch_size: int, *, drop_last: bool = False) -> int:
    """How many training batches ``batches(ds, batch_size=..., drop_last=...)`` yields."""
    _check_batch_size(batch_size)
    full, rest = divmod(ds.num_train, batch_size)
    return full if drop_last or rest == 0 else full + 1


def batches(
    ds: Dataset,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    train: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of ``(images, labels)`` batches.

    Training batches are drawn in an order shuffled with ``generator`` (same seed, same
    epochs) and, when ``ds.augment``, randomly cropped and flipped as whole batches. Test
    batches come in order, unaugmented (views of ``ds.test_x``, no copy).
    """
    _check_batch_size(batch_size)
    x, y = (ds.train_x, ds.train_y) if train else (ds.test_x, ds.test_y)
    n = int(x.shape[0])
    stop = n - n % batch_size if drop_last else n
    if not train:
        for start in range(0, stop, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    order = torch.randperm(n, generator=generator, device=_generator_device(generator))
    order = order.to(x.device)
    black = _black(ds)  # made once per epoch on the data's device, not once per batch
    fill = None if black is None else torch.tensor(black, dtype=x.dtype, device=x.device)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        bx = x[idx]
        if ds.augment:
            bx = augment_batch(bx, padding=CROP_PADDING, fill=fill, generator=generator)
        yield bx, y[idx]


def augment_batch(
    x: Tensor,
    *,
    padding: int = CROP_PADDING,  # pixels on each side
    fill: Sequence[float] | Tensor | None = None,  # per-channel padding value; None: zeros
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random crop (with ``padding`` pixels of ``fill`` around) then random horizontal flip,
    drawn independently for every image of the NCHW batch ``x``, in a few tensor ops."""
    b, c, h, w = x.shape
    padded = x.new_empty((b, c, h + 2 * padding, w + 2 * padding))
    if fill is None:
        padded.zero_()
    else:
        fill_values = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
        padded.copy_(fill_values.view(1, c, 1, 1).expand_as(padded))
    padded[:, :, padding : padding + h, padding : padding + w] = x
    gen_device = _generator_device(generator)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gen_device)
    flip = torch.rand((b,), generator=generator, device=gen_device) < 0.5
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    # Every (h, w) window of the padded batch as a view (b, c, 2p+1, 2p+1, h, w); one
    # indexing op copies out each image's own window.
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    out = windows[torch.arange(b, device=x.device), :, dy, dx]
    # torch.where, not boolean-mask assignment: a mask makes the GPU wait for the host.
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


# --- CIFAR-10 -----------------------------------------------------------------------------


def _load_cifar10(root: Path) -> _RawImages:
    cifar_dir = root / "cifar10"
    batches_dir = sources.find_cifar_batches(cifar_dir)
    if batches_dir is not None:
        return _read_cifar_batches(batches_dir)
    if sources.find_image_folders(cifar_dir) is not None:
        return _read_cifar_image_folders(cifar_dir)
    raise DatasetNotFoundError(sources.locate("cifar10", data_dir=root).hint)


def _read_cifar_batches(batches_dir: Path) -> _RawImages:
    """torchvision's layout: Python pickles of {data: uint8 (N, 3072) RRR..GGG..BBB, labels}."""
    train = [_read_cifar_pickle(batches_dir / f"data_batch_{i}") for i in range(1, 6)]
    test = _read_cifar_pickle(batches_dir / "test_batch")
    return _RawImages(
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


def _read_cifar_image_folders(cifar_dir: Path) -> _RawImages:
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
    raw = _RawImages(
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


def _read_cache(cache_file: Path, key: str) -> _RawImages | None:
    if not cache_file.is_file():
        return None
    try:
        blob = torch.load(cache_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: rebuild it
        warnings.warn(f"ignoring unreadable cache {cache_file}: {exc}", stacklevel=3)
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    return _RawImages(blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"])


def _write_cache(cache_file: Path, key: str, raw: _RawImages) -> None:
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


# --- Fashion-MNIST ------------------------------------------------------------------------


def _load_fashion_mnist(root: Path) -> _RawImages:
    for candidate in sources.fashion_mnist_candidates(root):
        found = sources.find_idx_files(candidate)
        if found is not None:
            return _read_idx_set(found)
    raise DatasetNotFoundError(sources.locate("fashion_mnist", data_dir=root).hint)


def _read_idx_set(files: dict[str, Path]) -> _RawImages:
    train_x, test_x = read_idx(files["train_x"]), read_idx(files["test_x"])
    return _RawImages(
        train_x=torch.from_numpy(train_x).unsqueeze(1),  # (N, 28, 28) -> (N, 1, 28, 28)
        train_y=torch.from_numpy(read_idx(files["train_y"]).astype(np.int64)),
        test_x=torch.from_numpy(test_x).unsqueeze(1),
        test_y=torch.from_numpy(read_idx(files["test_y"]).astype(np.int64)),
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), raw or gzipped, of unsigned bytes: magic
    0x0000 08 <ndim>, then ndim big-endian uint32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        blob = fh.read()
    if len(blob) < 4 or blob[0:2] != b"\x00\x00" or blob[2] != 0x08:
        raise DatasetNotFoundError(f"{path} is not an IDX file of unsigned bytes; replace it")
    ndim = blob[3]
    dims = tuple(int(d) for d in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(blob) - offset != int(np.prod(dims)):
        raise DatasetNotFoundError(f"{path} is truncated: header says {dims}; replace it")
    return np.frombuffer(blob, dtype=np.uint8, offset=offset).reshape(dims).copy()


# --- digits -------------------------------------------------------------------------------


def _load_digits(*, train_subset: int | None, device: str | torch.device) -> Dataset:
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


# --- shared helpers -----------------------------------------------------------------------


def _normalise(
    images: Tensor, mean: Sequence[float], std: Sequence[float], *, device: str | torch.device
) -> Tensor:
    """uint8 NCHW -> float32 ``(x/255 - mean)/std``, done once, on ``device`` (moving the uint8
    tensor first: a quarter of the bytes to copy)."""
    x = images.to(device).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def _black(ds: Dataset) -> tuple[float, ...] | None:
    """The normalised value of a black pixel, per channel (None: zeros, no statistics)."""
    if not ds.mean or not ds.std:
        return None
    return tuple(-m / s for m, s in zip(ds.mean, ds.std, strict=True))


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise SpecError(f"must be a positive number, got {batch_size}", field="batch_size")
