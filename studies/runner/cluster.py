"""The Ray side of a driver: the session (an embedded local Ray, or a cluster's address),
the checks of what the cluster can place, ``pack_size: auto`` decided for it, and SIGTERM
handled as Ctrl-C.

The embedded default is a local Ray (``ray.init(address="local")``, never someone else's
cluster) started and stopped here; with ``ray_address`` the driver connects to that cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

import ray

from studies.errors import ClusterError
from studies.spec import StudySpec
from studies.training.pack_plan import auto_pack_size


@contextlib.contextmanager
def ray_session(ray_address: str | None) -> Iterator[None]:
    """Connect to ``ray_address``, or start an embedded local Ray; leave an already
    initialised Ray (a test's, the caller's) as it is, and stop only one started here."""
    if ray.is_initialized():
        yield
        return
    try:
        if ray_address:
            ray.init(address=ray_address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    except Exception as exc:
        where = ray_address or "a local Ray"
        raise ClusterError(f"could not start or reach {where}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def check_cluster(spec: StudySpec) -> None:
    """Refuse up front a study whose trials the cluster cannot place (Tune would wait forever)."""
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    want = spec.resources_per_trial
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if want.gpu > 0 and gpus == 0:
        raise ClusterError(
            f"each trial asks for {want.gpu} GPU but the cluster has none; "
            "run with --set resources_per_trial.gpu=0 to train on CPUs"
        )
    if want.cpu > cpus:
        raise ClusterError(
            f"each trial asks for {want.cpu} CPUs but the cluster has {cpus:g}; "
            f"run with --set resources_per_trial.cpu={max(1, int(cpus))}"
        )


def resolve_pack_size(spec: StudySpec, *, pending: int) -> int:
    """The spec's ``pack_size``, with ``auto`` decided for this cluster: the pending grid
    points spread over the trials the cluster runs at once
    (``studies.training.pack_plan.auto_pack_size``).
    Optuna studies run one configuration per trial, and so do studies that ``unpacked_reason``
    names a reason for."""
    if spec.search.kind != "grid" or unpacked_reason(spec) is not None:
        return 1
    if spec.pack_size != "auto":
        return spec.pack_size
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    want = spec.resources_per_trial
    slots = int(float(available.get("CPU", 1)) // want.cpu)
    if want.gpu > 0:
        slots = min(slots, int(float(available.get("GPU", 0)) // want.gpu))
    if spec.max_concurrent_trials is not None:
        slots = min(slots, spec.max_concurrent_trials)
    return auto_pack_size(pending, slots=max(1, slots), gpu=want.gpu > 0)


def unpacked_reason(spec: StudySpec) -> str | None:
    """Why a study that asks for packs runs one trial per grid point, or None: packs need a
    workload with the classification loss and metric, and optimizers that
    ``radam.packed.PackedOptimizer`` steps (``studies.workloads.optimizers.PACKABLE``)."""
    from studies.workloads.optimizers import PACKABLE
    from studies.workloads.registry import get_workload

    if spec.pack_size == 1 or spec.search.kind != "grid":
        return None
    if not get_workload(spec.dataset).packable:
        return f"workload {spec.dataset!r} has its own loss or metric, which packs do not run"
    others = [name for name in spec.optimizers if name not in PACKABLE]
    if others:
        return f"packs step only {', '.join(sorted(PACKABLE))}, not {', '.join(others)}"
    return None


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``ray job stop``, a container stop) ends the study as Ctrl-C does: Tune saves
    its state and stops, and the study is left resumable."""
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
