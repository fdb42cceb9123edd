"""``/workloads`` and ``/optimizers``: what this deployment can run (built-ins and installed
plugins; a plugin that fails to import is listed with its error, never a server error).

Sync routes (the thread pool): the first call imports the plugins, and a workload's data
status looks on disk.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import RuntimeDep
from service.schemas import OptimizerPublic, WorkloadPublic
from studies.workloads import catalog

router = APIRouter(tags=["catalog"])


@router.get("/workloads", response_model=list[WorkloadPublic])
def list_workloads(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return catalog.workload_rows(data_dir=runtime.settings.resolved_data_dir)


@router.get("/optimizers", response_model=list[OptimizerPublic])
def list_optimizers() -> list[dict[str, Any]]:
    return catalog.optimizer_rows()
