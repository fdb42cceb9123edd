"""Headless Chromium for what a person sees in a browser: the DOM after the page's scripts ran.

Debian's ``chromium-headless-shell`` (or ``chromium``), run with a fresh profile, no sandbox
(tests run as root in CI), and no way out to the network: every host but loopback resolves
to nothing, so a page that needs a CDN shows it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

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


def dump_dom(url: str, *, budget_ms: int = 15_000, timeout_s: float = 120.0) -> str:
    """The rendered DOM of ``url`` once ``budget_ms`` of virtual time has passed (the page's
    JavaScript runs, fetches and renders in that time)."""
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
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    if result.returncode != 0:
        raise AssertionError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout
