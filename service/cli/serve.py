"""``robustness serve [--host] [--port]``: the study service (FastAPI on uvicorn).

On the embedded default (no ``RAY_ADDRESS``) it starts a local Ray head on 127.0.0.1 and an
MLflow UI on loopback, and stops both on exit. It refuses a non-loopback host without an
``API_TOKEN``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from service.errors import UnsafeBindError
from service.settings import Settings, is_loopback


def check_bind(host: str, settings: Settings) -> None:
    if not is_loopback(host) and settings.token() is None:
        raise UnsafeBindError(
            f"refusing to listen on {host} without an API token: set API_TOKEN, "
            "or serve on 127.0.0.1"
        )


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the study API (FastAPI; OpenAPI at /docs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--no-mlflow-ui",
        action="store_true",
        help="do not start the MLflow UI on the embedded default",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {"mlflow_ui": False} if args.no_mlflow_ui else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    check_bind(args.host, settings)
    import uvicorn

    from service.app import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port)
    return 0
