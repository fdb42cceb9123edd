"""The function trainables Tune runs, without importing Ray: ``train_trial(config,
session=...)`` runs one trial (``trial.run_trial``) and ``train_pack(config, session=...)`` a
pack (``pack.run_pack``) from a Tune config, reporting each epoch through a session and
resuming from its last checkpoint. ``studies.runner.trainable`` supplies Tune's sessions;
``pack_result`` is the one result per pack epoch that the runner's recording callback reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from studies.spec import StudySpec, TrialConfig
from studies.training.pack import PackState, run_pack
from studies.training.trial import run_trial
from studies.training.trial_state import TrialState


class TrialSession(Protocol):
    """How a trial reports and finds its last checkpoint (Ray Tune's, in the runner)."""

    def report(self, metrics: dict[str, Any], state: TrialState) -> None: ...

    def restore(self) -> dict[str, Any] | None: ...


def trial_from_config(config: Mapping[str, Any], spec: StudySpec) -> TrialConfig:
    """The grid point of a Tune config: ``config["trial"]`` for a grid, or a sampled
    ``optimizer``/``lr``/``warmup``/``warmup_steps`` with its ``repeat`` and ``sample`` and the
    seed picked by its index (``__trial_index__``; ``studies.runner.search``)."""
    if "trial" in config:
        return TrialConfig.model_validate(config["trial"])
    seed = spec.seeds[int(config.get("__trial_index__", 0)) % len(spec.seeds)]
    return TrialConfig(
        optimizer=config["optimizer"],
        lr=float(config["lr"]),
        warmup=config.get("warmup", "none"),
        warmup_steps=int(config.get("warmup_steps", 0)),
        seed=seed,
        repeat=int(config["repeat"]) if "repeat" in config else None,
        sample=int(config["sample"]) if "sample" in config else None,
    )


def train_trial(config: Mapping[str, Any], *, session: TrialSession | None = None) -> None:
    """Run the trial described by a Tune ``config`` (``spec``: the study's JSON dict; ``trial``
    or Optuna's sampled values; ``data_dir``), reporting each epoch through ``session`` and
    resuming from its last checkpoint."""
    spec = StudySpec.from_json_cached(config["spec"])  # admitted on entry
    trial = trial_from_config(config, spec)
    resources = spec.resources_per_trial
    resume_from = session.restore() if session is not None else None
    run_trial(
        spec,
        trial,
        data_dir=config.get("data_dir"),
        threads=max(1, int(resources.cpu)),
        gpus=resources.gpu,
        resume_from=resume_from,
        on_epoch=session.report if session is not None else None,
    )


class PackSession(Protocol):
    """How a pack reports and finds its last checkpoint (Ray Tune's, in the runner)."""

    def report(self, rows: list[dict[str, Any] | None], state: PackState) -> None: ...

    def restore(self) -> dict[str, Any] | None: ...


def pack_result(rows: Sequence[dict[str, Any] | None], state: PackState) -> dict[str, Any]:
    """One Tune result for a pack's epoch: ``members`` holds, per member, its key, status
    (running/finished/diverged/failed), error and this epoch's row (None: no row, it had
    stopped); ``objective`` is the best member's, what a grid's best-trial pick reads."""
    members = [
        {"key": m.config.key, "status": m.status, "error": m.error, "row": row}
        for m, row in zip(state.members, rows, strict=True)
    ]
    objectives = [row["objective"] for row in rows if row is not None]
    return {
        "epoch": state.epoch,
        "objective": max(objectives, default=0.0),
        "members": members,
    }


def train_pack(config: Mapping[str, Any], *, session: PackSession | None = None) -> None:
    """Run the pack of a Tune ``config`` (``spec``: the study's JSON dict; ``pack``: the
    members' ``TrialConfig`` dicts; ``data_dir``), reporting each epoch through ``session``
    and resuming from its last checkpoint."""
    spec = StudySpec.from_json_cached(config["spec"])  # admitted on entry
    configs = [TrialConfig.model_validate(c) for c in config["pack"]]
    resources = spec.resources_per_trial
    run_pack(
        spec,
        configs,
        data_dir=config.get("data_dir"),
        threads=max(1, int(resources.cpu)),
        gpus=resources.gpu,
        resume_from=session.restore() if session is not None else None,
        on_epoch=session.report if session is not None else None,
    )
