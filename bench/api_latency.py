"""Latency of the study API: POST /studies, and GET /studies/{id}/summary on a finished
1000-trial study. Targets: p99 at most 200 ms (POST) and 100 ms (GET summary).

Runs the real service (uvicorn, its own local Ray head, SQLite MLflow) in a home under
bench/results/. The 1000-trial study is written straight into MLflow through
``studies.tracking`` (trial runs, 10 epochs of metrics each) once and kept as a template
store; every run starts from a copy of it. Each timed POST submits a real Ray job, which is
cancelled right after (untimed). POSTs are timed in two conditions:

- settled (the target): each POST after the previous study's Ray job has ended;
- back to back: the next POST at once, while the previous study's job supervisor and driver
  (Ray worker processes importing Ray and torch) start and stop on the same cores. On a
  2-core machine that is CPU starvation more than the API; printed, with no target.

Each response's ``Server-Timing`` header says how much of the time was the service's own.

    .venv/bin/python bench/api_latency.py [--posts 60] [--gets 300] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOME = ROOT / "bench" / "results" / "api-latency-home"
EPOCHS = 10  # epochs of metrics per synthetic trial
POST_TARGET_MS = 200.0
SUMMARY_TARGET_MS = 100.0


def thousand_trial_spec() -> dict[str, object]:
    return {
        "name": "latency-1000",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "adam", "adamw", "sgd"],
        "learning_rates": [round(1e-4 * 1.4**i, 8) for i in range(25)],
        "seeds": list(range(10)),
        "epochs": EPOCHS,
    }


def build_finished_study(uri: str) -> str:
    """A succeeded 1000-trial study, written as the runner would write it."""
    marker = HOME / "study_id"
    if marker.exists():
        return marker.read_text().strip()
    from studies import tracking
    from studies.spec import StudySpec, trial_params

    spec = StudySpec.parse(thousand_trial_spec())
    assert spec.num_trials == 1000, spec.num_trials
    record = tracking.store_for(uri).create_study(spec)
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    started = time.perf_counter()
    for i, cfg in enumerate(spec.trial_configs()):
        run_id = tracking.store_for(uri).start_trial(
            record.study_id, cfg.key, params=trial_params(spec, cfg)
        )
        acc = 0.5 + 0.4 * ((i * 7919) % 100) / 100
        epochs = range(1, EPOCHS + 1)
        history = {
            "train_loss": [1.0 / e for e in epochs],
            "test_loss": [1.1 / e for e in epochs],
            "test_acc": [acc * e / EPOCHS for e in epochs],
            "lr": [cfg.lr for _ in epochs],
        }
        tracking.store_for(uri).log_history(run_id, history)
        tracking.store_for(uri).end_trial(run_id, "finished", node="bench", train_seconds=1.0)
        if (i + 1) % 100 == 0:
            print(f"  wrote {i + 1} trials in {time.perf_counter() - started:.0f} s", flush=True)
    tracking.store_for(uri).set_study_status(record.study_id, "succeeded")
    marker.write_text(record.study_id)
    return record.study_id


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def server_ms(response: httpx.Response) -> float:
    """The service's own time for a response, from its Server-Timing header."""
    timing = response.headers["server-timing"]  # app;dur=12.3
    return float(timing.split("dur=")[1])


def wait_job_ended(dashboard: str, job_id: str, *, timeout_s: float = 60.0) -> None:
    """Until Ray says the job ended (its driver and supervisor are on their way out)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    jobs = JobSubmissionClient(dashboard)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if jobs.get_job_status(job_id) in (
            JobStatus.STOPPED,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"Ray job {job_id} still running after {timeout_s} s")


def time_posts(
    client: httpx.Client, count: int, *, settle: bool, verbose: bool
) -> tuple[list[float], list[float]]:
    """``count`` timed POSTs of a one-trial study, each cancelled right after (untimed).
    With ``settle`` each waits until the previous study's Ray job has ended."""
    spec = {
        "name": "latency-post",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam"],
        "learning_rates": [0.01],
        "epochs": 1,
    }
    posts: list[float] = []
    in_app: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        response = client.post("/studies", json=spec)
        posts.append(1000 * (time.perf_counter() - t0))
        assert response.status_code == 202, response.text
        in_app.append(server_ms(response))
        if verbose:
            print(f"  POST {len(posts)}: {posts[-1]:.0f} ms ({in_app[-1]:.0f} in the app)")
        body = response.json()
        client.post(f"/studies/{body['id']}/cancel")
        if settle:
            wait_job_ended(body["links"]["ray_job"].split("/#/")[0], body["id"])
            time.sleep(0.5)  # the job's supervisor actor exits after the job
    return posts, in_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=60, help="timed POSTs, per condition")
    parser.add_argument("--gets", type=int, default=300, help="timed GET summary requests")
    parser.add_argument("--verbose", action="store_true", help="print each POST's latency")
    args = parser.parse_args()

    HOME.mkdir(parents=True, exist_ok=True)
    db = HOME / "mlflow.db"
    uri = f"sqlite:///{db}"
    os.environ.update({"ROBUSTNESS_HOME": str(HOME), "MLFLOW_TRACKING_URI": uri})
    print("building the finished 1000-trial study (once) ...", flush=True)
    study_id = build_finished_study(uri)
    # every run starts from the same store: the 1000-trial study and nothing else
    template = HOME / "template.db"
    if not template.exists():
        shutil.copyfile(db, template)
    shutil.copyfile(template, db)

    from service.processes.local_ray import enable_token_auth
    from service.processes.service_process import ServiceProcess

    enable_token_auth()  # the service's local head uses Ray's token auth: so does our client
    env = {
        "ROBUSTNESS_HOME": str(HOME),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_UI": "false",
        "RAY_ADDRESS": "",
        "RAY_NUM_CPUS": "2",
        "MAX_ACTIVE_STUDIES": "1000",
        "API_TOKEN": "",
    }
    print("starting the service ...", flush=True)
    with (
        ServiceProcess(env=env, log_path=HOME / "service.log") as service,
        httpx.Client(base_url=service.url, timeout=60.0) as client,
    ):
        t0 = time.perf_counter()
        first = client.get(f"/studies/{study_id}/summary")
        cold_ms = 1000 * (time.perf_counter() - t0)
        assert first.status_code == 200, first.text
        assert first.json()["trials_done"] == 1000
        gets: list[float] = []
        for _ in range(args.gets):
            t0 = time.perf_counter()
            response = client.get(f"/studies/{study_id}/summary")
            gets.append(1000 * (time.perf_counter() - t0))
            assert response.status_code == 200
        print("timing POSTs, each after the previous study's job ended ...", flush=True)
        settled, settled_app = time_posts(client, args.posts, settle=True, verbose=args.verbose)
        print("timing POSTs back to back ...", flush=True)
        burst, burst_app = time_posts(client, args.posts, settle=False, verbose=args.verbose)

    summary_p = percentiles(gets)
    post_p = percentiles(settled)
    burst_p = percentiles(burst)

    def rounded(p: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 1) for k, v in p.items()}

    result = {
        "summary_cold_ms": round(cold_ms, 1),
        "summary_ms": rounded(summary_p),
        "post_ms": rounded(post_p),
        "post_in_app_ms": rounded(percentiles(settled_app)),
        "post_back_to_back_ms": rounded(burst_p),
        "post_back_to_back_in_app_ms": rounded(percentiles(burst_app)),
        "gets": args.gets,
        "posts": args.posts,
    }
    print(json.dumps(result, indent=2))
    print(
        f"GET summary (1000 trials): p99 {summary_p['p99']:.1f} ms "
        f"(target <= {SUMMARY_TARGET_MS:.0f}): {'met' if summary_p['p99'] <= SUMMARY_TARGET_MS else 'MISSED'}"
    )
    print(
        f"POST /studies:             p99 {post_p['p99']:.1f} ms "
        f"(target <= {POST_TARGET_MS:.0f}): {'met' if post_p['p99'] <= POST_TARGET_MS else 'MISSED'}"
    )
    print(
        f"POST /studies back to back (the previous study's Ray processes still starting or "
        f"stopping on the same cores): p50 {burst_p['p50']:.1f} ms, p99 {burst_p['p99']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
