"""Latency of the study API: POST /studies, and GET /studies/{id}/summary on a finished
1000-trial study. Targets: p99 at most 200 ms (POST) and 100 ms (GET summary).

Runs the real service (uvicorn, its own local Ray head, SQLite MLflow) in a home under
bench/results/. The 1000-trial study is written straight into MLflow through
``studies.tracking`` (trial runs, 10 epochs of metrics each) once, and reused on later runs.
Each timed POST submits a real Ray job, which is cancelled right after (untimed).

    .venv/bin/python bench/api_latency.py [--posts 30] [--gets 300]
"""

from __future__ import annotations

import argparse
import json
import os
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
    from studies.runner import trial_params
    from studies.spec import StudySpec

    spec = StudySpec.parse(thousand_trial_spec())
    assert spec.num_trials == 1000, spec.num_trials
    record = tracking.create_study(spec, tracking_uri=uri)
    tracking.set_study_status(record.study_id, "running", tracking_uri=uri)
    started = time.perf_counter()
    for i, cfg in enumerate(spec.trial_configs()):
        run_id = tracking.start_trial(
            record.study_id, cfg.key, params=trial_params(spec, cfg), tracking_uri=uri
        )
        acc = 0.5 + 0.4 * ((i * 7919) % 100) / 100
        epochs = range(1, EPOCHS + 1)
        history = {
            "train_loss": [1.0 / e for e in epochs],
            "test_loss": [1.1 / e for e in epochs],
            "test_acc": [acc * e / EPOCHS for e in epochs],
            "lr": [cfg.lr for _ in epochs],
        }
        tracking.log_history(run_id, history, tracking_uri=uri)
        tracking.end_trial(run_id, "finished", tracking_uri=uri, node="bench", train_seconds=1.0)
        if (i + 1) % 100 == 0:
            print(f"  wrote {i + 1} trials in {time.perf_counter() - started:.0f} s", flush=True)
    tracking.set_study_status(record.study_id, "succeeded", tracking_uri=uri)
    marker.write_text(record.study_id)
    return record.study_id


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=30, help="timed POSTs")
    parser.add_argument("--gets", type=int, default=300, help="timed GET summary requests")
    args = parser.parse_args()

    HOME.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{HOME / 'mlflow.db'}"
    os.environ.update({"ROBUSTNESS_HOME": str(HOME), "MLFLOW_TRACKING_URI": uri})
    print("building the finished 1000-trial study (once) ...", flush=True)
    study_id = build_finished_study(uri)

    from service.process import ServiceProcess

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
        posts: list[float] = []
        spec = {
            "name": "latency-post",
            "dataset": "digits",
            "model": "mlp",
            "optimizers": ["radam"],
            "learning_rates": [0.01],
            "epochs": 1,
        }
        for _ in range(args.posts):
            t0 = time.perf_counter()
            response = client.post("/studies", json=spec)
            posts.append(1000 * (time.perf_counter() - t0))
            assert response.status_code == 202, response.text
            client.post(f"/studies/{response.json()['id']}/cancel")

    summary_p = percentiles(gets)
    post_p = percentiles(posts)
    result = {
        "summary_cold_ms": round(cold_ms, 1),
        "summary_ms": {k: round(v, 1) for k, v in summary_p.items()},
        "post_ms": {k: round(v, 1) for k, v in post_p.items()},
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
