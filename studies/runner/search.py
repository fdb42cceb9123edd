"""How an ``optuna`` study chooses its trials: Optuna's TPE over the optimizer, the log
learning rate and the warmup, in RDB storage (``paths.optuna_storage()``, one Optuna study per
study id), wrapped in Tune's ``Repeater`` so each sample runs once per seed. (A grid needs no
searcher: ``tuner.build_tuner`` lays its points out with ``tune.grid_search``.)"""

from __future__ import annotations

from typing import Any

from studies import paths
from studies.spec import StudySpec


class OptunaSpace:
    """Optuna's define-by-run search space: the optimizer, its log lr, and its warmup when
    it warms up (a picklable callable: Tune saves the searcher with the experiment)."""

    def __init__(self, spec: StudySpec, constants: dict[str, Any]) -> None:
        self.spec_json = spec.to_json()
        self.constants = constants

    def __call__(self, trial: Any) -> dict[str, Any]:
        spec = StudySpec.from_json_cached(self.spec_json)
        optimizer = trial.suggest_categorical("optimizer", list(spec.optimizers))
        low, high = spec.lr_bounds()
        trial.suggest_float("lr", low, high, log=True)
        if optimizer in spec.warmup.optimizers and spec.warmup.kinds != ["none"]:
            kind = trial.suggest_categorical("warmup", list(spec.warmup.kinds))
            if kind == "linear":
                lo, hi = spec.search.warmup_steps_range or (
                    min(spec.warmup.steps),
                    max(spec.warmup.steps),
                )
                trial.suggest_int("warmup_steps", lo, hi, log=True)
        return dict(self.constants)


def search_alg(spec: StudySpec, study_id: str, constants: dict[str, Any]) -> Any:
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(paths.optuna_storage())
    searcher = OptunaSearch(
        space=OptunaSpace(spec, constants),
        metric="objective",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=spec.seeds[0]),
        study_name=study_id,
        storage=storage,
    )
    # Each sample once per seed; the searcher sees the mean over the seeds.
    return Repeater(searcher, repeat=len(spec.seeds), set_index=True)
