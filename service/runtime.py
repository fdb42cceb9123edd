"""What the service runs on, started and stopped with it: Ray (a cluster's Jobs API, or a
local head of its own, reattached to if a previous service left it running), the MLflow UI
(embedded default), the study service over both, and its reconciler loop."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from service.core import StudyService
from service.jobs import StudyJobs
from service.processes.local_ray import LocalRayHead
from service.processes.mlflow_ui import MlflowUi
from service.reconciler import Reconciler
from service.settings import Settings
from studies import paths, tracking
from studies.errors import RobustnessError
from studies.results import StudyStatus

log = logging.getLogger("service")


@dataclass
class Runtime:
    settings: Settings
    head: LocalRayHead | None = None
    ui: MlflowUi | None = None
    jobs: StudyJobs | None = None
    service: StudyService | None = None
    reconciler: Reconciler | None = None
    resumed: list[str] = field(default_factory=list)

    @property
    def ray_dashboard(self) -> str | None:
        if self.head is not None:
            return self.head.dashboard_url
        address = self.settings.ray_address or ""
        return address if address.startswith(("http://", "https://")) else None

    @property
    def mlflow_ui_url(self) -> str | None:
        if self.settings.mlflow_ui_url:
            return self.settings.mlflow_ui_url
        return self.ui.url if self.ui is not None else None

    @property
    def studies(self) -> StudyService:
        if self.service is None:
            raise RuntimeError("the service is not started")
        return self.service

    def start(self) -> None:
        settings = self.settings
        # the engine's defaults (paths.home(), data_dir(), mlflow_uri()) follow the settings
        os.environ.update(settings.local_env())
        settings.home.mkdir(parents=True, exist_ok=True)
        logs = settings.home / "logs"
        try:
            if settings.embedded and settings.mlflow_ui and not settings.mlflow_ui_url:
                # the store's tables exist before a second process opens it
                tracking.store_for(settings.tracking_uri).list_studies(limit=1)
                # started first and not waited for: it comes up while Ray does
                self.ui = MlflowUi(
                    tracking_uri=settings.tracking_uri,
                    artifacts_dir=paths.artifacts_dir(),
                    log_dir=logs,
                )
                self.ui.start()
                log.info("MLflow UI starting at %s", self.ui.url)
            if settings.embedded:
                self.head = LocalRayHead(
                    num_cpus=settings.ray_num_cpus,
                    log_dir=logs,
                    niceness=settings.ray_niceness,
                    record=settings.home / "ray-head.json",
                )
                self.head.start(timeout_s=settings.ray_start_timeout_s)
                log.info(
                    "local Ray head at %s (pid %s%s)",
                    self.head.gcs_address,
                    self.head.pid,
                    ", reattached" if self.head.reattached else "",
                )
                address = self.head.dashboard_url
            else:
                address = settings.ray_address or ""
            self.jobs = StudyJobs(address, job_env=settings.job_env())
            self.service = StudyService(settings, jobs=self.jobs)
            self.reconciler = Reconciler(self.service, interval_s=settings.reconcile_interval_s)
            # the first pass before serving: a restarted service resumes what it left
            actions = self.reconciler.run_once()
            self.resumed = [i for i, done in actions if done.startswith("resumed")]
            if self.resumed:
                log.info("resumed studies whose jobs had ended or vanished: %s", self.resumed)
            self.reconciler.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.reconciler is not None:  # first: it must not resubmit what is being stopped
            self.reconciler.stop()
            self.reconciler = None
        suspended: list[tuple[str, StudyStatus]] = []
        if self.head is not None and self.service is not None:
            # the head goes down with the service: leave its studies resumable, not cancelled
            try:
                suspended = self.service.suspend()
            except RobustnessError as exc:
                log.warning("could not suspend the running studies: %s", exc)
        if self.ui is not None:
            self.ui.stop()
            self.ui = None
        if self.head is not None:
            self.head.stop()
            self.head = None
        if suspended and self.service is not None:
            self.service.unsuspend(suspended)
            log.info("suspended %s; the next start resumes them", [i for i, _ in suspended])
