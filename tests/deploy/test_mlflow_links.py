"""A study's MLflow links against the stack's MLflow (an ``mlflow server`` on Postgres, as
docker-compose.yml runs it): opened in headless Chromium, each lands where a researcher looks
(tests/mlflow_pages.py). The study is written as the runner writes one, through the store on
the server: its parent run and details (which write the view the links open), one trial run per
configuration with every epoch's metrics, then its status; so the UI reads what a real study
leaves in Postgres."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from deploy_stack import MlflowServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import browser
from mlflow_pages import Trial, assert_researcher_view, open_study_links

pytestmark = pytest.mark.slow

EPOCHS = 4


def test_mlflow_links_land_where_a_researcher_looks(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from service.links import study_links
    from studies import tracking
    from studies.presets import apply_overrides, get_preset
    from studies.spec import trial_params

    browser()
    # Figure 6's grid, made small: 2 optimizers x 3 learning rates x 2 seeds
    spec = apply_overrides(
        get_preset("figure6-quick"),
        {"optimizers": ["adamw", "radam"], "learning_rates": [0.1, 0.01, 0.001], "seeds": [0, 1]},
    )
    store = tracking.store_for(mlflow_server.url)
    record = store.create_study(
        spec.to_dict(), experiment="robustness-links", num_trials=spec.num_trials
    )
    store.set_study_status(record.study_id, "running")
    trials = []
    for i, cfg in enumerate(spec.trial_configs()):
        run_id = store.start_trial(record.study_id, cfg.key, trial_params(spec, cfg))
        final = 0.5 + 0.04 * ((i * 7) % 11)  # distinct accuracies; the best is not the first
        epochs = range(1, EPOCHS + 1)
        store.log_history(
            run_id,
            {
                "train_loss": [2.0 / e for e in epochs],
                "test_loss": [2.2 / e for e in epochs],
                "test_acc": [final * e / EPOCHS for e in epochs],
                "lr": [cfg.lr for _ in epochs],
            },
        )
        store.end_trial(run_id, "finished", node="test", train_seconds=1.0)
        trials.append(Trial(cfg.key, final))
    store.set_study_status(record.study_id, "succeeded")

    links = study_links(record, mlflow_ui=mlflow_server.url, ray_dashboard=None)
    assert links.mlflow_compare and links.mlflow_trials and links.mlflow_run
    seen = open_study_links(
        compare=links.mlflow_compare,
        trials=links.mlflow_trials,
        run=links.mlflow_run,
        shots=tmp_path,
    )
    assert_researcher_view(
        seen,
        study_name=record.name,
        experiment="robustness-links",
        trials=trials,
        axes=["optimizer", "lr", "seed"],
    )
