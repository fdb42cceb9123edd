"""What a study measures: ``Metric``, a workload's headline number (its name, unit, direction
and the level a failed run counts as), and ``ACCURACY``, the built-in workloads' one.

Part of the vocabulary: pydantic only, no torch, so the records' analysis
(``studies.analysis``) and the service read a metric without importing a workload.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["higher", "lower"]


class Metric(BaseModel):
    """A workload's metric, as its trials record it once per epoch.

    ``name``: the per-epoch key it is recorded under (``test_acc``, ``val_loss``); ``label``:
    how axes and columns name it ("test accuracy"); ``unit``: the unit of the recorded values
    ("fraction", "nats/char"); ``direction``: ``higher`` (accuracy) or ``lower`` (a loss, a
    perplexity) is better; ``failed_value``: what a counted run that never reported a finite
    value counts as (accuracy: 0, or chance level; a loss: its value at initialisation).
    ``display_scale`` and ``display_unit``: how summaries show it (accuracy: x100, "%");
    ``threshold``: the "within" band of the summaries' share-near-the-best, in display units
    (1 percentage point for accuracy).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    label: str = Field(min_length=1, max_length=80)
    unit: str = Field(min_length=1, max_length=40)
    direction: Direction
    failed_value: float = Field(allow_inf_nan=False)
    display_scale: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    display_unit: str | None = Field(default=None, max_length=40)
    threshold: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)  # display units

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is: ``sign * value`` is maximised."""
        return 1.0 if self.higher_is_better else -1.0

    @property
    def shown_unit(self) -> str:
        return self.display_unit or self.unit

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` (NaN is never better)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.higher_is_better else a < b

    def best(self, values: Sequence[float]) -> float | None:
        """The best finite value, in this metric's direction; None when there is none."""
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if self.higher_is_better else min(finite)

    def axis_label(self) -> str:
        """``"test accuracy (%)"``: the label and unit every axis and column carries."""
        return f"{self.label} ({self.shown_unit})"


#: The built-in workloads' metric: test accuracy, a fraction recorded, shown in percent.
ACCURACY = Metric(
    name="test_acc",
    label="test accuracy",
    unit="fraction",
    direction="higher",
    failed_value=0.0,
    display_scale=100.0,
    display_unit="%",
    threshold=1.0,
)

__all__ = ["ACCURACY", "Direction", "Metric"]
