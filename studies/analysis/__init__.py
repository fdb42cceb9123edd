"""Analysis: trial records in; the summary, the verdict and the figures out.

Owns: ``summarize`` (``summarize``: records to a ``StudySummary``, pure numpy) and ``summary``
(what a summary is, JSON round-trippable), ``comparisons`` (which cells two optimizers are
compared on, the sentences) and ``verdict`` (its within-cell permutation test),
``expected_max`` (the expected best at a tuning budget), ``labels`` (names and orders),
``tables`` (the terminal table, the CSV), ``figures`` (matplotlib) and ``report`` (a finished
study's summary, CSV and figures logged on its parent run, and read back).

May import: the vocabulary, ``studies.tracking`` (``report`` reads and writes through the
store), numpy, scipy, matplotlib, pydantic. Not torch, nor training or workloads: summaries
and figures are made where no model is.
"""
