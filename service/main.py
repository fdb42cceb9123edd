"""``uvicorn --factory service.main:create_app``: the app with settings from the environment."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from service.app import create_app as _create_app


def create_app() -> FastAPI:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return _create_app()
