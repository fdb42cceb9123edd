"""Training: what one Tune trial runs, as plain torch functions usable without Ray.

Owns: ``trial`` (``run_trial``: one configuration, epoch by epoch, the divergence rule) and
its state (``trial_state``: ``TrialState``, built from the trial's seed); the packs, K
configurations trained as one program: ``pack`` (``run_pack``), ``pack_state``, ``fused``
(horizontally fused layers), ``pack_plan`` (how a grid is cut into packs); and
``trainables``, the seam with the runner (``train_trial`` and ``train_pack`` take a Tune
config and a session; ``studies.runner`` supplies Tune's).

May import: the vocabulary (``studies.spec``, ``errors``), ``studies.workloads``, ``radam``,
torch and numpy. Not ray, mlflow, fastapi or optuna (the GPU machine runs this package with
torch alone; the one exception is ``trial.node_name``, which asks Ray for the node's address
when Ray is there), nor the records (``tracking``, ``analysis``).
"""
