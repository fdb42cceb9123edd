"""The study engine: a spec in, Ray Tune runs every trial, MLflow holds the record, summaries
and figures come out. Laid out by stage; a stage imports only the stages below it (import-linter
checks it: pyproject.toml, docs/ARCHITECTURE.md)::

    cli                      robustness' sub-commands
    runner | offline         a study on Ray Tune | a run outside the cluster, and its import
    analysis | training      summary, verdict, figures | one trial, packs of trials
    tracking | workloads     the records (MLflow) | workloads and optimizers, their registry
    the vocabulary           the modules at this top level

The vocabulary every stage shares, here at the top, imports nothing of the stages and none of
ray, mlflow, fastapi, optuna or torch: ``spec`` (``StudySpec``, ``TrialConfig``) and
``spec_parts`` (its warmup, search, resources and names), ``presets``, ``admission`` (what a
deployment accepts), ``metrics`` (``Metric``: what a workload measures), ``status`` (the one set of statuses), ``results`` (``StudyRecord``,
``TrialRecord``), ``paths`` (the per-project home), ``errors`` (the exception hierarchy).
"""
