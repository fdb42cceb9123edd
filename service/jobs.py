"""Studies as Ray Jobs: submit, look up, stop, list (``ray.job_submission`` only).

A study's job has the study id as its submission id and runs the same runner as
``robustness run`` (``<this python> -m studies run --study-id ID``). The spec is not in the
command line: the runner reads it from MLflow. The entrypoint is built from the interpreter's
path and a service-generated hex id only, so no request value reaches a shell.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

from studies.errors import ClusterError
from studies.status import ACTIVE_JOB_STATES

JobState = Literal["PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED", "MISSING"]
ACTIVE_STATES = ACTIVE_JOB_STATES
JOB_METADATA = {"robustness": "study"}  # marks our jobs on a shared cluster

AGENT_WAIT_S = 60.0  # seconds to wait for a fresh head's job agent
_STUDY_ID = re.compile(r"^[0-9a-f]{8,64}$")


def brief(text: str | None, *, limit: int = 500) -> str | None:
    """Ray's messages carry logs and tracebacks; keep the first line and the last meaningful
    one (the error), so no trace reaches a response or a record."""
    if not text:
        return text
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() not in ("", ".") and not line.startswith((" ", "\t", "Traceback"))
    ]
    if not lines:
        return None
    kept = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return kept if len(kept) <= limit else kept[: limit - 3] + "..."


@dataclass(frozen=True)
class JobInfo:
    state: JobState
    message: str | None = None


def entrypoint(study_id: str, *, resume: bool = False) -> str:
    if not _STUDY_ID.fullmatch(study_id):  # ids are ours (hex); refuse anything else
        raise ClusterError(f"refusing to submit a job for the study id {study_id!r}")
    # inside a Ray Job, "auto" is the job's own cluster (Ray sets RAY_ADDRESS for the driver)
    command = f"{sys.executable} -m studies run --study-id {study_id} --ray-address auto"
    return command + " --resume" if resume else command


def job_id(study_id: str, attempt: int = 0) -> str:
    """The Ray job id of a study's ``attempt``-th submission (0: the study id itself)."""
    return study_id if attempt == 0 else f"{study_id}-r{attempt}"


class StudyJobs:
    """A thin, typed layer over ``JobSubmissionClient`` that raises ``ClusterError``."""

    def __init__(self, address: str, *, job_env: dict[str, str]) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        self._job_env = job_env
        try:
            self._client = JobSubmissionClient(address)
        except Exception as exc:  # connection refused, auth, version mismatch
            raise ClusterError(f"cannot reach the Ray Jobs API at {address}: {exc}") from exc

    def submit(self, study_id: str, *, resume: bool = False, attempt: int = 0) -> None:
        """Submit the study's driver. Attempt 0's job id is the study id; a resubmission gets
        its own (``<study id>-r<attempt>``): Ray keeps an ended job's supervisor actor name
        for a while, so reusing the id fails with ActorAlreadyExistsError."""
        command = entrypoint(study_id, resume=resume)
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                self._client.submit_job(
                    entrypoint=command,
                    submission_id=job_id(study_id, attempt),
                    runtime_env={"env_vars": dict(self._job_env)},
                    metadata={**JOB_METADATA, "study_id": study_id, "attempt": str(attempt)},
                )
                return
            except Exception as exc:
                # a head that just started answers before its job agent has registered
                if "No available agent" in str(exc) and time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
                raise ClusterError(
                    f"Ray refused the job of study {study_id}: {brief(str(exc))}"
                ) from exc

    def info(self, study_id: str) -> JobInfo:
        """The state of the study's latest job (MISSING when the cluster has none)."""
        return self.states().get(
            study_id, JobInfo("MISSING", "the Ray cluster has no job for this study")
        )

    def _latest_jobs(self) -> dict[str, tuple[int, Any]]:
        """Each study's latest job (its highest attempt), by study id, in one call."""
        try:
            jobs = self._client.list_jobs()
        except Exception as exc:
            raise ClusterError(
                f"cannot list the Ray jobs at {self.address}: {brief(str(exc))}"
            ) from exc
        latest: dict[str, tuple[int, Any]] = {}
        for job in jobs:
            meta = job.metadata or {}
            if not job.submission_id or meta.get("robustness") != "study":
                continue
            study_id = meta.get("study_id", job.submission_id)
            attempt = int(meta.get("attempt", "0"))
            if study_id not in latest or attempt > latest[study_id][0]:
                latest[study_id] = (attempt, job)
        return latest

    def states(self) -> dict[str, JobInfo]:
        """Every study's latest job state, by study id (one call)."""
        return {
            study_id: JobInfo(str(job.status.value), brief(job.message))  # type: ignore[arg-type]
            for study_id, (_, job) in self._latest_jobs().items()
        }

    def active_count(self) -> int:
        return sum(1 for info in self.states().values() if info.state in ACTIVE_STATES)

    def stop(self, study_id: str) -> bool:
        """Stop the study's latest job; False when it has none or it had ended."""
        entry = self._latest_jobs().get(study_id)
        if entry is None:
            return False
        try:
            return bool(self._client.stop_job(job_id(study_id, entry[0])))
        except Exception as exc:
            if "does not exist" in str(exc):
                return False
            raise ClusterError(
                f"cannot stop the job of study {study_id}: {brief(str(exc))}"
            ) from exc

    def ping(self) -> None:
        try:
            self._client.list_jobs()
        except Exception as exc:
            raise ClusterError(
                f"the Ray Jobs API at {self.address} does not answer: {brief(str(exc))}"
            ) from exc
