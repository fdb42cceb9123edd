"""A dashboard's reads under load, on a just-finished study: 50 clients x 20 requests each of
the list, the study, its trials (JSON and CSV), its summary and its figures, plus idempotent
POSTs (the same Idempotency-Key and spec: a replay, no new study). Target: 0 errors and p99 at
most 500 ms.

Runs the real service (uvicorn, its own local Ray head, SQLite MLflow) in a fresh home under
bench/results/load-home, runs a small digits study to its end through the API (a real Ray job,
real training), and starts the clients the moment it has succeeded: the first requests for
each figure are the ones that used to render it at once, each in its own request.

    .venv/bin/python bench/load.py [--clients 50] [--requests 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu_share import CpuShare  # noqa: E402  (bench/, beside this script)

HOME = ROOT / "bench" / "results" / "load-home"
P99_TARGET_MS = 500.0
SPEC = {
    "name": "load",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["adam", "radam", "sgd"],
    "learning_rates": [0.03, 0.01, 0.003],
    "seeds": [0],
    "epochs": 2,
    "batch_size": 64,
    "train_subset": 600,
}
KEY = "bench-load-study"


def reads(study_id: str) -> list[tuple[str, str]]:
    """One dashboard refresh: (method, path)."""
    base = f"/studies/{study_id}"
    return [
        ("GET", "/studies"),
        ("GET", base),
        ("GET", f"{base}/trials"),
        ("GET", f"{base}/trials?format=csv"),
        ("GET", f"{base}/summary"),
        ("GET", f"{base}/figures/figure6.png"),
        ("GET", f"{base}/figures/figure6.svg"),
        ("GET", f"{base}/figures/lr_sensitivity.png"),
        ("GET", f"{base}/figures/expected_max.png"),
        ("POST", "/studies"),
    ]


Row = tuple[str, float, int, float]  # path, ms, status, start (s since the clients' release)


def client_session(
    client: httpx.Client, study_id: str, n: int, offset: int, t0: float
) -> list[Row]:
    """``n`` requests, cycling through a refresh from ``offset``."""
    plan = reads(study_id)
    out: list[Row] = []
    with client:
        for i in range(n):
            method, path = plan[(offset + i) % len(plan)]
            started = time.perf_counter()
            try:
                if method == "POST":
                    response = client.post(path, json=SPEC, headers={"Idempotency-Key": KEY})
                else:
                    response = client.get(path)
                code = response.status_code
            except httpx.HTTPError:
                code = 0
            name = f"{method} {path.split(study_id)[-1] or path}"
            out.append((name, _ms(started), code, started - t0))
    return out


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per client")
    args = parser.parse_args()

    from service.processes.service_process import ServiceProcess

    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    env = {
        "ROBUSTNESS_HOME": str(HOME),
        "MLFLOW_TRACKING_URI": f"sqlite:///{HOME / 'mlflow.db'}",
        "MLFLOW_UI": "false",
        "RAY_ADDRESS": "",
        "API_TOKEN": "",
    }
    with ServiceProcess(env=env, log_path=HOME / "service.log") as service:
        with httpx.Client(base_url=service.url, timeout=120.0) as client:
            created = client.post("/studies", json=SPEC, headers={"Idempotency-Key": KEY})
            created.raise_for_status()
            study_id = created.json()["id"]
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                status = client.get(f"/studies/{study_id}").json()["status"]
                if status in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            if status != "succeeded":
                print(f"the study ended {status}; see {HOME / 'service.log'}")
                return 1
        print(f"study {study_id} succeeded; {args.clients} clients x {args.requests} requests")
        cpu = CpuShare().start()  # who had the 2 cores meanwhile (the tail's question)
        release = [0.0]  # when the last client was made and every one was let go
        barrier = threading.Barrier(
            args.clients, action=lambda: release.__setitem__(0, time.perf_counter())
        )

        def run(index: int) -> list[Row]:
            # Made before the release: an httpx.Client builds an SSL context (about 20 ms of
            # CPU, even for plain HTTP), and 50 of them made at the release were a second of
            # this process's CPU on the service's 2 cores, inside the burst it timed: every
            # client's first request waited up to ~1 s (bench/burst.py --client httpx). A new
            # client still opens a new connection at the release: it connects lazily.
            client = httpx.Client(base_url=service.url, timeout=120.0)
            barrier.wait()  # every client starts at once, as after a dashboard's reload
            return client_session(client, study_id, args.requests, index, release[0])

        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = [row for rows in pool.map(run, range(args.clients)) for row in rows]
        started = release[0]
        wall = time.perf_counter() - started
        cpu.stop()
        service_pid = service.pid

    errors = Counter(code for _, _, code, _ in results if code not in (200, 202))
    latencies = [ms for _, ms, _, _ in results]
    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    print(
        f"{len(results)} requests in {wall:.1f} s ({len(results) / wall:.0f}/s): "
        f"errors {sum(errors.values())} {dict(errors) or ''}"
    )
    print(
        f"latency ms: p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  max {max(latencies):.0f}  "
        f"mean {statistics.fmean(latencies):.0f}"
    )
    by_path: dict[str, list[float]] = {}
    for path, ms, _, _ in results:
        by_path.setdefault(path, []).append(ms)
    for path, samples in sorted(by_path.items()):
        print(
            f"  {path:38s} p50 {percentile(samples, 50):6.0f}  p99 {percentile(samples, 99):6.0f}"
        )
    # the first requests fill the caches (one query each, the rest wait for it): apart
    release = min(at for _, _, _, at in results)
    first = [ms for _, ms, _, at in results if at - release < 0.05]
    later = [ms for _, ms, _, at in results if at - release >= 0.05]
    if first and later:
        print(
            f"  started in the first 50 ms: {len(first)}, p50 {percentile(first, 50):.0f} "
            f"max {max(first):.0f}; the other {len(later)}: p50 {percentile(later, 50):.0f} "
            f"p99 {percentile(later, 99):.0f} max {max(later):.0f}"
        )
    slow = sorted(((ms, at, path) for path, ms, _, at in results), reverse=True)[:5]
    print("  slowest: " + ", ".join(f"{ms:.0f} ms at +{at:.2f} s ({p})" for ms, at, p in slow))
    _print_cpu(cpu, started, wall, slow, service_pid)
    ok = not errors and p99 <= P99_TARGET_MS
    print(f"target (0 errors, p99 <= {P99_TARGET_MS:.0f} ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def _print_cpu(
    cpu: CpuShare,
    started: float,
    wall: float,
    slow: list[tuple[float, float, str]],
    service_pid: int | None,
) -> None:
    """CPU seconds by process over the whole run and over the slowest request: a service that
    used little of the cores while a request waited was not what kept it waiting."""
    windows = [("the run", started, started + wall)]
    if slow:
        ms, at, _ = slow[0]
        windows.append(("the slowest request", started + at, started + at + ms / 1000.0))
    for label, start, end in windows:
        top = cpu.top(start, end, n=6)
        if not top:
            continue
        service = sum(s for name, s in top if name.split(" ", 1)[0] == str(service_pid))
        print(
            f"  CPU seconds over {label} ({end - start:.2f} s; service pid {service_pid}: "
            f"{service:.2f} s):"
        )
        for name, seconds in top:
            print(f"    {seconds:6.2f}  {name}")


if __name__ == "__main__":
    raise SystemExit(main())
