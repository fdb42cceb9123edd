"""``robustness reconcile``: one pass of the service's reconciler, from the command line.

Compares the active studies' records with their Ray jobs and fixes what disagrees, as the
running service does every few seconds (``service.reconciler``): a stopped job's study is
cancelled; a study whose driver died is resubmitted with resume (within ``MAX_RESTARTS``).
Ray is the service's: ``RAY_ADDRESS``, or on the embedded default the head recorded in the
home (``<home>/ray-head.json``), which must be running.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from service.core import StudyService
from service.jobs import StudyJobs
from service.processes.local_ray import enable_token_auth
from service.settings import Settings
from studies.errors import ClusterError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reconcile",
        help="settle studies whose Ray job ended or vanished (one reconciler pass)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)


def jobs_address(settings: Settings) -> str:
    if not settings.embedded:
        return settings.ray_address or ""
    record = settings.home / "ray-head.json"
    try:
        port = int(json.loads(record.read_text())["dashboard_port"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ClusterError(
            f"no Ray head is recorded in {settings.home} (is the service running?); a service "
            "started on this home reconciles its studies itself"
        ) from None
    return f"http://127.0.0.1:{port}"


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.embedded:
        enable_token_auth()
    jobs = StudyJobs(jobs_address(settings), job_env=settings.job_env())
    service = StudyService(settings, jobs=jobs)
    actions = service.reconcile()
    for study_id, done in actions:
        print(f"{study_id}: {done}")
    if not actions:
        print("nothing to reconcile: every active study's job is pending or running")
    return 0
