"""The stack's Ray topology on loopback, without Docker: a head that runs no trials and two
workers, separate ``ray start`` processes with token auth, as the compose file starts them.

Checked: the workers join the head; tasks run on the workers, never on the head (it offers no
CPU); a Ray Job (how the API submits a study) runs its driver on the head through the Jobs API
with the token; a client with the wrong token is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from deploy_stack import RayCluster

pytestmark = pytest.mark.slow

PROBE = """
import json, ray
ray.init(address="{address}", log_to_driver=False)
head = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("node:__internal_head__")]

@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()

placed = ray.get([where.remote() for _ in range(4)])
print(json.dumps({{
    "alive": sum(n["Alive"] for n in ray.nodes()),
    "cpus": ray.cluster_resources().get("CPU", 0),
    "head": head,
    "placed": placed,
}}))
"""

JOB = """
import json, time
from ray.job_submission import JobStatus, JobSubmissionClient
client = JobSubmissionClient("{url}")
job = client.submit_job(entrypoint="{python} -c 'print(\\"driver ran\\")'")
deadline = time.monotonic() + 180
while client.get_job_status(job) not in {{JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}}:
    if time.monotonic() > deadline:
        break
    time.sleep(1)
print(json.dumps([str(client.get_job_status(job).value), client.get_job_logs(job)]))
"""


@pytest.fixture
def cluster(ray_cluster: RayCluster) -> RayCluster:
    return ray_cluster


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workers_join_and_trials_run_only_on_workers(cluster: RayCluster) -> None:
    result = _python(PROBE.format(address=cluster.address), cluster.env)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["alive"] == 3
    assert probe["cpus"] == 2  # the workers' two; the head offers none
    assert len(probe["head"]) == 1
    assert probe["head"][0] not in probe["placed"]
    assert len(set(probe["placed"])) >= 1


def test_a_job_submitted_with_the_token_runs_its_driver(cluster: RayCluster) -> None:
    # As the API does: the Jobs API on the dashboard port, the token from the environment.
    result = _python(JOB.format(url=cluster.dashboard_url, python=sys.executable), cluster.env)
    assert result.returncode == 0, result.stderr[-3000:]
    status, logs = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == "SUCCEEDED", logs
    assert "driver ran" in logs


def test_a_client_with_the_wrong_token_is_refused(cluster: RayCluster) -> None:
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": "0" * 64}
    result = _python(
        f'import ray; ray.init(address="{cluster.address}"); print("connected")', wrong
    )
    assert result.returncode != 0
    assert "connected" not in result.stdout
