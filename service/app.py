"""The FastAPI application: routes, the body-size limit, and the one place where the
project's exceptions become HTTP errors (a message naming the field; never a stack trace)."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from service.docs_ui import install_docs
from service.errors import (
    BadRequestError,
    FigureNotAvailableError,
    IdempotencyConflictError,
    TooManyStudiesError,
    UnauthorizedError,
)
from service.routes import catalog, health, presets, studies
from service.runtime import Runtime
from service.settings import Settings, retired_names
from studies.errors import (
    ClusterError,
    DatasetNotFoundError,
    RobustnessError,
    SpecError,
    StudyNotFoundError,
    StudyStateError,
    TrackingError,
    UnknownPresetError,
)
from studies.spec import StudySpec

log = logging.getLogger("service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by header or as they stream in."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {
                "detail": f"the request body is over the limit of {self.max_bytes} bytes",
                "field": "body",
            },
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


class ServerTiming:
    """Say in a ``Server-Timing`` header how long the service took over each response (from
    the request reaching the app to the response starting), so a slow request can be told
    apart from a slow network or client; browsers' developer tools show it too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took_ms = 1000 * (time.perf_counter() - started)
                headers = list(message.get("headers") or [])
                headers.append((b"server-timing", f"app;dur={took_ms:.1f}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, timed_send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _error(status: int, detail: str, *, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


def _status_of(exc: RobustnessError, request: Request) -> int:
    if isinstance(exc, UnknownPresetError):
        return 404 if request.method == "GET" else 422
    if isinstance(exc, BadRequestError):
        return 400
    if isinstance(exc, SpecError | IdempotencyConflictError):
        return 422
    if isinstance(exc, StudyNotFoundError | FigureNotAvailableError):
        return 404
    if isinstance(exc, StudyStateError):
        return 409
    if isinstance(exc, DatasetNotFoundError | ClusterError | TrackingError):
        return 503
    return 500


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the OpenAPI document gives ``path`` (a 405's ``Allow``): Starlette names
    only the methods of the first route that matched the path."""
    methods: set[str] = set()
    for template, item in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {m.upper() for m in item if m in _HTTP_METHODS}
    return sorted(methods)


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RobustnessError)
    async def domain_error(request: Request, exc: RobustnessError) -> JSONResponse:
        if isinstance(exc, TooManyStudiesError):
            return _error(429, str(exc), **{"Retry-After": str(exc.retry_after_s)})
        if isinstance(exc, UnauthorizedError):
            if exc.wrong:
                return _error(403, str(exc), field="Authorization")
            return _error(401, str(exc), field="Authorization", **{"WWW-Authenticate": "Bearer"})
        status = _status_of(exc, request)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return _error(status, str(exc), field=getattr(exc, "field", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        reasons, fields = [], []
        for err in errors:
            loc = [
                str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")
            ]
            where = ".".join(loc) or "body"
            fields.append(where)
            reasons.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(
            422, "; ".join(reasons) or "invalid request", field=fields[0] if fields else None
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return _error(exc.status_code, str(exc.detail), **headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # logged with its traceback here; the client gets a message, never the trace
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the service log")


def installed_enums(components: dict[str, Any]) -> None:
    """The names a POST accepts, as enums of what is installed here (the workloads that
    import, the union of their models, the optimizers, the presets): the schema says what the
    service takes, not "any string". Built when the document is first asked for."""
    from studies.presets import PRESETS
    from studies.workloads import optimizers, registry

    working = [w for _, w in registry.workload_entries() if w is not None]
    models = sorted({m for w in working for m in w.models})
    spec = components["StudySpec"]["properties"]
    spec["dataset"]["enum"] = [w.name for w in working]
    spec["model"]["enum"] = models
    spec["optimizers"]["items"]["enum"] = list(optimizers.optimizer_names())
    preset = components.get("StudyCreate", {}).get("properties", {}).get("preset")
    if isinstance(preset, dict):
        preset["enum"] = list(PRESETS)


def create_app(settings: Settings | None = None, *, start: bool = True) -> FastAPI:
    """The app; with ``start`` its lifespan starts Ray (and the MLflow UI) and stops them."""
    settings = settings or Settings()
    for warning in retired_names():  # set, but no longer read: say so rather than ignore it
        log.warning(warning)
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start:
            await run_in_threadpool(runtime.start)
        # Everything loaded so far (torch, MLflow, Ray, pydantic: about 430k objects) lives as
        # long as the process. Moved out of the collector's sight, a full collection scans only
        # what requests made: measured with a gc probe during bench/api_latency.py, full
        # collections paused requests for 75-330 ms before, and none took over 30 ms after.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="RAdam robustness studies",
        version="0.1.0",
        description="Submit optimizer x learning-rate x warmup x seed studies; they run as Ray "
        "Jobs on Ray Tune, recorded in MLflow; read progress, robustness summaries and figures.",
        lifespan=lifespan,
        docs_url=None,  # served from packaged files, not a CDN: service.docs_ui
        redoc_url=None,
    )
    install_docs(app)
    app.state.runtime = runtime
    app.include_router(health.router)
    app.include_router(presets.router)
    app.include_router(catalog.router)
    app.include_router(studies.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServerTiming)  # added last: the outermost, so it times everything

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["StudySpec"] = StudySpec.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            for name, sub in components["StudySpec"].pop("$defs", {}).items():
                components.setdefault(name, sub)
            from service.schemas import StudyCreate

            components.setdefault("StudyCreate", StudyCreate.model_json_schema())
            installed_enums(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
