"""``/studies``: submit, list, read, trials, summary, figures, cancel."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from service.core import StudyView, eta_seconds, progress_counts, spec_total
from service.deps import Authorized, RuntimeDep
from service.errors import BadRequestError
from service.links import study_links
from service.runtime import Runtime
from service.schemas import (
    BestPublic,
    ErrorPublic,
    FigureFormat,
    FigureName,
    Progress,
    StudyBrief,
    StudyCreate,
    StudyList,
    StudyPublic,
    TrialPublic,
    TrialsFormat,
)
from studies.admission import check_trials
from studies.presets import apply_overrides, get_preset
from studies.results import StudyStatus, TrialRecord
from studies.spec import StudySpec, spec_error

router = APIRouter(prefix="/studies", tags=["studies"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
_MAX_KEY_LENGTH = 200  # characters of an Idempotency-Key

_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/StudyCreate"},
                        {"$ref": "#/components/schemas/StudySpec"},
                    ]
                },
                "examples": {
                    "preset": {"value": {"preset": "figure6-quick", "overrides": {"epochs": 1}}},
                },
            }
        },
    }
}


def _first_non_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN/Infinity in a parsed JSON document."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "body"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first_non_finite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def parse_study_body(raw: bytes, *, max_trials: int) -> StudySpec:
    """A spec from a POST body: a full spec, or a preset and overrides; parsed once, then
    admitted (the trial limit is this deployment's, not the spec's)."""
    return check_trials(_parse_body(raw), limit=max_trials)


def _parse_body(raw: bytes) -> StudySpec:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise BadRequestError(
            "the body must be a JSON object: a study spec, or {preset, overrides}", field="body"
        )
    bad = _first_non_finite(data)
    if bad:
        raise BadRequestError(f"{bad}: numbers must be finite (no NaN or Infinity)", field=bad)
    if "preset" in data:
        from pydantic import ValidationError

        try:
            request = StudyCreate.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc) from None
        return apply_overrides(get_preset(request.preset), request.overrides)
    return StudySpec.parse(data)


def _best(trials: list[TrialRecord]) -> BestPublic | None:
    scored = [t for t in trials if t.best_acc is not None]
    if not scored:
        return None
    t = max(scored, key=lambda t: t.best_acc or 0.0)
    return BestPublic(
        trial_id=t.trial_id,
        optimizer=t.optimizer,
        lr=t.lr,
        warmup=t.warmup,
        warmup_steps=t.warmup_steps,
        seed=t.seed,
        best_acc=t.best_acc or 0.0,
        epochs_done=t.epochs_done,
    )


def _brief(view: StudyView, runtime: Runtime) -> StudyBrief:
    record = view.record
    return StudyBrief(
        id=record.study_id,
        name=record.name,
        status=view.status,
        num_trials=spec_total(record),
        created_at=record.created_at,
        updated_at=record.updated_at,
        error=view.error,
        restarts=record.restarts,
        links=study_links(
            record, mlflow_ui=runtime.mlflow_ui_url, ray_dashboard=runtime.ray_dashboard
        ),
    )


def _public(view: StudyView, runtime: Runtime) -> StudyPublic:
    record = view.record
    trials = view.trials or []
    total = spec_total(record)
    counts = progress_counts(trials, total=total, study_ended=view.status.terminal)
    return StudyPublic(
        **_brief(view, runtime).model_dump(exclude={"links"}),
        links=study_links(
            record,
            mlflow_ui=runtime.mlflow_ui_url,
            ray_dashboard=runtime.ray_dashboard,
            trials=trials,
        ),
        spec=record.spec,
        progress=Progress(**counts),
        best=_best(trials),
        eta_seconds=eta_seconds(record, view.status, done=counts["done"], total=counts["total"]),
        replayed=view.replayed,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyPublic,
    responses=_ERRORS,
    dependencies=[Authorized],
    openapi_extra=_POST_BODY,
    summary="Submit a study (a full spec, or a preset with overrides)",
)
async def create_study(
    request: Request,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=_MAX_KEY_LENGTH)] = None,
) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    raw = await request.body()
    spec = parse_study_body(raw, max_trials=runtime.settings.max_trials)
    view = await run_in_threadpool(
        runtime.studies.create, spec, idempotency_key=idempotency_key or None
    )
    body = _public(view, runtime)
    code = status.HTTP_200_OK if view.replayed else status.HTTP_202_ACCEPTED
    return JSONResponse(
        body.model_dump(mode="json"), status_code=code, headers={"Location": body.links.self}
    )


@router.get("", response_model=StudyList, responses=_ERRORS, summary="List studies (paged)")
def list_studies(
    runtime: RuntimeDep,
    status_: Annotated[StudyStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StudyList:
    limit = min(limit, runtime.settings.page_limit)
    views = runtime.studies.page(status=status_, limit=limit, offset=offset)
    if status_ is not None:  # Ray may have corrected a record's status
        views = [v for v in views if v.status == status_]
    return StudyList(
        items=[_brief(v, runtime) for v in views], limit=limit, offset=offset, status=status_
    )


@router.get("/{study_id}", response_model=StudyPublic, responses=_ERRORS)
def get_study(study_id: str, runtime: RuntimeDep) -> StudyPublic:
    return _public(runtime.studies.get(study_id), runtime)


@router.get(
    "/{study_id}/trials",
    response_model=list[TrialPublic],
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}}},
    summary="The study's trials (JSON, or CSV with ?format=csv)",
)
def get_trials(
    study_id: str,
    runtime: RuntimeDep,
    format_: Annotated[TrialsFormat, Query(alias="format")] = TrialsFormat.json,
) -> Response:
    if format_ is TrialsFormat.csv:
        return Response(
            runtime.studies.trials_csv(study_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{study_id}-trials.csv"'},
        )
    trials = runtime.studies.trials(study_id)
    body = [
        TrialPublic(
            trial_id=t.trial_id,
            optimizer=t.optimizer,
            lr=t.lr,
            warmup=t.warmup,
            warmup_steps=t.warmup_steps,
            seed=t.seed,
            status=t.status,
            epochs_done=t.epochs_done,
            final_acc=t.final_acc,
            best_acc=t.best_acc,
            train_seconds=t.train_seconds,
            node=t.node,
            run_id=t.run_id,
            history=t.history,
        ).model_dump(mode="json")
        for t in trials
    ]
    return JSONResponse(body)


@router.get(
    "/{study_id}/summary",
    responses={**_ERRORS, 200: {"content": {"application/json": {}}}},
    summary="The robustness summary (partial while trials remain)",
)
def get_summary(study_id: str, runtime: RuntimeDep) -> Response:
    summary = runtime.studies.summary(study_id)
    return Response(summary.to_json(indent=None), media_type="application/json")


@router.get(
    "/{study_id}/figures/{name}.{fmt}",
    responses={**_ERRORS, 200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
    response_class=Response,
    summary="A figure: figure6, lr_sensitivity, expected_max or warmup, as png or svg",
)
def get_figure(study_id: str, name: FigureName, fmt: FigureFormat, runtime: RuntimeDep) -> Response:
    data = runtime.studies.figure(study_id, name, fmt)
    media = "image/png" if fmt is FigureFormat.png else "image/svg+xml"
    return Response(data, media_type=media)


@router.post(
    "/{study_id}/cancel",
    response_model=StudyPublic,
    responses=_ERRORS,
    dependencies=[Authorized],
    summary="Cancel a queued or running study",
)
def cancel_study(study_id: str, runtime: RuntimeDep) -> StudyPublic:
    view = runtime.studies.cancel(study_id)
    return _public(runtime.studies.get(view.record.study_id), runtime)
