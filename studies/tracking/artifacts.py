"""Artifacts of a study's parent run: log, list, download (straight from disk when the
artifact store is a local folder, the SQLite default)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from studies.errors import StudyNotFoundError
from studies.tracking.connection import Connection


class ArtifactNotFoundError(StudyNotFoundError, FileNotFoundError):
    """A study exists but has no artifact of this name. (A ``StudyNotFoundError``, so every
    caller that maps "not found" keeps doing so.)"""


def log_artifacts(
    conn: Connection, run_id: str, paths: Iterable[str | Path], artifact_path: str | None
) -> None:
    for path in paths:
        local = Path(path)
        if local.is_dir():
            conn.client.log_artifacts(run_id, str(local), artifact_path)
        else:
            conn.client.log_artifact(run_id, str(local), artifact_path)


def list_artifacts(conn: Connection, run_id: str, path: str | None) -> list[str]:
    return [info.path for info in conn.client.list_artifacts(run_id, path)]


def download(conn: Connection, run: Run, name: str, *, study_id: str) -> bytes:
    """An artifact's bytes: straight from disk when the artifact store is a local folder
    (MLflow's downloader costs a copy and a thread pool), else downloaded."""
    client = conn.client
    if name.startswith("/") or ".." in Path(name).parts:
        raise ArtifactNotFoundError(f"study {study_id!r} has no artifact {name!r}")
    run_id = run.info.run_id
    root = _local_artifact_root(run.info.artifact_uri)
    if root is not None:
        local_file = root / name
        if local_file.is_file():
            return local_file.read_bytes()
        raise ArtifactNotFoundError(f"study {study_id!r} has no artifact {name!r}")
    with tempfile.TemporaryDirectory(prefix="robustness-artifact-") as tmp:
        try:
            local = client.download_artifacts(run_id, name, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            if _artifact_missing(client, run_id, name):
                raise ArtifactNotFoundError(f"study {study_id!r} has no artifact {name!r}") from exc
            raise
        if Path(local).is_dir():
            raise ArtifactNotFoundError(f"{name!r} of study {study_id!r} is a folder")
        return Path(local).read_bytes()


def _local_artifact_root(artifact_uri: str | None) -> Path | None:
    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" and artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def _artifact_missing(client: MlflowClient, run_id: str, name: str) -> bool:
    parent = str(Path(name).parent)
    listed = client.list_artifacts(run_id, None if parent == "." else parent)
    return all(info.path != name for info in listed)
