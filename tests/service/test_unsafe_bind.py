"""A service started without ``robustness serve`` (uvicorn straight on 0.0.0.0) and without
an API token: requests that reach it on a non-loopback address may read but not submit or
cancel; over loopback it works as usual."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import digits_spec, service_env

from service.processes.service_process import ServiceProcess

pytestmark = pytest.mark.slow


def outward_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    candidates: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family=socket.AF_INET)
        candidates += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    try:  # the address the default route would leave from (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            candidates.append(str(probe.getsockname()[0]))
    except OSError:
        pass
    for candidate in candidates:
        if not ipaddress.ip_address(candidate).is_loopback:
            return candidate
    return None


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        env=service_env(home, ROBUSTNESS_MAX_ACTIVE_STUDIES="1"),
        log_path=home / "service.log",
        host="0.0.0.0",
    )
    process.start(timeout_s=240)
    try:
        yield process
    finally:
        process.stop()


def test_writes_beyond_loopback_need_a_token(service: ServiceProcess) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    outside = f"http://{address}:{service.port}"
    with httpx.Client(base_url=outside, timeout=60.0) as client:
        assert client.get("/healthz").status_code == 200  # reading is allowed
        assert client.get("/studies").status_code == 200
        refused = client.post("/studies", json=digits_spec(name="outside"))
        assert refused.status_code == 403, refused.text
        assert "API_TOKEN" in refused.json()["detail"]
        assert refused.json()["field"] == "Authorization"
        cancel = client.post(f"/studies/{'0' * 32}/cancel")
        assert cancel.status_code == 403, cancel.text
        assert client.get("/studies").json()["items"] == []  # nothing was created


def test_loopback_writes_without_a_token(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=60.0) as client:
        created = client.post("/studies", json=digits_spec(name="inside"))
        assert created.status_code == 202, created.text
        cancelled = client.post(f"/studies/{created.json()['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
