"""``/studies``: submit, list, read, trials, summary, figures, cancel."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

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
from service.views import StudyView, eta_seconds, figure_part, progress_counts, spec_total
from studies.admission import check_trials
from studies.presets import apply_overrides, get_preset
from studies.results import StudyStatus, TrialRecord
from studies.spec import StudySpec, spec_error
from studies.spec_parts import DATASETS, OPTIMIZERS
from studies.status import COUNTED_TRIAL
from studies.workloads import registry

router = APIRouter(prefix="/studies", tags=["studies"])
T = TypeVar("T")

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
    return registry.admit(check_trials(_parse_body(raw), limit=max_trials))


def _names_builtin(raw: bytes) -> bool:
    """Whether a body names only built-in workloads and optimizers, whose check imports
    nothing (a quick look; "no" costs only a thread-pool hop). Unparsable: the parse refuses
    it, without an import."""
    try:
        data = json.loads(raw)
    except ValueError:
        return True
    if not isinstance(data, dict):
        return True
    names: list[Any] = []
    for part in (data, data.get("overrides")):
        if isinstance(part, dict):
            names.append(part.get("dataset"))
            optimizers = part.get("optimizers")
            names += optimizers if isinstance(optimizers, list) else []
    return all(not isinstance(name, str) or name in _BUILTIN_NAMES for name in names)


_BUILTIN_NAMES = frozenset((*DATASETS, *OPTIMIZERS))


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


def _brief(view: StudyView, runtime: Runtime, *, has_results: bool = True) -> StudyBrief:
    """``has_results``: a trial has finished (a list reads no trials: its figures are the
    study's by design)."""
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
            record,
            mlflow_ui=runtime.mlflow_ui_url,
            ray_dashboard=runtime.ray_dashboard,
            has_results=has_results,
        ),
    )


def _public(view: StudyView, runtime: Runtime) -> StudyPublic:
    record = view.record
    trials = view.trials or []
    total = spec_total(record)
    counts = progress_counts(trials, total=total, study_ended=view.status.terminal)
    return StudyPublic(
        **dict(_brief(view, runtime, has_results=any(t.status in COUNTED_TRIAL for t in trials))),
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
    responses={
        **_ERRORS,
        200: {
            "model": StudyPublic,
            "description": "a replay: the Idempotency-Key's study, already created",
        },
    },
    dependencies=[Authorized],
    openapi_extra=_POST_BODY,
    summary="Submit a study (a full spec, or a preset with overrides)",
)
async def create_study(
    request: Request,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=_MAX_KEY_LENGTH)] = None,
) -> JSONResponse:
    raw = await request.body()
    if _names_builtin(raw):  # the built-ins are checked without an import: no hop
        spec = parse_study_body(raw, max_trials=runtime.settings.max_trials)
    else:  # a plugin or torch.optim name: its first check imports it, off the event loop
        spec = await run_in_threadpool(
            parse_study_body, raw, max_trials=runtime.settings.max_trials
        )
    view = runtime.studies.replay_from_memory(spec, idempotency_key) if idempotency_key else None
    if view is None:
        view = await run_in_threadpool(
            runtime.studies.create, spec, idempotency_key=idempotency_key or None
        )
    body = _public(view, runtime)
    code = status.HTTP_200_OK if view.replayed else status.HTTP_202_ACCEPTED
    return JSONResponse(
        body.model_dump(mode="json"), status_code=code, headers={"Location": body.links.self}
    )


@router.get("", response_model=StudyList, responses=_ERRORS, summary="List studies (paged)")
async def list_studies(
    runtime: RuntimeDep,
    status_: Annotated[StudyStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    limit = min(limit, runtime.settings.page_limit)

    def render(views: list[StudyView]) -> bytes:
        if status_ is not None:  # Ray may have corrected a record's status
            views = [v for v in views if v.status == status_]
        items = [_brief(v, runtime) for v in views]
        page = StudyList(items=items, limit=limit, offset=offset, status=status_)
        return page.model_dump_json().encode()

    studies = runtime.studies
    body = studies.cached_page_body(status=status_, limit=limit, offset=offset)
    if body is None:
        body = await run_in_threadpool(
            studies.page_body, status=status_, limit=limit, offset=offset, render=render
        )
    return Response(body, media_type="application/json")


# The reads below are async: a finished study's answer is kept in memory (service.read_cache)
# and sent from the event loop; anything that needs a query goes to the thread pool. On one
# process under 50 clients, threads contending for the GIL were the tail (bench/load.py).


async def _answer(
    study_id: str, name: str, runtime: Runtime, make: Callable[[], T]
) -> T | bytes | str:
    cached = runtime.studies.cached(study_id, name)
    if cached is not None:
        return cached
    return await run_in_threadpool(make)


@router.get("/{study_id}", response_model=StudyPublic, responses=_ERRORS)
async def get_study(study_id: str, runtime: RuntimeDep) -> Response:
    def make() -> bytes:
        return runtime.studies.rendered(
            study_id, "study.json", lambda view: _public(view, runtime).model_dump_json().encode()
        )

    return Response(
        await _answer(study_id, "study.json", runtime, make), media_type="application/json"
    )


@router.get(
    "/{study_id}/trials",
    response_model=list[TrialPublic],
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}}},
    summary="The study's trials (JSON, or CSV with ?format=csv)",
)
async def get_trials(
    study_id: str,
    runtime: RuntimeDep,
    format_: Annotated[TrialsFormat, Query(alias="format")] = TrialsFormat.json,
) -> Response:
    studies = runtime.studies
    if format_ is TrialsFormat.csv:
        text = await _answer(study_id, "trials.csv", runtime, lambda: studies.trials_csv(study_id))
        return Response(
            text,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{study_id}-trials.csv"'},
        )

    def make() -> bytes:
        return studies.rendered(study_id, "trials.json", _trials_json)

    return Response(
        await _answer(study_id, "trials.json", runtime, make), media_type="application/json"
    )


def _trials_json(view: StudyView) -> bytes:
    rows = [
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
            repeat=t.repeat,
            sample=t.sample,
            history=t.history,
        ).model_dump(mode="json")
        for t in view.trials or []
    ]
    return bytes(JSONResponse(rows).body)


@router.get(
    "/{study_id}/summary",
    responses={**_ERRORS, 200: {"content": {"application/json": {}}}},
    summary="The robustness summary (partial while trials remain)",
)
async def get_summary(study_id: str, runtime: RuntimeDep) -> Response:
    body = await _answer(
        study_id, "summary.json", runtime, lambda: runtime.studies.summary_json(study_id)
    )
    return Response(body, media_type="application/json")


@router.get(
    "/{study_id}/figures/{name}.{fmt}",
    responses={**_ERRORS, 200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
    response_class=Response,
    summary="A figure: figure6, lr_sensitivity, expected_max or warmup, as png or svg",
)
async def get_figure(
    study_id: str, name: FigureName, fmt: FigureFormat, runtime: RuntimeDep
) -> Response:
    data = await _answer(
        study_id,
        figure_part(name, fmt),
        runtime,
        lambda: runtime.studies.figure(study_id, name, fmt),
    )
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
