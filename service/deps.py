"""``Annotated`` dependencies: the settings, the study service, the caller's authorisation."""

from __future__ import annotations

import secrets
from typing import Annotated, cast

from fastapi import Depends, Header, Request

from service.errors import UnauthorizedError
from service.runtime import Runtime
from service.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_token(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """With API_TOKEN set, the request must carry ``Authorization: Bearer <token>``."""
    expected = settings.token()
    if expected is None:
        return
    if not authorization:
        raise UnauthorizedError("this endpoint needs Authorization: Bearer <API token>")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("the Authorization header must be: Bearer <API token>")
    if not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise UnauthorizedError("the API token is not valid", wrong=True)


Authorized = Depends(require_token)
