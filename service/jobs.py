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
from typing import Literal

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

    def submit(self, study_id: str, *, resume: bool = False) -> None:
        command = entrypoint(study_id, resume=resume)
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                self._client.submit_job(
                    entrypoint=command,
                    submission_id=study_id,
                    runtime_env={"env_vars": dict(self._job_env)},
                    metadata=dict(JOB_METADATA),
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
        try:
            details = self._client.get_job_info(study_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return JobInfo("MISSING", "the Ray cluster has no job for this study")
            raise ClusterError(
                f"cannot read the job of study {study_id}: {brief(str(exc))}"
            ) from exc
        except Exception as exc:
            raise ClusterError(
                f"cannot read the job of study {study_id}: {brief(str(exc))}"
            ) from exc
        return JobInfo(str(details.status.value), brief(details.message))  # type: ignore[arg-type]

    def states(self) -> dict[str, JobInfo]:
        """Every study job the cluster knows, by study id (one call)."""
        try:
            jobs = self._client.list_jobs()
        except Exception as exc:
            raise ClusterError(
                f"cannot list the Ray jobs at {self.address}: {brief(str(exc))}"
            ) from exc
        out: dict[str, JobInfo] = {}
        for job in jobs:
            if job.submission_id and (job.metadata or {}).get("robustness") == "study":
                out[job.submission_id] = JobInfo(str(job.status.value), brief(job.message))  # type: ignore[arg-type]
        return out

    def active_count(self) -> int:
        return sum(1 for info in self.states().values() if info.state in ACTIVE_STATES)

    def stop(self, study_id: str) -> bool:
        try:
            return bool(self._client.stop_job(study_id))
        except Exception as exc:
            if "does not exist" in str(exc):
                return False
            raise ClusterError(
                f"cannot stop the job of study {study_id}: {brief(str(exc))}"
            ) from exc

    def delete(self, study_id: str) -> None:
        """Forget an ended job (its id, the study id, is then free for a resubmission)."""
        try:
            self._client.delete_job(study_id)
        except Exception as exc:
            if "does not exist" in str(exc):
                return
            raise ClusterError(
                f"cannot delete the ended job of study {study_id}: {brief(str(exc))}"
            ) from exc

    def ping(self) -> None:
        try:
            self._client.list_jobs()
        except Exception as exc:
            raise ClusterError(
                f"the Ray Jobs API at {self.address} does not answer: {brief(str(exc))}"
            ) from exc
