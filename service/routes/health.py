"""``/healthz`` (the process answers) and ``/readyz`` (Ray and MLflow answer too)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.deps import RuntimeDep
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


_ALIVE = Health(status="alive").model_dump_json().encode()


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    # on the event loop: a probe must not queue for the thread pool behind the reads
    return Response(_ALIVE, media_type="application/json")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    ray_state, mlflow_state = runtime.studies.ready()
    ok = ray_state == "ok" and mlflow_state == "ok"
    body = Readiness(
        status="ready" if ok else "unavailable",
        ray=ray_state,
        mlflow=mlflow_state,
        ray_address=runtime.ray_dashboard or runtime.settings.ray_address,
        mlflow_ui=runtime.mlflow_ui_url,
        mlflow_ui_state=runtime.ui.state() if runtime.ui is not None else None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
