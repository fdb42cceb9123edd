"""``robustness quickstart``: the README's main job in one command.

Gets the preset's dataset first if it is not there (``robustness data fetch``: torchvision's
download, else Debian's package as root), then brings the service up on the embedded default (a
local Ray head, SQLite MLflow and its UI, all on loopback), POSTs the ``figure6-quick`` preset, follows it, prints the robustness table and
where the figures and the MLflow comparison are, and shuts everything down (``--keep-serving``
keeps the service, and so the links, up until Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from types import FrameType
from typing import Any

import httpx

from service.processes.service_process import ServiceProcess
from studies import paths
from studies.analysis.summary import StudySummary
from studies.analysis.tables import format_table
from studies.cli.run import add_override_option
from studies.errors import ClusterError, DatasetNotFoundError
from studies.presets import DEFAULT_PRESET, apply_overrides, get_preset, parse_override
from studies.status import StudyStatus
from studies.workloads import sources

POLL_S = 2.0  # seconds between progress reads


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "quickstart",
        help="serve, submit figure6-quick, follow it, print the table and links",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preset to submit")
    add_override_option(parser)
    parser.add_argument(
        "--keep-serving", action="store_true", help="keep the service up until Ctrl-C"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (timeout, a container stop) cleans up as Ctrl-C does


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    overrides = dict(parse_override(text) for text in args.overrides)
    started = time.monotonic()
    dataset = apply_overrides(get_preset(args.preset), overrides).dataset
    try:
        where = sources.fetch(dataset, say=_say)
    except DatasetNotFoundError as exc:
        _say(f"the study needs {dataset}, which could not be fetched: {exc}")
        return 1
    _say(f"data: {where.describe()}")
    log_path = paths.ensure_home() / "logs" / "quickstart-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _say(f"starting the service (Ray head, MLflow UI) ... log: {log_path}")
    service = ServiceProcess(port=args.port, log_path=log_path)
    with service:
        _say(f"service at {service.url} (OpenAPI at {service.url}/docs)")
        with httpx.Client(base_url=service.url, timeout=60.0) as client:
            code = follow(client, preset=args.preset, overrides=overrides)
            if code == 0 and not args.keep_serving:
                _say("(the service and the MLflow UI stop now; --keep-serving keeps the links up)")
            if args.keep_serving and code == 0:
                _say("serving; Ctrl-C to stop")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        _say("stopping the service ...")
    _say(f"done in {time.monotonic() - started:.0f} s")
    return code


def follow(client: httpx.Client, *, preset: str, overrides: dict[str, Any]) -> int:
    response = client.post("/studies", json={"preset": preset, "overrides": overrides})
    if response.status_code >= 400:
        _say(f"the service refused the study: {response.status_code} {response.text}")
        return 2
    study = response.json()
    study_id = study["id"]
    _say(f"submitted {preset}: study {study_id}, {study['num_trials']} trials")
    last = ""
    while True:
        study = _get(client, f"/studies/{study_id}")
        p = study["progress"]
        best = study.get("best")
        line = (
            f"  {study['status']}: {p['done']}/{p['total']} trials done, {p['running']} "
            f"running, {p['diverged']} diverged, {p['failed']} failed"
        )
        if best:
            line += f"; best {100 * best['best_acc']:.1f}% ({best['optimizer']} lr {best['lr']:g})"
        if line != last:  # print when the counts or the best change, not every poll
            eta = study.get("eta_seconds")
            _say(line + (f"; ~{eta:.0f} s left" if eta else ""))
            last = line
        if StudyStatus.parse(study["status"]).terminal:
            break
        time.sleep(POLL_S)
    if study["status"] != "succeeded":
        _say(f"study {study_id} {study['status']}: {study.get('error')}")
        return 1
    summary = StudySummary.from_dict(_get(client, f"/studies/{study_id}/summary"))
    _say("")
    _say(format_table(summary))
    links = study["links"]
    report = paths.home() / "reports" / study_id
    _say("")
    _say(f"figures (files):   {report}/figure6.png, lr_sensitivity.png, expected_max.png")
    for name in ("figure6.png", "lr_sensitivity.png", "expected_max.png"):
        _say(f"figure (service):  {client.base_url}{links['figures'][name]}")
    _say(f"MLflow comparison: {links.get('mlflow_compare')}")
    _say(f"MLflow trials:     {links.get('mlflow_trials')}")
    _say(f"MLflow study run:  {links.get('mlflow_run')}")
    _say(f"Ray job:           {links.get('ray_job')}")
    _say(f"trials CSV:        {client.base_url}{links['trials']}?format=csv")
    return 0


def _get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    if response.status_code >= 400:
        raise ClusterError(f"GET {path}: {response.status_code} {response.text}")
    return json.loads(response.text)
