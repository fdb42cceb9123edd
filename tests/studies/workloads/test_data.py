"""Datasets: both CIFAR-10 layouts written in their real on-disk formats, the decoded-image
cache, Fashion-MNIST from IDX files, digits, and the batching/augmentation contract. The real
CIFAR-10 and Debian Fashion-MNIST files are loaded when this machine has them."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from studies import paths
from studies.errors import DatasetNotFoundError, SpecError
from studies.workloads import cifar10
from studies.workloads.batching import augment_batch, batches, steps_per_epoch
from studies.workloads.cifar10 import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from studies.workloads.dataset import Dataset
from studies.workloads.loading import load_dataset
from studies.workloads.sources import DATASETS

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Torch's OpenMP threads spin-wait for each other: on a 2-core machine shared with other
    processes, 2 threads ran these small models 10-60x slower than 1 thread (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_uint8(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Undo the normalisation: back to the pixel bytes on disk."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return ((x * s + m) * 255.0).round().to(torch.uint8)


# --- CIFAR-10, torchvision's pickled batches ------------------------------------------------


def write_cifar_batches(root: Path, *, per_batch: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """The real format: six pickles of {"data": uint8 (N, 3072) as R-plane, G-plane, B-plane,
    "labels": list of int, ...} in <root>/cifar-10-batches-py/."""
    rng = np.random.default_rng(seed)
    out = root / "cifar-10-batches-py"
    out.mkdir(parents=True)
    train_x, train_y = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": images.reshape(per_batch, 3072),
            "filenames": [f"img_{i}.png" for i in range(per_batch)],
        }
        with (out / name).open("wb") as fh:
            pickle.dump(entry, fh, protocol=2)
        if name == "test_batch":
            test_x, test_y = images, np.array(labels)
        else:
            train_x.append(images)
            train_y.extend(labels)
    return np.concatenate(train_x), np.array(train_y), test_x, test_y


def test_cifar10_from_torchvision_batches(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = write_cifar_batches(tmp_path / "cifar10", per_batch=4)

    ds = load_dataset("cifar10", data_dir=tmp_path)

    assert (ds.name, ds.num_classes, ds.in_channels, ds.image_size) == ("cifar10", 10, 3, 32)
    assert ds.augment is True
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.train_x.dtype == torch.float32
    assert ds.train_y.dtype == torch.int64 and ds.test_x.shape == (4, 3, 32, 32)
    # Pixel for pixel, in order (batches 1..5 then the test batch), plane order R, G, B.
    assert torch.equal(to_uint8(ds.train_x, CIFAR10_MEAN, CIFAR10_STD), torch.from_numpy(train_x))
    assert torch.equal(to_uint8(ds.test_x, CIFAR10_MEAN, CIFAR10_STD), torch.from_numpy(test_x))
    assert ds.train_y.tolist() == train_y.tolist() and ds.test_y.tolist() == test_y.tolist()


def test_cifar10_reads_python2_pickles_with_bytes_keys(tmp_path: Path) -> None:
    """The official files were written by Python 2: their keys load as bytes."""
    write_cifar_batches(tmp_path / "cifar10", per_batch=2)
    batch_dir = tmp_path / "cifar10" / "cifar-10-batches-py"
    for f in batch_dir.iterdir():
        with f.open("rb") as fh:
            entry = pickle.load(fh)
        with f.open("wb") as fh:
            pickle.dump({k.encode(): v for k, v in entry.items()}, fh, protocol=2)

    ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.num_train == 10 and ds.num_test == 2


# --- CIFAR-10, image folders ----------------------------------------------------------------


def write_image_folders(
    root: Path, *, per_class: dict[str, int], suffix: str = ".png", seed: int = 0
) -> dict[str, dict[bytes, int]]:
    """<root>/<split>/<class>/NNNN<suffix>, random 32x32 RGB images. Returns, per split, each
    image's CHW bytes -> its class index (to find every loaded image's source)."""
    rng = np.random.default_rng(seed)
    written: dict[str, dict[bytes, int]] = {}
    for split, count in per_class.items():
        written[split] = {}
        for label, cls in enumerate(CIFAR10_CLASSES):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}{suffix}")
                written[split][pixels.transpose(2, 0, 1).tobytes()] = label
    return written


def test_cifar10_from_png_image_folders_pairs_every_image_with_its_class(tmp_path: Path) -> None:
    written = write_image_folders(tmp_path / "cifar10", per_class={"train": 3, "test": 2})

    ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.num_train == 30 and ds.num_test == 20 and ds.num_classes == 10
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        pixels = to_uint8(x, CIFAR10_MEAN, CIFAR10_STD)  # PNG is lossless: exact bytes
        found = [written[split][img.numpy().tobytes()] for img in pixels]
        assert found == y.tolist()
    assert sorted(torch.bincount(ds.train_y).tolist()) == [3] * 10
    # Training images come in a fixed shuffled order (so the first N are a mixed sample),
    # test images in folder order (class 0 first).
    assert ds.train_y.tolist() != sorted(ds.train_y.tolist())
    assert ds.test_y.tolist() == sorted(ds.test_y.tolist())
    again = load_dataset("cifar10", data_dir=tmp_path)
    assert torch.equal(again.train_y, ds.train_y)


def test_cifar10_from_jpeg_image_folders(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    for split in ("train", "test"):
        for label, cls in enumerate(CIFAR10_CLASSES):
            (root / split / cls).mkdir(parents=True)
            colour = np.array([label * 25, 255 - label * 25, 100], dtype=np.uint8)
            Image.fromarray(np.tile(colour, (32, 32, 1))).save(
                root / split / cls / "0000.jpg", quality=95
            )
            # A grayscale JPEG too: decoded to 3 channels like every other image.
            Image.fromarray(np.full((32, 32), label * 25, dtype=np.uint8)).save(
                root / split / cls / "0001.JPEG", quality=95
            )

    ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (20, 3, 32, 32)
    pixels = to_uint8(ds.test_x, CIFAR10_MEAN, CIFAR10_STD).float()
    for img, label in zip(pixels, ds.test_y.tolist(), strict=True):
        colour = img.mean(dim=(1, 2))
        grey = [label * 25.0] * 3
        rgb = [label * 25.0, 255.0 - label * 25, 100.0]
        assert (
            min(float((colour - torch.tensor(c)).abs().max()) for c in (grey, rgb)) < 3.0
        )  # JPEG at quality 95 keeps a flat colour within a few levels


def test_image_folder_cache_is_written_then_used_then_refreshed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cifar10"
    write_image_folders(root, per_class={"train": 2, "test": 1})
    first = load_dataset("cifar10", data_dir=tmp_path)
    cache_file = root / ".cache" / "cifar10-uint8.pt"
    assert cache_file.is_file()
    assert not [p for p in cache_file.parent.iterdir() if p.name.startswith(".tmp-")]

    def no_decoding(files: object) -> torch.Tensor:
        raise AssertionError("decoded images although the cache is current")

    monkeypatch.setattr(cifar10, "_decode_images", no_decoding)
    second = load_dataset("cifar10", data_dir=tmp_path)
    assert torch.equal(second.train_x, first.train_x) and torch.equal(second.test_y, first.test_y)

    # A new image changes the file list: the cache is rebuilt, not trusted.
    monkeypatch.undo()
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(root / "train" / "cat" / "9.png")
    third = load_dataset("cifar10", data_dir=tmp_path)
    assert third.num_train == first.num_train + 1


def test_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    write_image_folders(root, per_class={"train": 1, "test": 1})
    (root / ".cache").mkdir()
    (root / ".cache" / "cifar10-uint8.pt").write_bytes(b"half a file")

    with pytest.warns(UserWarning, match="unreadable cache"):
        ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.num_train == 10
    assert torch.load(root / ".cache" / "cifar10-uint8.pt", weights_only=True)["key"]


def test_unwritable_cache_warns_and_loads_anyway(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    write_image_folders(root, per_class={"train": 1, "test": 1})
    (root / ".cache").write_text("a file where the cache directory would go")

    with pytest.warns(UserWarning, match="could not write"):
        ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.num_train == 10 and ds.num_test == 10


@pytest.mark.slow
def test_processes_building_the_cache_at_once_all_load(tmp_path: Path) -> None:
    """Parallel trials on a fresh machine all decode and write the cache at the same time."""
    write_image_folders(tmp_path / "cifar10", per_class={"train": 20, "test": 5})
    script = (
        "import sys; from studies.workloads.loading import load_dataset; "
        "ds = load_dataset('cifar10', data_dir=sys.argv[1]); "
        "print(ds.num_train, ds.num_test, int(ds.train_y[:50].sum()))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]

    assert all(p.returncode == 0 for p in procs)
    assert len(set(outputs)) == 1 and outputs[0].startswith("200 50 ")
    cache = torch.load(tmp_path / "cifar10" / ".cache" / "cifar10-uint8.pt", weights_only=True)
    assert cache["train_x"].shape == (200, 3, 32, 32)


def test_pickled_batches_win_when_both_layouts_are_there(tmp_path: Path) -> None:
    write_cifar_batches(tmp_path / "cifar10", per_batch=1)
    write_image_folders(tmp_path / "cifar10", per_class={"train": 1, "test": 1})

    ds = load_dataset("cifar10", data_dir=tmp_path)

    assert ds.num_train == 5 and ds.num_test == 1


def test_missing_cifar10_says_where_the_files_go(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar10") in message
    assert "train/<class>/*.jpg" in message and "cifar-10-batches-py" in message
    assert "robustness data fetch cifar10" in message
    assert "robustness data import cifar10" in message and "cifar10-jpeg75.tar.gz" in message


def test_data_dir_defaults_to_robustness_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar_batches(tmp_path / "elsewhere" / "cifar10", per_batch=1)
    monkeypatch.setenv("ROBUSTNESS_DATA_DIR", str(tmp_path / "elsewhere"))

    assert load_dataset("cifar10").num_train == 5


class FakeTorchvisionCIFAR10:
    """Stands in for the network only: 'downloads' by writing batches where torchvision
    would put them (<root>/cifar-10-batches-py/)."""

    calls: ClassVar[list[tuple[str, bool]]] = []

    def __init__(self, *, root: str, train: bool, download: bool) -> None:
        self.calls.append((root, download))
        if not (Path(root) / "cifar-10-batches-py").exists():
            write_cifar_batches(Path(root), per_batch=2)


def test_download_only_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading never downloads unless asked (parallel trials must not race to write one
    folder); asked, torchvision writes into a temporary folder that is renamed into place."""
    import torchvision.datasets

    FakeTorchvisionCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeTorchvisionCIFAR10)
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", data_dir=tmp_path)
    assert FakeTorchvisionCIFAR10.calls == []

    ds = load_dataset("cifar10", data_dir=tmp_path, download=True)

    assert ds.num_train == 10 and ds.num_test == 2
    download_root = Path(FakeTorchvisionCIFAR10.calls[0][0])
    assert download_root.parent == tmp_path and download_root.name.startswith(".download-")
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar10"]  # no temporary left


def test_failed_download_is_still_a_clear_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    def offline(**kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)

    with pytest.raises(DatasetNotFoundError, match="network is unreachable") as err:
        load_dataset("cifar10", data_dir=tmp_path, download=True)
    assert "cifar-10-batches-py" in str(err.value)  # still says how to get it by hand
    assert sorted(tmp_path.iterdir()) == []  # nothing half-written


def test_train_subset_keeps_the_first_examples(tmp_path: Path) -> None:
    write_cifar_batches(tmp_path / "cifar10", per_batch=4)
    whole = load_dataset("cifar10", data_dir=tmp_path)

    part = load_dataset("cifar10", data_dir=tmp_path, train_subset=7)

    assert torch.equal(part.train_x, whole.train_x[:7]) and torch.equal(
        part.train_y, whole.train_y[:7]
    )
    assert torch.equal(part.test_x, whole.test_x)  # the test set stays whole
    assert load_dataset("cifar10", data_dir=tmp_path, train_subset=10_000).num_train == 20


def test_bad_names_and_sizes_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="dataset"):
        load_dataset("imagenet")
    with pytest.raises(SpecError, match="train_subset"):
        load_dataset("digits", train_subset=0)
    assert DATASETS == ("cifar10", "fashion_mnist", "digits", "shakespeare")


def real_cifar10_root() -> Path | None:
    env = os.environ.get("ROBUSTNESS_DATA_DIR")
    for candidate in ([Path(env)] if env else []) + [REPO_ROOT / ".robustness" / "data"]:
        if (candidate / "cifar10" / "test").is_dir() or (
            candidate / "cifar10" / "cifar-10-batches-py"
        ).is_dir():
            return candidate
    return None


@pytest.mark.slow
@pytest.mark.cifar10
def test_real_cifar10() -> None:
    root = real_cifar10_root()
    if root is None:
        pytest.skip(
            "no CIFAR-10 in $ROBUSTNESS_DATA_DIR/cifar10 nor .robustness/data/cifar10 "
            "(the test session imports ../shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz "
            "there when it exists: tests/conftest.py)"
        )

    ds = load_dataset("cifar10", data_dir=root)

    assert ds.train_x.shape == (50_000, 3, 32, 32) and ds.test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(ds.train_y).tolist() == [5000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    # The first 1,000 training images (what a small study uses) hold every class fairly.
    assert int(torch.bincount(ds.train_y[:1000], minlength=10).min()) >= 70
    # Channels in RGB order: normalised with CIFAR-10's statistics, each channel is centred.
    assert ds.train_x.mean(dim=(0, 2, 3)).abs().max() < 0.1
    assert (ds.train_x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1
    first_test = root / "cifar10" / "test" / CIFAR10_CLASSES[0]
    if first_test.is_dir():  # the image-folder layout: test images keep folder order
        from torchvision.io import ImageReadMode, decode_image

        source = decode_image(str(sorted(first_test.iterdir())[0]), mode=ImageReadMode.RGB)
        assert torch.equal(to_uint8(ds.test_x[:1], CIFAR10_MEAN, CIFAR10_STD)[0], source)


# --- Fashion-MNIST ------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """LeCun's IDX format: 0x0000, type 0x08 (ubyte), ndim, big-endian sizes, data."""
    blob = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)


def write_fashion_mnist(directory: Path, *, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=6).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=4).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), array)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files_in_torchvision_layout(tmp_path: Path, gz: bool) -> None:
    arrays = write_fashion_mnist(tmp_path / "fashion_mnist" / "FashionMNIST" / "raw", gz=gz)

    ds = load_dataset("fashion_mnist", data_dir=tmp_path)

    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.augment) == (10, 1, 28, False)
    assert ds.train_x.shape == (6, 1, 28, 28) and ds.test_x.shape == (4, 1, 28, 28)
    pixels = to_uint8(ds.train_x, ds.mean, ds.std)[:, 0]
    assert torch.equal(pixels, torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert ds.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.train_y.dtype == torch.int64


def test_fashion_mnist_falls_back_to_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = write_fashion_mnist(debian, gz=True, seed=1)
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", debian)

    ds = load_dataset("fashion_mnist", data_dir=tmp_path / "empty")

    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_missing_fashion_mnist_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")

    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion_mnist", data_dir=tmp_path, download=False)

    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "fashion_mnist" / "FashionMNIST" / "raw") in message


def test_truncated_idx_file_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "fashion_mnist" / "FashionMNIST" / "raw"
    write_fashion_mnist(raw, gz=False)
    blob = (raw / "train-images-idx3-ubyte").read_bytes()
    (raw / "train-images-idx3-ubyte").write_bytes(blob[:-10])

    with pytest.raises(DatasetNotFoundError, match="truncated"):
        load_dataset("fashion_mnist", data_dir=tmp_path)


def test_real_debian_fashion_mnist() -> None:
    if not (paths.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"Debian's dataset-fashion-mnist is not installed ({paths.DEBIAN_FASHION_MNIST})"
        )

    ds = load_dataset("fashion_mnist", data_dir=Path("/nonexistent"))

    assert ds.train_x.shape == (60_000, 1, 28, 28) and ds.test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    assert abs(float(ds.train_x.mean())) < 0.01 and abs(float(ds.train_x.std()) - 1) < 0.01


# --- digits -------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_normalised() -> None:
    ds = load_dataset("digits")

    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.augment) == (10, 1, 8, False)
    assert ds.num_train + ds.num_test == 1797 and 355 <= ds.num_test <= 365
    assert ds.train_x.shape[1:] == (1, 8, 8) and ds.train_x.dtype == torch.float32
    test_counts = torch.bincount(ds.test_y).tolist()
    train_counts = torch.bincount(ds.train_y).tolist()
    assert all(abs(t - 0.25 * n) <= 1 for t, n in zip(test_counts, train_counts, strict=True))
    assert ds.train_y[:20].tolist() != sorted(ds.train_y[:20].tolist())  # shuffled
    assert repr(ds) == (
        f"Dataset('digits', train={ds.num_train}, test={ds.num_test}, images=1x8x8, "
        "classes=10, augment=False, device=cpu)"
    )
    assert abs(float(ds.train_x.mean())) < 1e-4 and abs(float(ds.train_x.std()) - 1) < 1e-3
    again = load_dataset("digits", train_subset=100)
    assert torch.equal(again.train_x, ds.train_x[:100]) and torch.equal(again.test_x, ds.test_x)


def test_digits_are_scikit_learns() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = load_dataset("digits")

    pixels = torch.cat([ds.train_x, ds.test_x]) * ds.std[0] + ds.mean[0]
    labels = torch.cat([ds.train_y, ds.test_y])
    ours = sorted(zip((pixels * 16).round().flatten(1).tolist(), labels.tolist(), strict=True))
    theirs = sorted(zip(bunch.images.reshape(-1, 64).tolist(), bunch.target.tolist(), strict=True))
    assert ours == theirs


# --- batches and augmentation -------------------------------------------------------------


def numbered(n: int, *, augment: bool, size: int = 1) -> Dataset:
    """A dataset whose image i is filled with the value i: batches show which images came."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    return Dataset(
        name="numbered",
        train_x=x,
        train_y=torch.arange(n),
        test_x=x.clone(),
        test_y=torch.arange(n),
        num_classes=n,
        in_channels=1,
        image_size=size,
        augment=augment,
    )


def epoch_order(ds: Dataset, *, seed: int, batch_size: int = 8) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [int(v) for _, y in batches(ds, batch_size=batch_size, generator=g) for v in y]


def test_training_batches_cover_every_example_once_in_a_seeded_order() -> None:
    ds = numbered(50, augment=False)

    order = epoch_order(ds, seed=3)

    assert sorted(order) == list(range(50)) and order != list(range(50))
    assert epoch_order(ds, seed=3) == order
    assert epoch_order(ds, seed=4) != order
    g = torch.Generator().manual_seed(3)
    for bx, by in batches(ds, batch_size=8, generator=g):
        assert torch.equal(bx[:, 0, 0, 0].long(), by)  # images stay with their labels
    epochs = [[int(v) for _, y in batches(ds, batch_size=50, generator=g) for v in y] for _ in "ab"]
    assert epochs[0] != epochs[1]  # one generator across epochs: a new order each epoch


@pytest.mark.parametrize(("n", "batch_size"), [(50, 8), (48, 8), (5, 8), (1, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_steps_per_epoch_counts_the_batches(n: int, batch_size: int, drop_last: bool) -> None:
    ds = numbered(n, augment=False)
    g = torch.Generator().manual_seed(0)

    sizes = [
        len(y) for _, y in batches(ds, batch_size=batch_size, generator=g, drop_last=drop_last)
    ]

    assert len(sizes) == steps_per_epoch(ds, batch_size, drop_last=drop_last)
    assert all(s == batch_size for s in sizes[:-1])
    if drop_last:
        assert sum(sizes) == n - n % batch_size
    else:
        assert sum(sizes) == n


def test_test_batches_are_in_order_and_unaugmented() -> None:
    ds = numbered(20, augment=True, size=8)

    got = list(batches(ds, batch_size=6, train=False))

    assert [len(y) for _, y in got] == [6, 6, 6, 2]
    assert torch.equal(torch.cat([x for x, _ in got]), ds.test_x)
    with pytest.raises(SpecError, match="batch_size"):
        next(batches(ds, batch_size=0))


def padded_views(image: torch.Tensor, *, padding: int, fill: float) -> list[torch.Tensor]:
    """Every crop of ``image`` padded with ``fill``, and each crop flipped: what the
    augmentation may return for it."""
    c, h, w = image.shape
    padded = torch.full((c, h + 2 * padding, w + 2 * padding), fill)
    padded[:, padding : padding + h, padding : padding + w] = image
    views = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            views += [crop, crop.flip(2)]
    return views


def test_augmentation_is_a_padded_random_crop_and_flip_of_each_image() -> None:
    n, size = 64, 8
    x = torch.rand(n, 3, size, size) + 1.0  # all pixels > 0, unlike the black padding
    ds = Dataset(
        name="rand",
        train_x=x,
        train_y=torch.arange(n),
        test_x=x,
        test_y=torch.arange(n),
        num_classes=n,
        in_channels=3,
        image_size=size,
        augment=True,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    black = -0.5 / 0.25  # a zero pixel, normalised
    g = torch.Generator().manual_seed(0)

    (bx, by), *_ = batches(ds, batch_size=n, generator=g)

    assert bx.shape == (n, 3, size, size) and bx.dtype == x.dtype
    kinds = set()
    for img, label in zip(bx, by.tolist(), strict=True):
        views = padded_views(x[label], padding=4, fill=black)
        matches = [i for i, v in enumerate(views) if torch.equal(v, img)]
        assert matches, "an augmented image is no crop/flip of its source"
        kinds.add(matches[0])
    assert len(kinds) > 20  # offsets and flips vary from image to image
    assert {k % 2 for k in kinds} == {0, 1}  # both flipped and unflipped images


def test_augment_batch_is_deterministic_for_a_seed() -> None:
    x = torch.randn(16, 3, 32, 32)
    a = augment_batch(x, generator=torch.Generator().manual_seed(1))
    b = augment_batch(x, generator=torch.Generator().manual_seed(1))
    c = augment_batch(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (augment_batch(torch.ones(4, 3, 8, 8), padding=4) == 0).any()  # default fill: zeros


def test_a_resized_dataset_keeps_its_labels_and_is_resized_as_pil_resizes() -> None:
    from studies.workloads.loading import load_dataset, resize_images

    ds = load_dataset("digits")
    small = load_dataset("digits", image_size=4)
    assert small.image_size == 4 and small.train_x.shape[1:] == (1, 4, 4)
    assert small.num_train == ds.num_train and torch.equal(small.train_y, ds.train_y)
    # antialiased bilinear, as PIL's BILINEAR resize of a float image does it
    for i in (0, 1, 500):
        image = Image.fromarray(ds.train_x[i, 0].numpy(), mode="F")
        expected = np.asarray(image.resize((4, 4), Image.Resampling.BILINEAR))
        np.testing.assert_allclose(small.train_x[i, 0].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert resize_images(ds.test_x, 8) is ds.test_x  # already that size: untouched
