"""``/docs`` (Swagger UI) and ``/redoc`` served from files installed with the package.

FastAPI's defaults load Swagger UI's and ReDoc's JavaScript from a CDN, which a machine
without internet (and many GPU clusters) cannot reach: the page stays blank. The same files
ship in the ``fastapi-offline`` wheel (``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js``); they are mounted under ``/docs-assets`` and FastAPI's own page
builders point at them, as FastAPI's "self-hosting JavaScript and CSS for docs" recipe does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def assets_dir() -> Path:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("fastapi-offline is not installed; it carries the docs' assets")
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, its OAuth2 redirect and ``/redoc``; create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not added too."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
