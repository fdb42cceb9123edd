"""A burst of new clients on a just-finished study: N clients (default 50) open their own
connection at the same instant and each sends R requests (default 20) of a dashboard's reads
(presets, the list, the study, its trials as JSON and CSV, its summary, four figures) and a
replayed POST (same Idempotency-Key and spec: no new study). Target: 0 errors, p99 <= 500 ms.

Unlike ``load.py`` (httpx, one thread per client), the clients here are raw HTTP/1.1 on
asyncio in this one process: a client costs next to no CPU, and each request's time is split
into connect (TCP handshake, first request of a connection only), waiting for the first byte,
and what the service says it took itself (``Server-Timing``). A request that waits long for
its first byte while the app took little was held before the app: in the kernel's accept
queue, or on a stalled event loop.

Two ways to run it:

* ``.venv/bin/python bench/burst.py`` starts ``robustness serve`` (the real CLI, with its
  own local Ray head, SQLite MLflow and the MLflow UI) in a fresh home under bench/results/,
  runs a small digits study through the API to its end, and bursts the moment it succeeded;
  ``--rounds K`` repeats study + burst K times on the same service (each burst on a study that
  has just finished: its reads are cold).
* ``--url URL [--token T] [--study-id ID]`` bursts a service that is already running (the
  compose stack's API container, say): with no study id it submits the same small study and
  waits for it; the token (or ``API_TOKEN`` from the environment) goes on every request.

    .venv/bin/python bench/burst.py [--clients 50] [--requests 20] [--rounds 3]
    .venv/bin/python bench/burst.py --url http://127.0.0.1:8000 --token "$API_TOKEN"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOME = ROOT / "bench" / "results" / "burst-home"
P99_TARGET_MS = 500.0
SPEC = {
    "name": "burst",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["adam", "radam", "sgd"],
    "learning_rates": [0.03, 0.01, 0.003],
    "seeds": [0],
    "epochs": 2,
    "batch_size": 64,
    "train_subset": 600,
}


def plan(study_id: str, *, replay: bool) -> list[tuple[str, str]]:
    """One dashboard refresh: (method, path). Clients start at different places in it. The
    POST replays the study's own submission (its Idempotency-Key), so it creates nothing."""
    base = f"/studies/{study_id}"
    steps = [
        ("GET", "/presets"),
        ("GET", "/studies"),
        ("GET", base),
        ("GET", f"{base}/trials"),
        ("GET", f"{base}/trials?format=csv"),
        ("GET", f"{base}/summary"),
        ("GET", f"{base}/figures/figure6.png"),
        ("GET", f"{base}/figures/figure6.svg"),
        ("GET", f"{base}/figures/lr_sensitivity.png"),
        ("GET", f"{base}/figures/expected_max.png"),
    ]
    return [*steps, ("POST", "/studies")] if replay else steps


@dataclass
class Row:
    first: bool  # a connection's first request
    path: str
    status: int
    start_s: float  # since the release
    connect_ms: float  # the TCP handshake (0 on a reused connection)
    first_byte_ms: float  # from sending the request to the response's first byte
    total_ms: float  # from the start (connect included) to the last byte
    app_ms: float | None  # Server-Timing: the app's own time


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], float]:
    """Status, headers, and when the first byte came; the body is read and dropped."""
    first = await reader.readexactly(1)
    first_at = time.perf_counter()
    head = first + await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers, first_at


def _app_ms(headers: dict[str, str]) -> float | None:
    for part in headers.get("server-timing", "").split(","):
        for item in part.split(";"):
            if item.strip().startswith("dur="):
                return float(item.strip()[4:])
    return None


async def client(
    host: str,
    port: int,
    host_header: str,
    steps: list[tuple[str, str]],
    token: str | None,
    key: str | None,
    release: asyncio.Event,
    t0: list[float],
) -> list[Row]:
    await release.wait()
    rows: list[Row] = []
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    body = json.dumps(SPEC).encode()
    try:
        for method, path in steps:
            started = time.perf_counter()
            connect_ms = 0.0
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    connect_ms = (time.perf_counter() - started) * 1000
                assert reader is not None
                lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}"]
                if token:
                    lines.append(f"Authorization: Bearer {token}")
                payload = b""
                if method == "POST":
                    payload = body
                    lines += ["Content-Type: application/json", f"Idempotency-Key: {key}"]
                lines.append(f"Content-Length: {len(payload)}")
                sent = time.perf_counter()
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                status, headers, first_at = await _read_response(reader)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
                app_ms = _app_ms(headers)
                first_byte_ms = (first_at - sent) * 1000
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, app_ms, first_byte_ms = 0, None, 0.0
                if writer is not None:
                    writer.close()
                reader = writer = None
            done = time.perf_counter()
            name = _label(method, path)
            rows.append(
                Row(
                    connect_ms > 0,
                    name,
                    status,
                    started - t0[0],
                    connect_ms,
                    first_byte_ms,
                    (done - started) * 1000,
                    app_ms,
                )
            )
    finally:
        if writer is not None:
            writer.close()
    return rows


async def burst(
    url: str, study_id: str, key: str | None, token: str | None, clients: int, requests: int
) -> tuple[list[Row], float]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme != "http":
        raise SystemExit("the burst speaks plain HTTP/1.1 (put a TLS proxy's backend URL)")
    steps = plan(study_id, replay=key is not None)
    release = asyncio.Event()
    t0 = [0.0]
    tasks = [
        asyncio.create_task(
            client(
                host,
                port,
                parts.netloc,
                [steps[(index + i) % len(steps)] for i in range(requests)],
                token,
                key,
                release,
                t0,
            )
        )
        for index in range(clients)
    ]
    await asyncio.sleep(0.05)  # every client is waiting on the release
    t0[0] = time.perf_counter()
    release.set()
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0[0]
    return [row for rows in results for row in rows], wall


def _label(method: str, path: str) -> str:
    name = path.split("?")[0].rsplit("/", 1)[-1] if "/studies/" in path else path
    return f"{method} {name}{'?csv' if 'format=csv' in path else ''}"


def threads_burst(
    url: str,
    study_id: str,
    key: str | None,
    token: str | None,
    clients: int,
    requests: int,
    *,
    ready: bool,
) -> tuple[list[Row], float]:
    """The burst from a thread per client with its own ``httpx.Client``: made once released
    (``ready=False``, as ``load.py`` did: each client's set-up, an SSL context of about 20 ms of
    CPU even for plain HTTP, falls inside the burst), or before it (``ready=True``). Total and
    app times only (no connect split)."""
    steps = plan(study_id, replay=key is not None)
    barrier = threading.Barrier(clients + 1)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    t0 = [0.0]

    def one(index: int) -> list[Row]:
        http = httpx.Client(base_url=url, timeout=120.0, headers=headers) if ready else None
        barrier.wait()
        http = http or httpx.Client(base_url=url, timeout=120.0, headers=headers)
        out: list[Row] = []
        with http:
            for i in range(requests):
                method, path = steps[(index + i) % len(steps)]
                started = time.perf_counter()
                try:
                    if method == "POST":
                        response = http.post(
                            path, json=SPEC, headers={"Idempotency-Key": key or ""}
                        )
                    else:
                        response = http.get(path)
                    status, app_ms = response.status_code, _app_ms(dict(response.headers))
                except httpx.HTTPError:
                    status, app_ms = 0, None
                total = (time.perf_counter() - started) * 1000
                row = Row(
                    i == 0, _label(method, path), status, started - t0[0], 0, 0, total, app_ms
                )
                out.append(row)
        return out

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(one, index) for index in range(clients)]
        barrier.wait()
        t0[0] = time.perf_counter()
        rows = [row for future in futures for row in future.result()]
    return rows, time.perf_counter() - t0[0]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(rows: list[Row], wall: float) -> bool:
    errors = Counter(r.status for r in rows if r.status not in (200, 202))
    total = [r.total_ms for r in rows]
    p50, p95, p99 = (percentile(total, q) for q in (50, 95, 99))
    print(
        f"  {len(rows)} requests in {wall:.2f} s ({len(rows) / wall:.0f}/s), "
        f"errors {sum(errors.values())} {dict(errors) or ''}"
    )
    print(
        f"  latency ms: p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  max {max(total):.0f}  "
        f"mean {statistics.fmean(total):.0f}"
    )
    firsts = [r for r in rows if r.first]
    later = [r for r in rows if not r.first]
    for label, group in (("first request (new connection)", firsts), ("later requests", later)):
        if not group:
            continue
        t = [r.total_ms for r in group]
        connect = [r.connect_ms for r in group]
        app = [r.app_ms for r in group if r.app_ms is not None]
        print(
            f"  {label:31s} n {len(group):4d}  p50 {percentile(t, 50):5.0f}  "
            f"p99 {percentile(t, 99):5.0f}  max {max(t):5.0f}  | connect max "
            f"{max(connect):5.0f}  | app p99 {percentile(app, 99) if app else 0:5.0f}"
        )
    by_path: dict[str, list[Row]] = {}
    for r in rows:
        by_path.setdefault(r.path, []).append(r)
    for path, group in sorted(by_path.items()):
        t = [r.total_ms for r in group]
        app = [r.app_ms for r in group if r.app_ms is not None]
        print(
            f"    {path:28s} p50 {percentile(t, 50):5.0f}  p99 {percentile(t, 99):5.0f}  "
            f"max {max(t):5.0f}  (app p50 {percentile(app, 50) if app else 0:4.0f} "
            f"max {max(app) if app else 0:5.0f})"
        )
    slow = sorted(rows, key=lambda r: -r.total_ms)[:5]
    print("  slowest (start, connect / first byte / app / total ms):")
    for r in slow:
        app = f"{r.app_ms:.0f}" if r.app_ms is not None else "-"
        print(
            f"    +{r.start_s:.3f} s {r.path:28s} {r.connect_ms:5.0f} / {r.first_byte_ms:5.0f}"
            f" / {app:>5s} / {r.total_ms:5.0f}"
        )
    return not errors and p99 <= P99_TARGET_MS


def finished_study(url: str, token: str | None, *, key: str) -> str:
    """Submit the small study (or find it by its key) and wait until it has succeeded."""
    headers = {"Idempotency-Key": key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=url, timeout=120.0) as http:
        created = http.post("/studies", json=SPEC, headers=headers)
        created.raise_for_status()
        study_id: str = created.json()["id"]
        deadline = time.monotonic() + 900
        status = "queued"
        while time.monotonic() < deadline:
            status = http.get(f"/studies/{study_id}").json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
    if status != "succeeded":
        raise SystemExit(f"the study {study_id} ended {status}")
    return study_id


class Serve:
    """``robustness serve`` in a fresh home, as a user starts it (access log and all)."""

    def __init__(self, port: int, extra_env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "ROBUSTNESS_HOME": str(HOME),
            "MLFLOW_TRACKING_URI": f"sqlite:///{HOME / 'mlflow.db'}",
            "RAY_ADDRESS": "",
            "API_TOKEN": "",
            **extra_env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Serve:
        from service import supervise
        from studies.errors import ClusterError

        log = HOME / "service.log"
        command = [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)]
        self.process = supervise.spawn(command, env=self.env, log_path=log, new_session=False)
        supervise.wait_healthy(
            self.process,
            lambda: httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200,
            timeout_s=240,
            what="robustness serve",
            error=ClusterError,
            log_path=log,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        from service import supervise

        supervise.stop_process(self.process, grace_s=90.0, term_group=False)


_TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")


def tcp_counters() -> dict[str, int]:
    """The kernel's count of SYNs dropped at a full accept queue and of SYNs sent again
    (Linux, machine-wide): a connection whose SYN was dropped waits the 1 s initial RTO."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return {name: int(table.get(name, 0)) for name in _TCP_COUNTERS}
    return {}


class Spy:
    """``py-spy record`` of the service's threads (raw collapsed stacks, not pausing the
    process) over one burst, for where its time went."""

    def __init__(self, pid: int | None, out: Path, seconds: int) -> None:
        self.pid, self.out, self.seconds = pid, out, seconds
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if self.pid is not None:
            command = [spy, "record", "--pid", str(self.pid), "--rate", "250", "--threads"]
            command += ["--nonblocking", "--format", "raw", "--output", str(self.out)]
            command += ["--duration", str(self.seconds)]
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            time.sleep(1.5)  # attached before the release
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.wait()
            print(f"  py-spy: {self.out}")


def _uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--rounds", type=int, default=3, help="study + burst, this many times")
    parser.add_argument("--url", help="a running service (default: start robustness serve)")
    parser.add_argument("--token", default=os.environ.get("API_TOKEN") or None)
    parser.add_argument("--study-id", help="burst this finished study (with --url)")
    parser.add_argument(
        "--key", help="the Idempotency-Key that submitted --study-id (else no replayed POSTs)"
    )
    parser.add_argument(
        "--client",
        nargs="+",
        choices=("raw", "httpx", "httpx-ready"),
        default=["raw"],
        help="raw: HTTP/1.1 on asyncio (default); httpx: a thread and an httpx.Client per "
        "client, made at the release (the clients' own set-up inside the burst); httpx-ready: "
        "the same clients made before it. Several: the rounds take them in turn",
    )
    parser.add_argument("--py-spy", action="store_true", help="record the service's stacks")
    parser.add_argument("--py-spy-pid", type=int, help="with --url: the service's pid to record")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the service it starts (without --url)",
    )
    args = parser.parse_args()

    def rounds(url: str, token: str | None, spy_pid: int | None = None) -> bool:
        ok = True
        for n in range(args.rounds):
            key: str | None = args.key
            if args.study_id:
                study_id = args.study_id
            else:
                key = f"bench-burst-{time.time_ns()}"
                study_id = finished_study(url, token, key=key)
            print(
                f"round {n + 1}: study {study_id} succeeded; {args.clients} clients x "
                f"{args.requests} requests; load average {_uptime()}"
            )
            before = tcp_counters()
            spy_out = ROOT / "bench" / "results" / f"burst-py-spy-{n + 1}.txt"
            with Spy(spy_pid, spy_out, seconds=6):  # the burst's first 6 s
                client = args.client[n % len(args.client)]
                print(f"  client: {client}")
                if client.startswith("httpx"):
                    rows, wall = threads_burst(
                        url,
                        study_id,
                        key,
                        token,
                        args.clients,
                        args.requests,
                        ready=client == "httpx-ready",
                    )
                else:
                    rows, wall = asyncio.run(
                        burst(url, study_id, key, token, args.clients, args.requests)
                    )
            after = tcp_counters()
            ok = report(rows, wall) and ok
            if after:
                deltas = ", ".join(f"{k} +{after[k] - before.get(k, 0)}" for k in after)
                print(f"  kernel TCP counters over the burst (machine-wide): {deltas}")
        return ok

    if args.url:
        ok = rounds(args.url.rstrip("/"), args.token, args.py_spy_pid)
    else:
        from service.local_ray import free_port

        shutil.rmtree(HOME, ignore_errors=True)
        HOME.mkdir(parents=True)
        extra = dict(item.split("=", 1) for item in args.env)
        with Serve(free_port(), extra) as service:
            assert service.process is not None
            ok = rounds(service.url, None, service.process.pid if args.py_spy else None)
    print(
        f"target (0 errors, p99 <= {P99_TARGET_MS:.0f} ms in every round): "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
