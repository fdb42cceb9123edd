"""Studies run outside the cluster: plain torch on one machine, no Ray, MLflow or Optuna.

Nothing in this package imports ``ray``, ``mlflow``, ``optuna`` or ``fastapi`` (a test runs it
with those imports blocked): it runs on a GPU machine that has only torch and carried pydantic
wheels. Its output is a folder of plain files, brought into the records on a machine with
MLflow by ``robustness import OUTDIR`` (``studies.offline.importer``).

- ``budget``: how many epochs fit a time budget, and the schedule of a shortened run.
- ``resultfiles``: the folder's format (one file per configuration, ``run.json``,
  ``throughput.json``), written here and validated as a whole before any import.
- ``archive``: the CIFAR-10 archive unpacked into the image-folder layout ``studies.workloads.loading`` reads.
- ``gpustats``: GPU utilisation and memory from ``nvidia-smi`` while a run trains.
- ``packing``: the seam to the pack runner (``studies.training.pack.run_pack``) and the packed-vs-alone
  parity check.
- ``figure6``: the Figure 6 command (``python -m studies.offline.figure6 OUTDIR``).
"""
