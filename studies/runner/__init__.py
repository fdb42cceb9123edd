"""The runner: a study on Ray Tune, recorded in MLflow. The one code path of the CLI's
``robustness run`` and of the service's Ray Job (``python -m studies run --study-id ID``).

Owns: the Tune driver and everything only it needs. The one package of the project that
imports ``ray.tune`` (and Optuna, through Tune's ``OptunaSearch``).

May import: the vocabulary (``studies.spec``, ``status``, ``results``, ``paths``, ``errors``),
``studies.training`` (what each trial runs), ``studies.tracking`` (the records, written only
from the driver) and ``studies.analysis`` (a finished study's summary and figures). Nothing
imports the runner but ``studies.cli``.

Split along its seams:

- ``driver``: ``run_study`` / ``run_spec``, a study from its record to its end;
- ``trainable``: the function Tune runs in its workers, and the sessions that report and
  checkpoint through ``ray.tune`` (the workers import this module, never MLflow);
- ``recording``: the Tune callback that writes every trial's record, and the progress counts;
- ``search``: Optuna's search space and searcher;
- ``tuner``: the ``Tuner`` of a study (a grid, packs, or Optuna), and resuming Tune's saved one;
- ``cluster``: the Ray session, the checks of what the cluster can place, SIGTERM as Ctrl-C.

What it claims (checked in tests/studies/runner/ and tests/studies/cli/test_cli_run.py, on real
Ray and SQLite MLflow):

- A grid is one ``tune.grid_search`` over the spec's ``TrialConfig`` points (the spec decides
  which optimizers cross which warmups); a sampled study (``optuna``: TPE; ``random``) is
  ``search.FairSearch``: one Optuna study per optimizer and repeat (RDB storage
  ``paths.optuna_storage()``), each the same ``num_samples`` points over the same space (log
  lr; log warmup length where the warmup is linear), each point once per seed, round-robin.
- Each trial gets ``resources_per_trial`` (``tune.with_resources``); actors are reused and the
  dataset is cached per worker process; ``FailureConfig(max_failures)`` retries a crashed trial
  from its last checkpoint (one per epoch, the two latest kept).
- Only the driver talks to MLflow, from a Tune ``Callback``: a nested run per trial (started
  when the trial starts), one ``log_epoch`` per reported epoch (a pack's members: one
  ``log_epochs`` for all), the end status (finished/diverged/failed) and the node.
- Status: running while Tune runs; succeeded at the end (failed if every trial failed, or on
  an error); an interrupt (Ctrl-C, SIGTERM as sent by ``ray job stop``) ends with
  ``cancelled`` and Tune's experiment state saved, so ``resume=True`` continues it with
  ``Tuner.restore``: finished trials are not run again, interrupted ones continue from their
  last epoch. A study that ends with trials still open (interrupted) sets them ``pending``.
- A resumed study (after an interrupt, or a driver that died: Tune's saved state may be older
  than the record) never records an epoch twice nor reopens a trial the record has as
  finished: the record's epochs and finished trials are read first and skipped.
- The embedded default is a local Ray (``ray.init(address="local")``, never someone else's
  cluster) started and stopped here; with ``ray_address`` the runner connects to that cluster.
"""

import os

# Quiet, fast Tune: no per-trial CSV/TensorBoard loggers (MLflow is the record), no
# de-duplicated log lines hiding a worker's error. Set on import of any runner module (the
# driver's and Tune's workers' alike), before Tune reads them.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 is silent only with the old output
# A checkpoint per epoch of short trials snapshots the experiment often; that is intended.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# A driver killed outright (SIGKILL, OOM) leaves Tune's experiment state as last saved. Saved
# on every step of Tune's loop (not every ~10 s), with the two latest checkpoints of each trial
# kept, the state never names a checkpoint already deleted; with one kept and the default
# period, a resumed trial failed with "Could not recover from checkpoint as it does not exist".
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
