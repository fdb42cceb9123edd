"""``robustness data import``: archives that are good, truncated or wrong."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_data import write_cifar_batches, write_fashion_mnist, write_image_folders

from studies.cli import main as cli_main
from studies.errors import DataArchiveError
from studies.workloads import archives
from studies.workloads.loading import load_dataset


@pytest.fixture(autouse=True)
def no_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test here sees Debian's Fashion-MNIST as not installed unless it writes it."""
    debian = tmp_path / "debian-fashion-mnist"
    monkeypatch.setenv("ROBUSTNESS_DEBIAN_FASHION_MNIST", str(debian))
    return debian


def _tar(source: Path, archive: Path, *, arcname: str = ".") -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(source, arcname=arcname)
    return archive


def test_import_image_folder_tar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_folders(tmp_path / "src", per_class={"train": 2, "test": 1})
    archive = _tar(tmp_path / "src", tmp_path / "cifar.tar.gz", arcname="cifar10-jpeg")
    data = tmp_path / "data"

    code = cli_main(["data", "--data-dir", str(data), "import", "cifar10", str(archive)])

    assert code == 0
    assert capsys.readouterr().out.startswith(f"cifar10: image folders in {data / 'cifar10'}")
    ds = load_dataset("cifar10", data_dir=data)
    assert (ds.num_train, ds.num_test) == (20, 10)
    assert [p.name for p in data.iterdir()] == ["cifar10"]
    with pytest.raises(DataArchiveError, match="--replace"):
        archives.import_archive("cifar10", archive, data_dir=data)
    archives.import_archive("cifar10", archive, data_dir=data, replace=True)
    assert [p.name for p in data.iterdir()] == ["cifar10"]


def test_import_torchvision_batches_zip_and_fashion_mnist(tmp_path: Path) -> None:
    write_cifar_batches(tmp_path / "src", per_batch=1)
    archive = tmp_path / "batches.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "src" / "cifar-10-batches-py").iterdir():
            zf.write(path, f"cifar-10-batches-py/{path.name}")
    write_fashion_mnist(tmp_path / "fm", gz=True)
    fm_archive = _tar(tmp_path / "fm", tmp_path / "fm.tar.gz")
    data = tmp_path / "data"

    archives.import_archive("cifar10", archive, data_dir=data)
    archives.import_archive("fashion_mnist", fm_archive, data_dir=data)

    assert load_dataset("cifar10", data_dir=data).num_train == 5
    assert load_dataset("fashion_mnist", data_dir=data).num_test == 4


def test_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    write_image_folders(tmp_path / "src", per_class={"train": 3, "test": 1})
    whole = _tar(tmp_path / "src", tmp_path / "whole.tar.gz").read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    data = tmp_path / "data"

    with pytest.raises(DataArchiveError, match="not a complete tar or zip") as err:
        archives.import_archive("cifar10", truncated, data_dir=data)

    assert "image folders train/<class>" in str(err.value)  # names what was expected
    assert list(data.iterdir()) == []


def test_wrong_archive_names_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "README.md").write_text("not a dataset")
    archive = _tar(tmp_path / "src", tmp_path / "wrong.tar.gz")
    not_an_archive = tmp_path / "plain.tar.gz"
    not_an_archive.write_bytes(gzip.compress(b"hello"))
    data = tmp_path / "data"

    with pytest.raises(DataArchiveError, match=r"holds no cifar10 dataset: expected .*README\.md"):
        archives.import_archive("cifar10", archive, data_dir=data)
    with pytest.raises(DataArchiveError, match="four Fashion-MNIST IDX files"):
        archives.import_archive("fashion_mnist", not_an_archive, data_dir=data)
    assert list(data.iterdir()) == []


def test_import_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))

    with pytest.raises(DataArchiveError):
        archives.import_archive("cifar10", archive, data_dir=tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()
