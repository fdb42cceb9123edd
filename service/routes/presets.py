"""``/presets``: the named study specs.

The presets are constants of the installed code, so each body is rendered once and sent from
the event loop: a sync route would hop to the thread pool and back (twice, with its response
validation) for a microsecond of work, and under a burst of new clients that hop was the
slowest path of all (bench/burst.py).
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Response

from service.schemas import ErrorPublic, PresetPublic
from studies.presets import PRESETS, get_preset

router = APIRouter(prefix="/presets", tags=["presets"])


def _public(name: str) -> PresetPublic:
    spec = get_preset(name)
    return PresetPublic(name=name, num_trials=spec.num_trials, spec=spec.to_dict())


@cache
def _list_body() -> bytes:
    return b"[" + b",".join(_public(name).model_dump_json().encode() for name in PRESETS) + b"]"


@cache
def _one_body(name: str) -> bytes:  # only known names get here: an unknown one raises first
    return _public(name).model_dump_json().encode()


@router.get("", response_model=list[PresetPublic])
async def list_presets() -> Response:
    return Response(_list_body(), media_type="application/json")


@router.get("/{name}", response_model=PresetPublic, responses={404: {"model": ErrorPublic}})
async def read_preset(name: str) -> Response:
    get_preset(name)  # UnknownPresetError (404) before anything is kept under the name
    return Response(_one_body(name), media_type="application/json")
