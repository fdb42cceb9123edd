"""The reconciler: one loop, in the service's lifespan, that settles what Ray and the records
disagree on (``StudyService.reconcile``: a stopped job -> cancelled; a dead driver ->
resubmitted with resume, within ``max_restarts``). It runs once at start (a restarted service
resumes what its predecessor left) and then every ``reconcile_interval_s`` seconds, so a
study whose driver died is resumed whether or not anyone reads it; reads never write.

``robustness reconcile`` runs one pass from the command line.
"""

from __future__ import annotations

import logging
import threading

from service.core import StudyService
from studies.errors import RobustnessError

log = logging.getLogger("service")


class Reconciler:
    """A daemon thread calling ``service.reconcile()``; ``stop`` waits for the pass it is in."""

    def __init__(self, service: StudyService, *, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed passes (for /readyz and tests)

    def run_once(self) -> list[tuple[str, str]]:
        """One pass; a failure (Ray or MLflow down) is logged, and the next pass tries again."""
        try:
            actions = self.service.reconcile()
        except RobustnessError as exc:
            log.warning("reconciler: %s", exc)
            return []
        except Exception:  # the loop must outlive any one study's surprise
            log.exception("reconciler: unexpected error")
            return []
        finally:
            self.passes += 1
        for study_id, done in actions:
            log.info("reconciler: study %s %s", study_id, done)
        return actions

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)

    def stop(self, *, timeout_s: float = 30.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=timeout_s)
