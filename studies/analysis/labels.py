"""Names and orders shared by the summary, its tables, its verdict and its figures."""

from __future__ import annotations

from studies.metrics import Metric

#: Optimizers in the order tables, panels and comparisons list them; unknown names follow.
OPTIMIZER_ORDER: tuple[str, ...] = ("radam", "adam", "adamw", "sgd")
OPTIMIZER_LABELS: dict[str, str] = {
    "radam": "RAdam",
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
}
WARMUP_ORDER: tuple[str, ...] = ("none", "linear", "untuned_linear", "untuned_exponential")

CellKey = tuple[str, float, str, int]  # optimizer, lr, warmup, warmup_steps


def optimizer_label(name: str) -> str:
    return OPTIMIZER_LABELS.get(name, name)


def warmup_label(warmup: str, warmup_steps: int) -> str:
    """Human words for a warmup setting, e.g. ``linear warmup (2000 steps)``."""
    if warmup == "none":
        return "no warmup"
    if warmup == "linear":
        return f"linear warmup ({warmup_steps} steps)"
    return warmup.replace("_", " ") + " warmup"


def warmup_short(warmup: str, warmup_steps: int) -> str:
    """A table's few characters for a warmup setting, e.g. ``linear 2000``."""
    if warmup == "linear":
        return f"linear {warmup_steps}"
    return {"untuned_exponential": "untuned exp"}.get(warmup, warmup.replace("_", " "))


def format_lr(lr: float) -> str:
    return f"{lr:g}"


def optimizer_rank(name: str) -> tuple[int, str]:
    return (OPTIMIZER_ORDER.index(name), "") if name in OPTIMIZER_ORDER else (99, name)


def warmup_rank(warmup: str, steps: int) -> tuple[int, str, int]:
    if warmup in WARMUP_ORDER:
        return (WARMUP_ORDER.index(warmup), "", steps)
    return (99, warmup, steps)


def cell_rank(key: CellKey) -> tuple[tuple[int, str], tuple[int, str, int], float]:
    optimizer, lr, warmup, steps = key
    return (optimizer_rank(optimizer), warmup_rank(warmup, steps), lr)


def decimals(metric: Metric) -> int:
    """Decimals the tables and sentences print a metric with: 1 for percent, else 3."""
    return 1 if metric.display_unit == "%" else 3


def is_accuracy(metric: Metric) -> bool:
    """Whether ``metric`` is test accuracy in percent (any failed level): such studies keep
    accuracy's words and column names (``final_acc_pct``)."""
    return metric.name == "test_acc" and metric.display_unit == "%"
