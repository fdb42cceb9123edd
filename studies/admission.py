"""Admission: what a study may ask of this deployment, checked where a study enters (the
service's POST, the CLI's ``run``), not by the spec's validators. A spec is valid or not on its
own; whether this machine accepts a 5000-trial study is the deployment's call.

The trial limit: ``DEFAULT_MAX_TRIALS`` (2000), overridden by the environment variable
``ROBUSTNESS_MAX_TRIALS`` or per call (the service's ``MAX_TRIALS`` setting, the CLI's
``--max-trials``), which wins. The service's active-studies limit is the service's own
(``StudyService.create``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from studies.errors import SpecError

if TYPE_CHECKING:  # spec imports this module's names
    from studies.spec import StudySpec

DEFAULT_MAX_TRIALS = 2000
MAX_TRIALS_ENV = "ROBUSTNESS_MAX_TRIALS"


def max_trials(limit: int | None = None) -> int:
    """The trial limit in force: ``limit`` if given, else the environment's, else 2000."""
    if limit is not None:
        return limit
    env = os.environ.get(MAX_TRIALS_ENV)
    return int(env) if env else DEFAULT_MAX_TRIALS


def check_trials(spec: StudySpec, *, limit: int | None = None) -> StudySpec:
    """``spec`` if its trial count is within the limit; else ``SpecError`` on ``num_trials``
    (the service answers 422, as for any other field)."""
    allowed = max_trials(limit)
    if spec.num_trials > allowed:
        raise SpecError(
            f"the study has {spec.num_trials} trials, more than the limit of {allowed} "
            f"(use fewer learning rates, warmups or seeds, or raise {MAX_TRIALS_ENV})",
            field="num_trials",
        )
    return spec


__all__ = ["DEFAULT_MAX_TRIALS", "MAX_TRIALS_ENV", "check_trials", "max_trials"]
