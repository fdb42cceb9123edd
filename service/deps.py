"""``Annotated`` dependencies: the settings, the study service, the caller's authorisation."""

from __future__ import annotations

import secrets
from typing import Annotated, cast

from fastapi import Depends, Header, Request

from service.errors import UnauthorizedError
from service.runtime import Runtime
from service.settings import Settings, is_loopback


# async: FastAPI runs a sync dependency in its thread pool, and a read answered from memory
# (service.read_cache) would pay that hop for nothing
async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_token(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """With API_TOKEN set, the request must carry ``Authorization: Bearer <token>``.

    Without one, only requests that reach the service on a loopback address may write.
    ``robustness serve`` refuses a non-loopback host without a token; this holds the same line
    for a service started some other way (``uvicorn service.main:create_app --host 0.0.0.0``).
    """
    expected = settings.token()
    if expected is None:
        server = request.scope.get("server")  # (address, port) the connection arrived on
        if server is not None and not is_loopback(str(server[0])):
            raise UnauthorizedError(
                f"this service has no API token and was reached on {server[0]}: without a "
                "token only loopback requests may submit or cancel; set API_TOKEN",
                wrong=True,
            )
        return
    if not authorization:
        raise UnauthorizedError("this endpoint needs Authorization: Bearer <API token>")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("the Authorization header must be: Bearer <API token>")
    if not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise UnauthorizedError("the API token is not valid", wrong=True)


Authorized = Depends(require_token)
