"""What this deployment can run, as plain rows: ``workload_rows`` (each workload: its plugin,
models, metric and direction, data status, or the error of a broken plugin) and
``optimizer_rows`` (each optimizer: where it comes from, the spec hyperparameters it takes,
whether packs step it). Read by ``GET /workloads``, ``GET /optimizers`` and the CLI's
``robustness workloads`` / ``robustness optimizers``.
"""

from __future__ import annotations

import os
from typing import Any

from studies.workloads import optimizers, registry


def workload_rows(*, data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One row per workload, built-ins first; a broken plugin's row has its ``error``."""
    rows: list[dict[str, Any]] = []
    for entry, workload in registry.workload_entries():
        row: dict[str, Any] = {
            "name": entry.name,
            "plugin": entry.plugin,
            "entry_point": entry.target,
            "error": entry.error,
            "description": "",
            "models": [],
            "metric": None,
            "images": False,
            "packable": False,
            "data": None,
        }
        if workload is not None:
            row |= {
                "description": workload.description,
                "models": list(workload.models),
                "metric": workload.metric.model_dump(),
                "images": workload.images,
                "packable": workload.packable,
            }
            try:
                status = registry.data_status(entry.name, data_dir=data_dir)
                row["data"] = {"found": status.found, "where": status.where, "hint": status.hint}
            except Exception as exc:  # a plugin's status that raises is reported, not raised
                row["data"] = {"found": False, "where": "", "hint": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
    return rows


def optimizer_rows() -> list[dict[str, Any]]:
    """One row per optimizer: the project's four, torch.optim's, then plugins'."""
    names = list(optimizers.optimizer_names())
    for name in sorted(registry._plugins("optimizer")):  # broken plugins are listed too
        if name not in names:
            names.append(name)
    return [optimizers.describe_optimizer(name) for name in names]


def workloads_text(rows: list[dict[str, Any]]) -> str:
    """The CLI's table of workloads."""
    lines = []
    for row in rows:
        if row["error"]:
            lines.append(f"{row['name']}  BROKEN ({row['plugin']}): {row['error']}")
            continue
        metric = row["metric"]
        data = row["data"] or {}
        where = data.get("where") if data.get("found") else "data missing: " + data.get("hint", "")
        lines.append(
            f"{row['name']}  [{row['plugin']}]  models: {', '.join(row['models'])}  "
            f"metric: {metric['name']} ({metric['unit']}, {metric['direction']} is better)  "
            f"{where}"
        )
        if row["description"]:
            lines.append(f"    {row['description']}")
    return "\n".join(lines)


def optimizers_text(rows: list[dict[str, Any]]) -> str:
    """The CLI's table of optimizers."""
    lines = []
    for row in rows:
        if row["error"]:
            lines.append(f"{row['name']}  BROKEN ({row['source']}): {row['error']}")
            continue
        packs = "packs" if row["packable"] else "unpacked"
        lines.append(
            f"{row['name']:<14} [{row['source']}]  {packs}  takes: {', '.join(row['parameters'])}"
        )
    return "\n".join(lines)
