"""The CIFAR-10 archive unpacked into the image-folder layout ``studies.workloads.cifar10`` reads.

``<data_dir>/cifar10/{train,test}/<class>/*.jpg`` from a tar (optionally gz/bz2/xz) whose
members are ``train/<class>/...`` and ``test/<class>/...`` (optionally under one top folder),
such as ``../shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz``. Kept small and apart from the
CLI's ``robustness data import`` (it must run without the CLI's dependencies on a GPU machine).

Unpacked into a temporary folder beside the target and renamed at the end, so a truncated or
wrong archive leaves nothing half-written; members are extracted with tarfile's ``data``
filter (no absolute paths, links or devices).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from studies.errors import DatasetNotFoundError

SPLITS: tuple[str, ...] = ("train", "test")


def cifar10_present(data_dir: Path) -> bool:
    """The image-folder layout is there (``studies.workloads.cifar10`` decides whether it is
    whole)."""
    return all((data_dir / "cifar10" / split).is_dir() for split in SPLITS)


def import_cifar10(archive: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> Path:
    """Unpack ``archive`` into ``<data_dir>/cifar10`` unless that already holds the layout;
    return the cifar10 folder. ``DatasetNotFoundError`` names the archive when it is not one."""
    target = Path(data_dir) / "cifar10"
    if cifar10_present(Path(data_dir)):
        return target
    source = Path(archive)
    if not source.is_file():
        raise DatasetNotFoundError(f"CIFAR-10 archive {source} not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=target.parent))
    try:
        try:
            with tarfile.open(source) as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DatasetNotFoundError(f"{source} is not a readable tar archive: {exc}") from None
        root = _layout_root(staging)
        if root is None:
            raise DatasetNotFoundError(
                f"{source} holds no train/<class>/ and test/<class>/ image folders"
            )
        if target.exists():  # a partial folder from elsewhere: keep it out of the way
            shutil.rmtree(target)
        os.replace(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _layout_root(staging: Path) -> Path | None:
    """``staging`` or its single top folder, whichever holds train/ and test/."""
    candidates = [staging, *[p for p in staging.iterdir() if p.is_dir()]]
    for candidate in candidates:
        if all((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None
