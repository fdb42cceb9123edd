"""Headless Chromium for what a person sees in a browser: the DOM after the page's scripts ran.

Debian's ``chromium-headless-shell`` (or ``chromium``), run with a fresh profile, no sandbox
(tests run as root in CI), and no way out to the network: every host but loopback resolves
to nothing, so a page that needs a CDN shows it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

BROWSERS = ("chromium-headless-shell", "chromium")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no headless Chromium (Debian's chromium-headless-shell; scripts/test_deps.sh, run by "
        "`make test`, installs it as root)"
    )


def _run(url: str, action: list[str], *, budget_ms: int, timeout_s: float, window: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            f"--user-data-dir={profile}",  # fresh: no remembered MLflow UI state
            f"--window-size={window}",
            f"--virtual-time-budget={budget_ms}",
            *action,
            url,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    if result.returncode != 0:
        raise AssertionError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(
    url: str, *, budget_ms: int = 15_000, timeout_s: float = 120.0, window: str = "1600,1200"
) -> str:
    """The rendered DOM of ``url`` once ``budget_ms`` of virtual time has passed (the page's
    JavaScript runs, fetches and renders in that time)."""
    return _run(url, ["--dump-dom"], budget_ms=budget_ms, timeout_s=timeout_s, window=window)


def screenshot(
    url: str,
    path: Path,
    *,
    budget_ms: int = 15_000,
    timeout_s: float = 120.0,
    window: str = "1600,1200",
) -> Path:
    """A PNG of what ``url`` shows in a ``window``-sized browser after ``budget_ms``: for a
    person to look at (the tests assert on the DOM)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    action = [f"--screenshot={path}"]
    _run(url, action, budget_ms=budget_ms, timeout_s=timeout_s, window=window)
    if not path.is_file():
        raise AssertionError(f"chromium wrote no screenshot of {url}")
    return path


def page_text(dom: str) -> str:
    """What a person reads on the page: the DOM without scripts, styles and tags."""
    dom = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
