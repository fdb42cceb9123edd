"""An example plugin of radam-robustness: the ``wine`` workload and the ``sgd_nesterov``
optimizer, registered through entry points (see pyproject.toml and docs/workloads.md)."""
