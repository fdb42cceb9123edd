"""The built-in text workload: ``shakespeare``, character-level language modelling with the
char Transformer (``transformer``: Post-LN, the default; ``transformer_pre_ln``: Pre-LN).

Its metric is the validation loss, in nats per character, lower is better (``VAL_LOSS``;
bits/char = nats / ln 2, perplexity = e^nats). The context is ``shakespeare.DEFAULT_CONTEXT``
characters (a spec's ``image_size`` does not apply: the workload has no images). Its loss and metric are pure tensor
functions, so packs train it on the vmap road (``Workload.vmappable``). Torch is imported when
it is loaded or built.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Literal

from studies.metrics import Metric
from studies.workloads.interface import Workload

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from studies.workloads.dataset import Dataset

TEXT_MODELS: tuple[str, ...] = ("transformer", "transformer_pre_ln")

#: Mean cross-entropy per validation character. A run that never reported a finite value
#: counts as a uniform guess over the 84 characters of the sdist's plays (ln 84 = 4.43).
VAL_LOSS = Metric(
    name="val_loss",
    label="validation loss",
    unit="nats/char",
    direction="lower",
    failed_value=round(math.log(84), 2),
    threshold=0.05,  # "within 0.05 nats/char of the best"
)


class CharLanguageModel(Workload):
    """Shakespeare's plays as windows of characters; next-character prediction."""

    name = "shakespeare"
    models = TEXT_MODELS
    metric = VAL_LOSS
    images = False
    vmappable = True
    description = (
        "Shakespeare's plays, character-level language modelling (validation nats/char); "
        "a causal Transformer, Post-LN or Pre-LN"
    )

    def __init__(self) -> None:
        from studies.workloads.builtin import SourcesData

        self.source = SourcesData(self.name)

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        train_subset: int | None = None,
        test_subset: int | None = None,
        image_size: int | None = None,  # not taken: the registry refuses it for text
        device: str | torch.device = "cpu",
        download: bool = False,
    ) -> Dataset:
        from studies.workloads.loading import load_dataset

        ds = load_dataset(
            self.name,
            data_dir=data_dir,
            train_subset=train_subset,
            device=device,
            download=download,
        )
        return ds.first_test(test_subset)

    def build_model(self, model: str, ds: Dataset) -> nn.Module:
        from studies.workloads.transformer import CharTransformer

        norm: Literal["post", "pre"] = "pre" if model == "transformer_pre_ln" else "post"
        return CharTransformer(ds.num_classes, context=ds.image_size, norm=norm)

    def metric_sum(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Summed cross-entropy over the batch's characters (logits ``[B, vocab, T]``)."""
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, reduction="sum")

    def count(self, targets: Tensor) -> int:
        return int(targets.numel())  # characters, not windows
