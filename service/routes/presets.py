"""``/presets``: the named study specs."""

from __future__ import annotations

from fastapi import APIRouter

from service.schemas import ErrorPublic, PresetPublic
from studies.presets import PRESETS, get_preset

router = APIRouter(prefix="/presets", tags=["presets"])


def _public(name: str) -> PresetPublic:
    spec = get_preset(name)
    return PresetPublic(name=name, num_trials=spec.num_trials, spec=spec.to_dict())


@router.get("", response_model=list[PresetPublic])
def list_presets() -> list[PresetPublic]:
    return [_public(name) for name in PRESETS]


@router.get("/{name}", response_model=PresetPublic, responses={404: {"model": ErrorPublic}})
def read_preset(name: str) -> PresetPublic:
    return _public(name)
