"""Runs outside the cluster: the epoch budget, the results folder and ``robustness import``.

A real offline run (``studies.offline.figure6`` on the digits and the MLP: seconds) makes the
results folder; ``robustness import`` brings it into a real SQLite MLflow, and broken copies of
it are refused whole, naming the file, with nothing left in the records.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from studies import tracking
from studies.analysis.report import load_summary
from studies.cli import main
from studies.errors import TrackingError
from studies.offline import budget, packing, resultfiles
from studies.offline import figure6 as offline_figure6
from studies.offline.importer import import_outdir
from studies.offline.resultdoc import record_name
from studies.offline.resultfiles import ResultFileError, load_outdir
from studies.presets import get_preset
from studies.spec import StudySpec

SPEC = {
    "name": "offline-digits",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam", "sgd"],
    "learning_rates": [0.1, 0.01],
    "seeds": [0, 1],
    "epochs": 4,
    "lr_milestones": [2, 3],
    "batch_size": 64,
}


# --- the budget ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [(164, [81, 122]), (40, [20, 30]), (82, [40, 61]), (4, [2, 3]), (2, [1]), (1, [])],
)
def test_milestones_scale_with_the_run(epochs: int, expected: list[int]) -> None:
    assert budget.scaled_milestones(epochs, full_epochs=164, full_milestones=[81, 122]) == expected


def test_the_whole_run_when_it_fits_else_as_many_epochs_as_fit() -> None:
    whole = budget.plan_epochs(target=164, epoch_seconds=2.0, remaining_seconds=400.0)
    assert (whole.epochs, whole.shortened) == (164, False)
    assert whole.full_run_seconds == pytest.approx(328.0)
    short = budget.plan_epochs(target=164, epoch_seconds=10.0, remaining_seconds=400.0)
    assert (short.epochs, short.shortened) == (38, True)  # 400 / (10 * 1.05)
    assert budget.plan_epochs(target=164, epoch_seconds=10.0, remaining_seconds=-5).epochs == 1
    after_smoke = budget.plan_epochs(target=164, epoch_seconds=10.0, remaining_seconds=400, done=2)
    assert (after_smoke.epochs, after_smoke.done) == (40, 2)


FIGURE6 = get_preset("figure6")


def test_a_shortened_run_continues_the_smoke_when_their_schedules_agree() -> None:
    choice = budget.choose_run(
        FIGURE6, smoke_epochs=2, epoch_seconds=10.0, remaining_seconds=400, resume_other_specs=True
    )
    # 38 more epochs fit after the smoke's 2; milestones 81/164 and 122/164 of 40: 20 and 30,
    # past the smoke's epochs, so its two epochs are the run's first two
    assert choice.resume and choice.spec.epochs == 40 and choice.spec.lr_milestones == [20, 30]
    # without a pack (one trial at a time) a different spec starts again: 38 epochs
    alone = budget.choose_run(
        FIGURE6, smoke_epochs=2, epoch_seconds=10.0, remaining_seconds=400, resume_other_specs=False
    )
    assert not alone.resume and alone.spec.epochs == 38 and alone.spec.lr_milestones == [19, 28]
    # 3 epochs would decay at epoch 1, inside the smoke: from scratch, and only 1 fits
    tight = budget.choose_run(
        FIGURE6, smoke_epochs=2, epoch_seconds=10.0, remaining_seconds=15, resume_other_specs=True
    )
    assert not tight.resume and tight.plan.epochs == 1
    whole = budget.choose_run(
        FIGURE6, smoke_epochs=2, epoch_seconds=1.0, remaining_seconds=400, resume_other_specs=False
    )
    assert whole.resume and whole.spec == FIGURE6


# --- a real offline run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline")
    spec_file = root / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    out = root / "out"
    code = offline_figure6.main(
        [str(out), "--preset", str(spec_file), "--threads", "1", "--device", "cpu"]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _copy(outdir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(outdir, target)
    return target


def _trial_file(root: Path, key: str = "sgd-lr0.1-none-s1") -> Path:
    return root / resultfiles.TRIALS_DIR / f"{key}.json"


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_run_writes_a_file_per_configuration_and_its_accounts(outdir: Path) -> None:
    run = load_outdir(outdir)
    assert [t.trial_id for t in run.trials] == [c.key for c in run.spec.trial_configs()]
    assert all(t.epochs_done == 4 and t.status == "finished" for t in run.trials)
    assert run.spec.epochs == 4 and run.spec.lr_milestones == [2, 3]  # fitted: not shortened
    assert run.run["plan"]["shortened"] is False and run.run["parity"]["ok"] is True
    assert len(run.run["parity"]["members"]) == 2  # one per optimizer
    tp = run.throughput
    assert tp["gpu"]["available"] is False and "nvidia-smi" in tp["gpu"]["reason"]
    assert len(tp["epoch_seconds"]) == 4 and tp["images_per_second"]["all"] > 0
    assert set(tp["images_per_second"]["per_configuration"]) == {t.trial_id for t in run.trials}
    # the baseline: each parity configuration's warm second epoch alone, on the same device
    alone = [m["alone_epoch_seconds"] for m in run.run["parity"]["members"]]
    assert len(alone) == 2 and all(s > 0 for s in alone)
    assert tp["one_at_a_time"]["epoch_seconds"] == pytest.approx(alone)
    per_image = tp["train_images_per_epoch"] / (sum(alone) / len(alone))
    assert tp["one_at_a_time"]["images_per_second"] == pytest.approx(per_image)
    assert tp["speedup_vs_one_at_a_time"] == pytest.approx(
        tp["images_per_second"]["all"] / per_image
    )
    # the per-epoch lr follows the schedule: x0.1 from epoch index 2, again from 3
    sgd = run.trials[-1]
    assert sgd.history["lr"] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_a_short_budget_shortens_the_run_and_scales_the_milestones(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC | {"epochs": 164, "lr_milestones": [81, 122]}))
    args = [str(tmp_path / "out"), "--preset", str(spec_file), "--device", "cpu"]
    # A budget of 0 leaves no time beyond the smoke: the smoke's 2 epochs are the result, and
    # they say so (their schedule had reached no milestone).
    assert offline_figure6.main([*args, "--threads", "1", "--time-budget", "0"]) == 0
    run = load_outdir(tmp_path / "out")
    assert run.spec.epochs == 2 and run.spec.lr_milestones == []
    assert run.run["shortened"] is True and "smoke" in run.run["schedule_note"]


def test_an_outdir_with_results_is_not_overwritten(outdir: Path) -> None:
    assert offline_figure6.main([str(outdir), "--preset", "figure6"]) == 2


# --- robustness import ----------------------------------------------------------------------


def test_import_makes_a_normal_study(
    outdir: Path, uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "import",
            str(outdir),
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "report"),
            "--write-record",
            str(tmp_path / "record"),
        ]
    )
    assert code == 0
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = load_outdir(outdir)
    study_id = outcome["study_id"]
    assert study_id == run.run_id and outcome["status"] == "succeeded"
    record = tracking.store_for(uri).get_study(study_id)
    assert record.spec == run.spec.to_dict() and record.num_trials == 8
    trials = {t.trial_id: t for t in tracking.store_for(uri).load_trials(study_id)}
    assert trials.keys() == {t.trial_id for t in run.trials}
    for imported in run.trials:
        stored = trials[imported.trial_id]
        assert stored.status == imported.status and stored.node == imported.node
        assert stored.history["test_acc"] == pytest.approx(imported.history["test_acc"])
        assert stored.train_seconds == pytest.approx(imported.train_seconds)
    summary = load_summary(study_id, tracking_uri=uri)
    assert summary.trials_counted == 8 and not summary.partial and summary.epochs == 4
    artifacts = set(tracking.store_for(uri).list_artifacts(study_id))
    assert {"summary.json", "trials.csv", "figure6.png", "import"} <= artifacts
    assert {"import/run.json", "import/throughput.json"} <= set(
        tracking.store_for(uri).list_artifacts(study_id, path="import")
    )
    page = (tmp_path / "record" / record_name(run)).read_text()
    for heading in ("Table 2", "mean regret", "Expected best accuracy", "throughput", "JPEG"):
        assert heading in page
    assert "One configuration alone on the same device" in page and "the pack trains **" in page
    assert (tmp_path / "record" / "figure6.png").is_file()
    assert (tmp_path / "record" / "expected_max.png").is_file()
    # `robustness report` serves it like any other study
    assert main(["report", study_id, "--tracking-uri", uri, "--out", str(tmp_path / "r2")]) == 0
    # and a second import of the same folder is refused, not a copy
    with pytest.raises(TrackingError, match="already imported"):
        import_outdir(outdir, tracking_uri=uri)
    with pytest.raises(TrackingError, match="already exists"):
        import_outdir(outdir, tracking_uri=uri, study_id=study_id)


def _no_new_study(uri: str, before: int) -> None:
    assert len(tracking.store_for(uri).list_studies(limit=1000)) == before


BREAKS = {
    "malformed JSON": (lambda p: p.write_text('{"format": '), "not valid JSON"),
    "missing epochs": (
        lambda p: _edit(p, lambda d: [v.pop() for v in d["history"].values()]),
        "missing epochs: a finished trial has 3 of the spec's 4",
    ),
    "mixed specs": (
        lambda p: _edit(p, lambda d: d["spec"].update(weight_decay=0.5)),
        "spec differs",
    ),
    "not in the grid": (
        lambda p: _edit(p, lambda d: d.update(lr=0.5, trial_id="sgd-lr0.5-none-s1")),
        "not a configuration of the spec's grid",
    ),
    "running trial": (lambda p: _edit(p, lambda d: d.update(status="running")), "status"),
    "uneven curves": (
        lambda p: _edit(p, lambda d: d["history"]["lr"].append(0.1)),
        "different lengths",
    ),
}


@pytest.mark.parametrize("fault", sorted(BREAKS))
def test_a_bad_file_is_refused_by_name_and_nothing_is_imported(
    fault: str, outdir: Path, uri: str, tmp_path: Path
) -> None:
    root = _copy(outdir, tmp_path)
    broken = _trial_file(root)
    breaker, message = BREAKS[fault]
    breaker(broken)
    before = len(tracking.store_for(uri).list_studies(limit=1000))
    with pytest.raises(ResultFileError, match=message) as caught:
        import_outdir(root, tracking_uri=uri)
    assert caught.value.path == broken and broken.name in str(caught.value)
    _no_new_study(uri, before)


def test_a_missing_or_doubled_configuration_is_refused(outdir: Path, tmp_path: Path) -> None:
    root = _copy(outdir, tmp_path)
    _trial_file(root).unlink()
    with pytest.raises(
        ResultFileError, match=r"1 of the spec's 8 configurations missing: sgd-lr0\.1"
    ):
        load_outdir(root)
    shutil.copy(_trial_file(root, "sgd-lr0.01-none-s1"), root / "trials" / "copy.json")
    shutil.copy(_trial_file(outdir), _trial_file(root))
    with pytest.raises(ResultFileError, match="again"):
        load_outdir(root)


def test_a_run_json_from_another_run_is_refused(outdir: Path, tmp_path: Path) -> None:
    root = _copy(outdir, tmp_path)
    _edit(root / "run.json", lambda d: d.update(run_id="0123456789ab"))
    with pytest.raises(ResultFileError, match=r"run\.json: run_id"):
        load_outdir(root)


def test_mlflow_failing_midway_leaves_no_half_study(
    outdir: Path, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(tracking.store_for(uri).list_studies(limit=1000))
    real = tracking.MlflowStudyStore.end_trial
    calls: list[str] = []

    def flaky(store: Any, run_id: str, status: str, **kwargs: Any) -> None:  # the store going away
        calls.append(run_id)
        if len(calls) == 3:
            raise TrackingError("MLflow unreachable during end_trial: connection refused")
        real(store, run_id, status, **kwargs)

    monkeypatch.setattr(tracking.MlflowStudyStore, "end_trial", flaky)
    with pytest.raises(TrackingError, match="unreachable"):
        import_outdir(outdir, tracking_uri=uri, study_id="flakyimport1")
    _no_new_study(uri, before)
    with pytest.raises(tracking.StudyNotFoundError):
        tracking.store_for(uri).get_study("flakyimport1")
    monkeypatch.setattr(tracking.MlflowStudyStore, "end_trial", real)
    record, _ = import_outdir(outdir, tracking_uri=uri, study_id="flakyimport1")  # now whole
    assert record.status == "succeeded"


def test_a_pack_continued_into_a_shortened_schedule_is_that_schedule_from_scratch() -> None:
    # What choose_run(resume_other_specs=True) relies on: a pack's state holds no schedule, so
    # the smoke's first epochs continue into the shortened spec exactly.
    long = StudySpec.parse(SPEC | {"epochs": 20, "lr_milestones": [10, 15], "seeds": [0]})
    short = budget.with_epochs(long, 6, full=long)
    assert short.lr_milestones == [3, 4] and budget.same_schedule(long, short, 2)
    configs = long.trial_configs()
    kwargs: dict[str, Any] = {"data_dir": None, "gpus": 0.0, "threads": 1}
    smoke, state = packing.train_pack(long, configs, epochs=2, **kwargs)
    rest, _ = packing.train_pack(short, configs, epochs=6, resume_from=state, **kwargs)
    fresh, _ = packing.train_pack(short, configs, epochs=6, **kwargs)
    assert packing.packed()
    for first, then, alone in zip(smoke, rest, fresh, strict=True):
        continued = first + then
        assert [r["epoch"] for r in continued] == [1, 2, 3, 4, 5, 6]
        for name in ("train_loss", "test_acc", "lr"):
            assert [r[name] for r in continued] == pytest.approx([r[name] for r in alone])


def test_epochs_slower_than_planned_stop_the_run_with_what_it_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    real = budget.choose_run

    def optimistic(spec: StudySpec, **kwargs: Any) -> budget.RunChoice:
        # as if the smoke had been fast: plan the whole run (from scratch) whatever the budget
        fast = {"epoch_seconds": 1e-3, "remaining_seconds": 1e3, "resume_other_specs": False}
        whole = real(spec, **kwargs | fast)
        return budget.RunChoice(whole.plan, spec, resume=False)

    monkeypatch.setattr(budget, "choose_run", optimistic)
    args = [str(tmp_path / "out"), "--preset", str(spec_file), "--threads", "1", "--device", "cpu"]
    assert offline_figure6.main([*args, "--time-budget", "0"]) == 0
    run = load_outdir(tmp_path / "out")  # whole and importable: the epochs that ran
    assert (
        run.run["stopped_early"] is True
        and "stopped after epoch 1 of the 4" in run.run["schedule_note"]
    )
    assert run.spec.epochs == 1 and run.spec.lr_milestones == []
    assert all(t.epochs_done == 1 and t.status == "finished" for t in run.trials)


def test_the_clock_keeps_the_rows_and_raises_past_its_deadline() -> None:
    clock = offline_figure6.EpochClock("train", 3, members=2, deadline=0.0)
    row = {"test_acc": 0.5, "diverged": False}
    with pytest.raises(offline_figure6.OutOfTime):
        clock([row, None])
    assert clock.rows == [[row], []] and len(clock.times) == 1
    last = offline_figure6.EpochClock("train", 1, members=1, deadline=0.0)
    last([row])  # the last planned epoch: nothing left to stop


def test_a_diverged_configuration_is_recorded_as_diverged(tmp_path: Path, uri: str) -> None:
    # SGD at lr 50 on the digits blows up within its first epoch; lr 0.01 trains: the pack's
    # diverged member is frozen, the other goes on, and the import keeps both as they ended.
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC | {"optimizers": ["sgd"], "learning_rates": [50.0, 0.01]}))
    out = tmp_path / "out"
    args = [str(out), "--preset", str(spec_file), "--threads", "1", "--device", "cpu"]
    assert offline_figure6.main([*args, "--epochs", "3"]) == 0
    run = load_outdir(out)
    status = {t.lr: t for t in run.trials if t.seed == 0}
    assert status[50.0].status == "diverged" and status[50.0].epochs_done < 3
    assert status[0.01].status == "finished" and status[0.01].epochs_done == 3
    record, _ = import_outdir(out, tracking_uri=uri)
    stored = {t.trial_id: t for t in tracking.store_for(uri).load_trials(record.study_id)}
    blown = stored[status[50.0].trial_id]
    assert blown.status == "diverged" and blown.epochs_done == status[50.0].epochs_done
    assert math.isnan(blown.history["test_acc"][-1])
    summary = load_summary(record.study_id, tracking_uri=uri)
    cell = next(c for c in summary.cells if c.lr == 50.0)
    assert cell.n_diverged == 2 and summary.trials_counted == 4
