"""Workloads: what a study trains and measures (datasets, models, loss, metric), the one
registry of workloads and optimizers, and where the built-in datasets come from.

Owns: ``interface`` (``Workload``, ``DataSource``: the contract a plugin implements;
docs/workloads.md), ``registry`` (the built-in workloads of ``builtin`` and the plugins of the
entry-point groups ``robustness.workloads`` / ``robustness.optimizers``; the check of a spec's
names where a study enters), ``optimizers`` (optimizers by name: the project's four,
``torch.optim``'s, plugins'), ``catalog`` (discovery rows), ``sources`` (where each built-in
dataset is found or fetched, one resolution order for every caller), ``archives`` (``robustness
data import``), ``loading`` (``load_dataset``: a whole built-in dataset as tensors), its readers
``cifar10``, ``fashion_mnist``, ``digits``, the ``Dataset`` type (``dataset``), ``batching``
(batches and augmentation) and ``models`` (ResNet-20, CNN, MLP).

May import: the vocabulary (``studies.errors``, ``metrics``, ``paths``, ``spec``), ``radam``
and torch, torchvision, numpy. Not ray, mlflow, fastapi or optuna (the GPU machine has none of
them), nor any other stage.
"""
