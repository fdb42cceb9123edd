"""``/docs`` and ``/redoc`` work without internet: their JavaScript and CSS come from the
installed packages, and headless Chromium, with every host but loopback unresolvable, renders
the operations."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import browser, dump_dom

from service.app import create_app
from service.processes.local_ray import free_port
from service.settings import Settings


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app on a real uvicorn; Ray is not started (the docs do not need it)."""
    home = tmp_path_factory.mktemp("docs-home")
    settings = Settings(robustness_home=home, mlflow_ui=False)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, start=False), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_docs_pages_load_only_local_assets(base_url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(base_url + page).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis" not in html, page
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            if asset in html:
                response = httpx.get(f"{base_url}/docs-assets/{asset}")
                assert response.status_code == 200 and len(response.content) > 100_000, asset


def test_swagger_ui_renders_the_operations_offline(base_url: str) -> None:
    browser()
    dom = dump_dom(f"{base_url}/docs")

    # one block per operation, each with its path, rendered by Swagger UI's script
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/studies", "/studies/{study_id}/summary", "/presets", "/healthz"} <= shown


def test_redoc_renders_the_operations_offline(base_url: str) -> None:
    browser()
    dom = dump_dom(f"{base_url}/redoc")

    assert "Submit a study" in dom  # an operation's summary, rendered by ReDoc's script
    assert "/studies/{study_id}/cancel" in dom
