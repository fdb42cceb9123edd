"""One way to run a helper process: start it (in a session of its own, so it and what it
starts form one group), poll it healthy, stop it (SIGTERM, a grace period, then SIGKILL to
the group), or stop one by its recorded pid. Used by the embedded Ray head, the MLflow UI and
the service as a child process (``ServiceProcess``: the tests and ``quickstart``), and by
the tests' stand-in for the compose stack (Postgres, an MLflow server, Ray nodes).

Only ever the processes we started: a pid is signalled only while it is our child, or (for
``stop_pid``) after the caller checked it is still the process it recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from studies.errors import RobustnessError


def spawn(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    new_session: bool = True,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` (in ``cwd``), its output appended to ``log_path`` (else discarded)."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("ab") if log_path is not None else None
    try:
        return subprocess.Popen(
            list(command),
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
            cwd=cwd,
        )
    finally:
        if out is not None:
            out.close()


def wait_healthy(
    process: subprocess.Popen[bytes],
    probe: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    error: type[RobustnessError],
    log_path: Path | None = None,
    interval_s: float = 0.5,
) -> None:
    """Until ``probe()`` is true; ``error`` if the process exits first or time runs out.
    A probe that raises counts as not yet."""
    deadline = time.monotonic() + timeout_s
    see = f"; see {log_path}" if log_path is not None else ""
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{what} exited with code {process.returncode} while starting{see}")
        try:
            if probe():
                return
        except Exception as exc:  # not up yet: connection refused, 503 while starting
            last = exc
        time.sleep(interval_s)
    reason = f": {last}" if last is not None else ""
    raise error(f"{what} did not come up in {timeout_s:.0f} s{reason}{see}")


def stop_process(
    process: subprocess.Popen[bytes] | None,
    *,
    grace_s: float,
    term_group: bool = True,
    term_signal: signal.Signals = signal.SIGTERM,
) -> int | None:
    """``term_signal`` (SIGTERM; SIGINT is Postgres's fast shutdown) to its whole group, or
    with ``term_group=False`` to it alone, for a process that stops its own children in
    order, as ``ray start`` does; up to ``grace_s`` for it to exit, then SIGKILL to it and its
    group (what it started in its session goes too). Its exit code; None if never started."""
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if term_group:
                os.killpg(process.pid, term_signal)
            else:
                process.send_signal(term_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    if process.poll() is None:
        process.kill()
    # what is left of its session (a process started without one has no such group)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    return process.returncode


def stop_pid(pid: int, *, grace_s: float) -> None:
    """Stop a process we did not start as a child (a head a previous service left): SIGTERM,
    wait for it to go, then SIGKILL its group. The caller checked the pid is that process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def kill_naming(marks: Sequence[str]) -> None:
    """SIGKILL every process whose command line contains one of ``marks`` (a temp dir or an
    address only processes we started name): what left its session, as Ray's daemons may."""
    needles = [mark.encode() for mark in marks if mark]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if any(needle in raw for needle in needles):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.split(") ", 1)[-1].startswith("Z")


def cmdline(pid: int) -> list[str]:
    """A process's arguments (empty if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
