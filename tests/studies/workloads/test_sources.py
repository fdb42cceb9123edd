"""Where datasets come from: the resolution order, ``robustness data status|fetch``, and
torchvision's real download code against local mirrors (one that serves the files, one that
refuses, one that never answers)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_data import write_cifar_batches, write_fashion_mnist

from studies.cli import main as cli_main
from studies.errors import DatasetNotFoundError
from studies.workloads import sources
from studies.workloads.loading import load_dataset


@pytest.fixture(autouse=True)
def no_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test here sees Debian's Fashion-MNIST as not installed unless it writes it."""
    debian = tmp_path / "debian-fashion-mnist"
    monkeypatch.setenv("ROBUSTNESS_DEBIAN_FASHION_MNIST", str(debian))
    return debian


def test_resolution_order_data_dir_then_debian(tmp_path: Path, no_debian_package: Path) -> None:
    data = tmp_path / "data"
    missing = sources.locate("fashion_mnist", data_dir=data)
    assert not missing.found and str(no_debian_package) in missing.hint
    assert "robustness data fetch fashion_mnist" in missing.hint

    write_fashion_mnist(no_debian_package, gz=True)
    debian = sources.locate("fashion_mnist", data_dir=data)
    assert debian.path == no_debian_package and "Debian" in (debian.layout or "")

    write_fashion_mnist(data / "fashion_mnist" / "FashionMNIST" / "raw", gz=False)
    own = sources.locate("fashion_mnist", data_dir=data)
    assert own.path == data / "fashion_mnist" / "FashionMNIST" / "raw"  # the data dir first


def test_status_prints_where_each_dataset_is_or_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cifar_batches(tmp_path / "cifar10", per_batch=1)

    code = cli_main(["data", "--data-dir", str(tmp_path), "status"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 1  # fashion_mnist is missing
    assert lines[0].startswith("cifar10: torchvision's pickled batches in ")
    assert lines[1] == sources.locate("fashion_mnist", data_dir=tmp_path).hint
    assert lines[2].startswith("digits: ")
    assert cli_main(["data", "--data-dir", str(tmp_path), "status", "cifar10"]) == 0


# --- torchvision's download, against local mirrors ----------------------------------------


class _Mirror(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """An HTTP server holding gzipped Fashion-MNIST IDX files; their md5s, as torchvision's
    ``resources`` lists them."""
    files = tmp_path / "mirror"
    write_fashion_mnist(files, gz=True)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in files.iterdir()}

    def handler(*args: object, **kwargs: object) -> _Mirror:
        return _Mirror(*args, directory=str(files), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", md5
    finally:
        server.shutdown()
        server.server_close()


def _use_mirror(monkeypatch: pytest.MonkeyPatch, url: str, md5: dict[str, str]) -> None:
    import torchvision.datasets

    fm = torchvision.datasets.FashionMNIST
    monkeypatch.setattr(fm, "mirrors", [url])
    monkeypatch.setattr(
        fm, "resources", [(name, md5.get(name, "0" * 32)) for name, _ in fm.resources]
    )


def test_fetch_downloads_with_torchvision_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[str, dict[str, str]]
) -> None:
    _use_mirror(monkeypatch, *mirror)
    data = tmp_path / "data"
    said: list[str] = []

    where = sources.fetch("fashion_mnist", data_dir=data, install_package=False, say=said.append)

    assert where.path == data / "fashion_mnist" / "FashionMNIST" / "raw"
    assert load_dataset("fashion_mnist", data_dir=data).num_train == 6
    assert [p.name for p in data.iterdir()] == ["fashion_mnist"]  # no temporary folder left
    assert said and "downloading fashion_mnist with torchvision" in said[0]


def test_download_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUSTNESS_DOWNLOAD", "0")
    with pytest.raises(DatasetNotFoundError) as err:
        sources.fetch("fashion_mnist", data_dir=tmp_path, install_package=False)
    assert "Tried" not in str(err.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_offline_download_fails_in_seconds_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int, kind: str
) -> None:
    port = _closed_port() if kind == "refused" else silent_port
    _use_mirror(monkeypatch, f"http://127.0.0.1:{port}/", {})
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_S", 1.0)
    said: list[str] = []

    started = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as err:
        sources.fetch("fashion_mnist", data_dir=tmp_path, install_package=False, say=said.append)

    assert time.monotonic() - started < 15  # torchvision alone would wait forever on "silent"
    failure = said[-1]
    assert failure.startswith("torchvision could not download fashion_mnist: ")
    assert "\n" not in failure
    assert "Tried: torchvision could not download" in str(err.value)
    assert sorted(tmp_path.iterdir()) == []  # nothing half-written
