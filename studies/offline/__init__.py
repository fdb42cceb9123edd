"""Studies run outside the cluster: plain torch on one machine, then brought into the records.

Owns two halves. The run, on a GPU machine that has only torch and carried pydantic wheels:

- ``figure6``: the Figure 6 command (``python -m studies.offline.figure6 OUTDIR``, behind
  ``scripts/figure6_gpu.sh``);
- ``budget``: how many epochs fit a time budget, and the schedule of a shortened run;
- ``packing``: the seam to the pack runner (``studies.training.pack.run_pack``) and the
  packed-vs-alone parity check;
- ``archive``: the CIFAR-10 archive unpacked into the image-folder layout
  ``studies.workloads.cifar10`` reads;
- ``gpustats``: GPU utilisation and memory from ``nvidia-smi`` while a run trains;
- ``resultfiles``: the folder's format (one file per configuration, ``run.json``,
  ``throughput.json``), written here and validated as a whole before any import.

The return trip, on a machine with MLflow: ``importer`` (``robustness import OUTDIR``: the
folder as a study like the runner's) and ``resultdoc`` (the committed record page,
``docs/results/figure6-<device>.md``).

May import: the vocabulary, ``studies.training`` and ``studies.workloads`` (the run);
``studies.tracking`` and ``studies.analysis`` (the return trip only). ``figure6`` and all it
imports use none of ray, mlflow, optuna or fastapi: import-linter follows every chain from it,
and tests/studies/offline/test_figure6_offline.py runs it with those imports blocked.
"""
