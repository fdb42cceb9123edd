"""Where the embedded default keeps its files.

Everything lives under one per-project home, ``$ROBUSTNESS_HOME`` or ``./.robustness``:

    <home>/data/            datasets (cifar10/, fashion_mnist/); ``$ROBUSTNESS_DATA_DIR`` overrides
    <home>/mlflow.db        the SQLite MLflow store (``$MLFLOW_TRACKING_URI`` overrides)
    <home>/mlartifacts/     MLflow artifacts for the SQLite store
    <home>/ray_results/     Ray Tune's storage_path (``$ROBUSTNESS_STORAGE`` overrides)
    <home>/optuna.db        Optuna's RDB storage for ``search: optuna`` studies
"""

from __future__ import annotations

import os
from pathlib import Path

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def home() -> Path:
    return Path(os.environ.get("ROBUSTNESS_HOME", ".robustness")).resolve()


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
    env = os.environ.get("ROBUSTNESS_OPTUNA_STORAGE")
    return env if env else f"sqlite:///{home() / 'optuna.db'}"
