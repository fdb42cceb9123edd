#!/usr/bin/env python3
"""Variants of docker-compose.yml, generated from it so they cannot drift from it.

    python scripts/compose_variants.py cpu -o docker-compose.cpu.yml     # committed
    python scripts/compose_variants.py loopback -o FILE                  # the compose test's
    python scripts/compose_variants.py cpu --check docker-compose.cpu.yml  # exit 1 if stale

``cpu``: the stack for a machine without GPUs. The same services, compose network and published
ports; the workers reserve no GPU (a GPU reservation fails to start where the NVIDIA runtime is
missing) and offer Ray the CPUs they see. Committed as docker-compose.cpu.yml; a test checks it
is what this script makes of docker-compose.yml.

``loopback``: the stack on the host's network, bound to loopback, as the compose test runs it
on a machine where no container bridge may be created (``dockerd --bridge=none``). Compose 1.29
cannot override ``networks`` into ``network_mode: host`` (``'network_mode' and 'networks'
cannot be combined``), hence a generated file, used with ``--project-directory`` at the
repository root. Every service gets ``network_mode: host`` and loses ``networks`` and ``ports``;
builds run on the host network (the daemon has no bridge); GPU reservations go. Each listener
moves to a loopback address and a port from a variable, so the stack shares the host's ports
with nothing else (the test picks free ports):

  postgres    127.0.0.1:${LOOPBACK_POSTGRES_PORT}          (PGPORT; listen_addresses)
  mlflow      127.0.0.1:${LOOPBACK_MLFLOW_PORT}            (--host, --port)
  ray-head    127.0.0.2:${LOOPBACK_RAY_GCS_PORT}, dashboard 127.0.0.2:${LOOPBACK_RAY_DASHBOARD_PORT}
  ray-worker  127.0.0.2, its own agent, manager and worker ports
  api         127.0.0.1:${LOOPBACK_API_PORT}               (API_HOST, API_PORT)

Ray is on 127.0.0.2 because Ray 2.60 rewrites 127.0.0.1 and localhost to the machine's outward
address, and takes any other 127.x address as given. Every ``<service>:<port>``,
``localhost:<port>`` and ``127.0.0.1:<port>`` in the values (URLs, healthchecks) is rewritten to
the service's loopback address and port. Only PyYAML is needed.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "docker-compose.yml"
RAY_IP = "127.0.0.2"  # loopback that Ray keeps as given (127.0.0.1 it rewrites)
LOCAL_IP = "127.0.0.1"


def _var(name: str, default: int | str) -> str:
    return f"${{{name}:-{default}}}"


#: upstream port -> (service, loopback address, the variable that moves it)
LISTENERS: dict[int, tuple[str, str, str]] = {
    5432: ("postgres", LOCAL_IP, "LOOPBACK_POSTGRES_PORT"),
    5000: ("mlflow", LOCAL_IP, "LOOPBACK_MLFLOW_PORT"),
    6379: ("ray-head", RAY_IP, "LOOPBACK_RAY_GCS_PORT"),
    8265: ("ray-head", RAY_IP, "LOOPBACK_RAY_DASHBOARD_PORT"),
    8000: ("api", LOCAL_IP, "LOOPBACK_API_PORT"),
}

#: Ray's other listeners, per node: on a shared host network two raylets must not pick the same
#: fixed port (the agent's 52365, the client server's 10001) or worker-port range.
RAY_NODE_PORTS: dict[str, list[tuple[str, str, int | str]]] = {
    "ray-head": [
        ("--ray-client-server-port", "LOOPBACK_RAY_CLIENT_PORT", 10001),
        ("--dashboard-agent-listen-port", "LOOPBACK_RAY_HEAD_AGENT_PORT", 52365),
        ("--dashboard-agent-grpc-port", "LOOPBACK_RAY_HEAD_AGENT_GRPC_PORT", 52366),
        ("--runtime-env-agent-port", "LOOPBACK_RAY_HEAD_RUNTIME_ENV_PORT", 52367),
        ("--metrics-export-port", "LOOPBACK_RAY_HEAD_METRICS_PORT", 52368),
        ("--node-manager-port", "LOOPBACK_RAY_HEAD_NODE_MANAGER_PORT", 52369),
        ("--object-manager-port", "LOOPBACK_RAY_HEAD_OBJECT_MANAGER_PORT", 52370),
        ("--min-worker-port", "LOOPBACK_RAY_HEAD_MIN_WORKER_PORT", 20000),
        ("--max-worker-port", "LOOPBACK_RAY_HEAD_MAX_WORKER_PORT", 20099),
    ],
    "ray-worker": [
        ("--dashboard-agent-listen-port", "LOOPBACK_RAY_WORKER_AGENT_PORT", 52375),
        ("--dashboard-agent-grpc-port", "LOOPBACK_RAY_WORKER_AGENT_GRPC_PORT", 52376),
        ("--runtime-env-agent-port", "LOOPBACK_RAY_WORKER_RUNTIME_ENV_PORT", 52377),
        ("--metrics-export-port", "LOOPBACK_RAY_WORKER_METRICS_PORT", 52378),
        ("--node-manager-port", "LOOPBACK_RAY_WORKER_NODE_MANAGER_PORT", 52379),
        ("--object-manager-port", "LOOPBACK_RAY_WORKER_OBJECT_MANAGER_PORT", 52380),
        ("--min-worker-port", "LOOPBACK_RAY_WORKER_MIN_WORKER_PORT", 20100),
        ("--max-worker-port", "LOOPBACK_RAY_WORKER_MAX_WORKER_PORT", 20199),
    ],
}


def loopback_variables() -> dict[str, int]:
    """Every variable the loopback variant reads, with its default (the upstream port)."""
    names = {var: port for port, (_, _, var) in LISTENERS.items()}
    for flags in RAY_NODE_PORTS.values():
        names |= {var: int(default) for _, var, default in flags}
    return names


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented, long strings unfolded, no anchors (each service written out
    in full), and an empty value (``postgres-data:``) left empty."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_representer(
    type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "")
)


def dump(doc: dict[str, Any], header: str) -> str:
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000, default_flow_style=False)
    return header + body


def load_main(path: Path = MAIN) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())  # merge keys (<<:) resolved
    return {key: value for key, value in doc.items() if not str(key).startswith("x-")}


def _drop_gpu_reservation(service: dict[str, Any]) -> None:
    resources = service.get("deploy", {}).get("resources", {})
    reservations = resources.get("reservations", {})
    reservations.pop("devices", None)
    if not reservations:
        resources.pop("reservations", None)
    if not resources:
        service.get("deploy", {}).pop("resources", None)
    if not service.get("deploy", True):
        service.pop("deploy")


def cpu_only(main: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(main)
    for service in doc["services"].values():
        _drop_gpu_reservation(service)
    return doc


# --- loopback ---------------------------------------------------------------------------------

_HOSTS = "|".join(
    re.escape(h) for h in [*{s for s, _, _ in LISTENERS.values()}, "localhost", LOCAL_IP, "0.0.0.0"]
)
_HOST_PORT = re.compile(rf"(?<![\w.-])(?:{_HOSTS}):(?P<port>{'|'.join(map(str, LISTENERS))})\b")
# ${NAME:-default} whose default names a listener: the default is used as it is rewritten
# (compose 1.29 has no nested interpolation, so the user's override cannot wrap it).
_DEFAULTED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}")


def _relocate(text: str) -> str:
    def listener(match: re.Match[str]) -> str:
        _, address, var = LISTENERS[int(match["port"])]
        return f"{address}:{_var(var, match['port'])}"

    def defaulted(match: re.Match[str]) -> str:
        if _HOST_PORT.search(match["default"]):
            return _HOST_PORT.sub(listener, match["default"])
        return match[0]

    return _HOST_PORT.sub(listener, _DEFAULTED.sub(defaulted, text))


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item) for item in node]
    if isinstance(node, str):
        return _relocate(node)
    return node


def _flag(command: list[str], flag: str, value: str) -> list[str]:
    """``command`` with ``flag``'s value replaced (``--flag value``)."""
    out = list(command)
    index = out.index(flag)
    out[index + 1] = value
    return out


def loopback(main: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(main)
    doc.pop("networks", None)
    services: dict[str, dict[str, Any]] = doc["services"]
    for name, service in services.items():
        service.pop("networks", None)
        service.pop("ports", None)
        service["network_mode"] = "host"
        if isinstance(service.get("build"), dict):
            service["build"]["network"] = "host"
        _drop_gpu_reservation(service)
        services[name] = _walk(service)

    def environment(name: str) -> dict[str, Any]:
        env = services[name].setdefault("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        return env

    port = {var: f"${{{var}:-{p}}}" for p, (_, _, var) in LISTENERS.items()}
    # Postgres reads PGPORT (so do pg_isready and the init scripts' psql).
    environment("postgres")["PGPORT"] = port["LOOPBACK_POSTGRES_PORT"]
    services["postgres"]["command"] = ["postgres", "-c", f"listen_addresses={LOCAL_IP}"]
    mlflow = services["mlflow"]
    mlflow["command"] = _flag(
        _flag(mlflow["command"], "--host", LOCAL_IP), "--port", port["LOOPBACK_MLFLOW_PORT"]
    )
    head = environment("ray-head")
    head["RAY_GCS_PORT"] = port["LOOPBACK_RAY_GCS_PORT"]
    head["RAY_DASHBOARD_HOST"] = RAY_IP
    head["RAY_DASHBOARD_LISTEN_PORT"] = port["LOOPBACK_RAY_DASHBOARD_PORT"]
    for node, flags in RAY_NODE_PORTS.items():
        services[node]["command"] = [
            *services[node]["command"],
            f"--node-ip-address={RAY_IP}",
            *(f"{flag}={_var(var, default)}" for flag, var, default in flags),
        ]
    api = environment("api")
    api["API_HOST"] = LOCAL_IP
    api["API_PORT"] = port["LOOPBACK_API_PORT"]
    return doc


HEADERS = {
    "cpu": (
        "# GENERATED from docker-compose.yml by scripts/compose_variants.py cpu; do not edit.\n"
        '# The stack for a machine without GPUs (docs/deploy.md, "Without a GPU"): the same\n'
        "# services, network and published ports; the workers reserve no GPU.\n"
        "#   docker compose -f docker-compose.cpu.yml up -d\n"
    ),
    "loopback": (
        "# GENERATED from docker-compose.yml by scripts/compose_variants.py loopback; do not\n"
        "# edit. The stack on the host's network, bound to loopback (the compose test's).\n"
        "#   docker-compose --project-directory <repo> -f <this file> up -d\n"
    ),
}


def render(variant: str, main_path: Path = MAIN) -> str:
    main = load_main(main_path)
    doc = cpu_only(main) if variant == "cpu" else loopback(main)
    return dump(doc, HEADERS[variant])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=sorted(HEADERS))
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    parser.add_argument("--check", type=Path, help="exit 1 if this file is not the variant")
    parser.add_argument("--main", type=Path, default=MAIN, help="the compose file to start from")
    args = parser.parse_args(argv)
    text = render(args.variant, args.main)
    if args.check:
        if args.check.read_text() != text:
            print(
                f"{args.check} is stale: regenerate it with "
                f"scripts/compose_variants.py {args.variant} -o {args.check}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
