"""How a sampled study (``search.kind`` ``optuna`` or ``random``) chooses its trials, with
every optimizer on an equal budget.

One Optuna study per (optimizer, repeat), a *stream*: its own sampler (TPE, or a
``RandomSampler``: log-uniform over the same space), seeded by ``sampler_seed(search.seed,
repeat)``, in RDB
storage (``paths.optuna_storage()``, named ``<study id>.<optimizer>.r<repeat>``). Each stream
draws exactly ``num_samples`` points over the same space (log lr; the log warmup length where
the optimizer warms up linearly), and each point runs once per seed; the stream is told the
mean over its seeds. ``FairSearch`` hands the streams' points to Tune round-robin, sample by
sample, so the concurrent trials are the same sample index of different optimizers and no
optimizer can run ahead of another (Sivaprasad et al. 2020: comparing optimizers under tuning
needs the same budget and protocol for each). A grid needs no searcher: ``tuner.build_tuner``
lays its points out with ``tune.grid_search``.
"""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from studies import paths
from studies.spec import StudySpec


def sampler_seed(seed: int, repeat: int) -> int:
    """Repeat ``repeat``'s sampler seed: ``(seed, repeat)`` mixed by numpy's ``SeedSequence``
    (consecutive small seeds give Mersenne Twister first draws that sit close together:
    seeds 0 and 3 both start near 0.55). Every optimizer of a repeat gets the same seed, so
    random search tries the same learning rates for each (common random numbers); their
    samplers stay separate."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def sample_point(trial: Any, spec: StudySpec, optimizer: str) -> dict[str, Any]:
    """Draw one point of ``optimizer``'s space from an Optuna trial (define-by-run): the log
    lr, and the warmup (kind, and log length when linear) for an optimizer that warms up."""
    low, high = spec.lr_bounds()
    point: dict[str, Any] = {
        "optimizer": optimizer,
        "lr": trial.suggest_float("lr", low, high, log=True),
        "warmup": "none",
        "warmup_steps": 0,
    }
    if optimizer in spec.warmup.optimizers and spec.warmup.kinds != ["none"]:
        kinds = list(spec.warmup.kinds)
        kind = kinds[0] if len(kinds) == 1 else trial.suggest_categorical("warmup", kinds)
        point["warmup"] = kind
        if kind == "linear":
            lo, hi = spec.search.warmup_steps_range or (
                min(spec.warmup.steps),
                max(spec.warmup.steps),
            )
            point["warmup_steps"] = trial.suggest_int("warmup_steps", lo, hi, log=True)
    return point


@dataclass
class _Pending:
    """One sample of a stream, waiting for its seeds' results."""

    stream: int
    number: int  # the Optuna trial's number in its stream's study
    point: dict[str, Any]
    values: dict[int, float] = field(default_factory=dict)  # seed index -> objective
    failed: bool = False


class FairSearch(Searcher):
    """Tune's searcher for a sampled study: per (optimizer, repeat) stream, ``num_samples``
    points, each suggested once per seed, round-robin over the streams (see the module)."""

    def __init__(self, spec: StudySpec, study_id: str, constants: dict[str, Any]) -> None:
        super().__init__(metric="objective", mode="max")
        self.spec_json = spec.to_json()
        self.study_id = study_id
        self.constants = constants
        search = spec.search
        self.streams = [(opt, r) for r in range(search.repeats) for opt in spec.optimizers]
        # the suggestion order: sample by sample, each stream in turn, each seed in turn
        self.order = [
            (s, i, seed)
            for s in range(search.num_samples)
            for i in range(len(self.streams))
            for seed in range(len(spec.seeds))
        ]
        self.next = 0
        self.pending: dict[tuple[int, int], _Pending] = {}  # (stream, sample) -> its trials
        self.trials: dict[str, tuple[int, int, int]] = {}  # Tune id -> (stream, sample, seed)
        self._studies: dict[int, Any] = {}

    @property
    def spec(self) -> StudySpec:
        return StudySpec.from_json_cached(self.spec_json)

    def _study(self, stream: int) -> Any:
        study = self._studies.get(stream)
        if study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            optimizer, repeat = self.streams[stream]
            seed = sampler_seed(self.spec.search.seed, repeat)
            sampler: Any = (
                optuna.samplers.RandomSampler(seed=seed)
                if self.spec.search.kind == "random"
                else optuna.samplers.TPESampler(seed=seed)
            )
            study = optuna.create_study(
                study_name=f"{self.study_id}.{optimizer}.r{repeat}",
                storage=_storage(paths.optuna_storage()),
                sampler=sampler,
                direction="maximize",
                load_if_exists=True,
            )
            self._studies[stream] = study
        return study

    def suggest(self, trial_id: str) -> dict[Any, Any] | None:
        if self.next >= len(self.order):
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's sentinel
        sample, stream, seed = self.order[self.next]
        self.next += 1
        pending = self.pending.get((stream, sample))
        if pending is None:
            optimizer, _ = self.streams[stream]
            trial = self._study(stream).ask()
            pending = _Pending(stream, trial.number, sample_point(trial, self.spec, optimizer))
            self.pending[(stream, sample)] = pending
        self.trials[trial_id] = (stream, sample, seed)
        _, repeat = self.streams[stream]
        return {
            **self.constants,
            **pending.point,
            "repeat": repeat,
            "sample": sample,
            "__trial_index__": seed,  # the seed's index (studies.training.trainables)
        }

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        where = self.trials.pop(trial_id, None)
        if where is None:
            return
        stream, sample, seed = where
        pending = self.pending[(stream, sample)]
        value = (result or {}).get("objective")
        if error or value is None or not math.isfinite(float(value)):
            pending.failed = True
        else:
            pending.values[seed] = float(value)
        if pending.failed or len(pending.values) == len(self.spec.seeds):
            self._tell(pending)
            del self.pending[(stream, sample)]

    def _tell(self, pending: _Pending) -> None:
        import optuna

        study = self._study(pending.stream)
        if pending.failed:
            study.tell(pending.number, state=optuna.trial.TrialState.FAIL)
        else:  # the mean over the seeds
            study.tell(pending.number, sum(pending.values.values()) / len(pending.values))

    # Tune saves the searcher with the experiment (and restores it on resume); the Optuna
    # studies live in their storage and are looked up again.
    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k != "_studies"}
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(state, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
        self._studies = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_studies"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._studies = {}


@functools.cache
def _storage(url: str) -> Any:
    """One RDB storage per URL in this process (each checks its schema when made)."""
    import optuna

    return optuna.storages.RDBStorage(url)


def search_alg(spec: StudySpec, study_id: str, constants: dict[str, Any]) -> FairSearch:
    return FairSearch(spec, study_id, constants)
