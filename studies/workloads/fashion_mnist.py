"""Fashion-MNIST from IDX files (raw or ``.gz``) in torchvision's layout
``<data_dir>/fashion_mnist/FashionMNIST/raw/``, else from Debian's ``dataset-fashion-mnist``
package (``studies.paths.debian_fashion_mnist()``); where to look is ``sources``'s."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from studies.errors import DatasetNotFoundError
from studies.workloads import sources
from studies.workloads.dataset import RawImages

# The usual Fashion-MNIST statistics of the training set (pixels in [0, 1]).
FASHION_MNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHION_MNIST_STD: tuple[float, ...] = (0.3530,)


def load_fashion_mnist(root: Path) -> RawImages:
    for candidate in sources.fashion_mnist_candidates(root):
        found = sources.find_idx_files(candidate)
        if found is not None:
            return _read_idx_set(found)
    raise DatasetNotFoundError(sources.locate("fashion_mnist", data_dir=root).hint)


def _read_idx_set(files: dict[str, Path]) -> RawImages:
    train_x, test_x = read_idx(files["train_x"]), read_idx(files["test_x"])
    return RawImages(
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
