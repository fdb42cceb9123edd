"""Where the embedded default keeps its files.

Everything lives under one per-project home, ``$ROBUSTNESS_HOME`` or ``./.robustness``:

    <home>/data/            datasets (cifar10/, fashion_mnist/); ``$ROBUSTNESS_DATA_DIR`` overrides
    <home>/mlflow.db        the SQLite MLflow store (``$MLFLOW_TRACKING_URI`` overrides)
    <home>/mlartifacts/     MLflow artifacts for the SQLite store
    <home>/ray_results/     Ray Tune's storage_path (``$ROBUSTNESS_STORAGE`` overrides)
    <home>/optuna.db        Optuna's RDB storage for ``search: optuna`` studies
    <home>/logs/, reports/  the quickstart's and the service's logs, ``robustness report``'s files

Debian's ``dataset-fashion-mnist`` puts its files in ``/usr/share/datasets/fashion-mnist``;
``$ROBUSTNESS_DEBIAN_FASHION_MNIST`` points elsewhere (another install, or a test of the
absent-dataset path). Whoever writes under the home creates the folder first (``ensure_home``).
"""

from __future__ import annotations

import os
from pathlib import Path

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def home() -> Path:
    return Path(os.environ.get("ROBUSTNESS_HOME", ".robustness")).resolve()


def ensure_home() -> Path:
    """The home, created if it is not there yet (a fresh folder works for every command)."""
    path = home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_fashion_mnist() -> Path:
    env = os.environ.get("ROBUSTNESS_DEBIAN_FASHION_MNIST")
    return Path(env) if env else DEBIAN_FASHION_MNIST


def data_dir() -> Path:
    env = os.environ.get("ROBUSTNESS_DATA_DIR")
    return Path(env).resolve() if env else home() / "data"


def mlflow_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if env else f"sqlite:///{home() / 'mlflow.db'}"


def artifacts_dir() -> Path:
    return home() / "mlartifacts"


def storage_path() -> Path:
    env = os.environ.get("ROBUSTNESS_STORAGE")
    return Path(env).resolve() if env else home() / "ray_results"


def optuna_storage() -> str:
    """Optuna's storage URL; for SQLite (the default) its folder is created, since neither
    SQLite nor Optuna makes it ("unable to open database file" in a fresh folder)."""
    env = os.environ.get("ROBUSTNESS_OPTUNA_STORAGE")
    return ensure_sqlite_dir(env if env else f"sqlite:///{home() / 'optuna.db'}")


def ensure_sqlite_dir(uri: str) -> str:
    """``uri`` unchanged, after creating the folder of its file if it is a SQLite URL."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and uri != prefix + ":memory:":
        Path(uri.removeprefix(prefix)).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return uri
