"""hparams_search=optuna: real trials on tiny data, the optimised value is the jobs' own, a search
killed mid-trial continues that trial to the numbers of an uninterrupted one, and a pruned trial
is recorded as pruned in its status.json, the study, the sweep summary and the report."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
from pathlib import Path

import pytest
import yaml

from conftest import TINY, report_in_process, run_cli, run_result, spawn_until, train_in_process

# the search sets model.hidden.0 itself: a model.hidden=... override would replace its choice
TINY_SEARCH = [o for o in TINY if not o.startswith("model.hidden")]


def test_optuna_search_runs_trials_and_reports_the_best(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    proc = run_cli(
        "vaelab.train",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        f"data.root={tiny_root}",
        f"hydra.sweep.dir={sweep}",
        "logger=none",
        "callbacks.images.every_n_epochs=0",
        *TINY_SEARCH,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        config = json.loads((job / "run_info.json").read_text())["config"]
        # the trial's proposal reached the model
        assert config["model"]["lr"] == float(overrides["model.lr"])
        assert config["model"]["hidden"] == [int(overrides["model.hidden.0"])]
        assert 1e-4 <= config["model"]["lr"] <= 1e-2
        assert config["model"]["hidden"][0] in (64, 128, 256, 400, 800)
        metrics = json.loads((job / "metrics.json").read_text())
        assert math.isfinite(metrics["val_loss_min"])
        trials[job.name] = (metrics["val_loss_min"], config["model"])
    assert sorted(trials) == ["0", "1"]
    assert trials["0"][1] != trials["1"][1], "both trials got the same hyper-parameters"
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_loss, best_model = min(trials.values(), key=lambda t: t[0])
    # Optuna minimised exactly the value each job wrote as val_loss_min
    assert result["best_value"] == best_loss
    assert result["best_params"] == {"model.lr": best_model["lr"], "model.hidden.0": best_model["hidden"][0]}

    # the same command with n_trials=3 continues the stored study: one more trial, numbered 2,
    # with hyper-parameters of its own (not the first random draw again)
    more = run_cli("vaelab.train", "hparams_search=optuna", "hydra.sweeper.n_trials=3", f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}",
                   "logger=none", "callbacks.images.every_n_epochs=0", *TINY_SEARCH)  # fmt: skip
    assert more.returncode == 0, more.stderr[-3000:]
    assert f"continuing study vaelab_lr_hidden in sqlite:///{sweep}/optuna.db: 2 trial(s) so far, 1 to go" in more.stdout
    assert "  2: latent_dim=2" in more.stdout and "3 completed" in more.stdout
    third = json.loads((sweep / "2" / "run_info.json").read_text())["config"]["model"]
    assert third not in [model for _, model in trials.values()], "the continued search repeated a trial"
    import optuna

    study = optuna.load_study(study_name="vaelab_lr_hidden", storage=f"sqlite:///{sweep}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3


def _search(tiny_root: Path, sweep: Path, *extra: str) -> list[str]:
    """The command line of a tiny search into ``sweep``; ``extra`` last, so it wins."""
    return ["hparams_search=optuna", f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", "logger=none", "callbacks.images.every_n_epochs=0",
            *TINY_SEARCH, *extra]  # fmt: skip


def _states(sweep: Path) -> list[str]:
    import optuna

    return [t.state.name for t in optuna.load_study(study_name="vaelab_lr_hidden", storage=f"sqlite:///{sweep}/optuna.db").trials]


@pytest.mark.slow
def test_a_search_killed_mid_trial_continues_the_killed_trial_to_the_uninterrupted_numbers(tiny_root: Path, tmp_path: Path) -> None:
    import optuna

    sweep = tmp_path / "search"
    args = _search(tiny_root, sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=6")
    # the whole search (sweep process and job) killed once trial 0 has finished its first epoch
    child = spawn_until(args, sweep / "0" / "checkpoints" / "last.ckpt", start_new_session=True)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert not (sweep / "0" / "metrics.json").exists(), "trial 0 ended before the kill: no mid-trial kill to test"
    assert json.loads((sweep / "0" / "status.json").read_text())["status"] == "running"
    assert _states(sweep) == ["RUNNING"]
    params = optuna.load_study(study_name="vaelab_lr_hidden", storage=f"sqlite:///{sweep}/optuna.db").trials[0].params

    # the same command again: trial 0 continues in its run dir with its parameters, then trial 1 runs
    proc = run_cli("vaelab.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = f"model.lr={params['model.lr']} model.hidden.0={params['model.hidden.0']}"
    assert f"trial 0 was killed (status running): continuing it in {sweep}/0 with {shown}" in proc.stdout
    assert f"resuming {sweep}/0 from {sweep}/0/checkpoints/last.ckpt" in proc.stdout
    assert "  2 completed" in proc.stdout
    assert _states(sweep) == ["COMPLETE", "COMPLETE"]  # n_trials reached, nothing left RUNNING
    assert optuna.load_study(study_name="vaelab_lr_hidden", storage=f"sqlite:///{sweep}/optuna.db").trials[0].params == params
    assert {json.loads((sweep / j / "status.json").read_text())["status"] for j in ("0", "1")} == {"completed"}
    report = report_in_process(str(sweep), "--wandb-mode", "disabled")  # the report agrees with the summary
    assert report.returncode == 0, report.stderr[-3000:]
    assert "The best of 2 trials (2 completed) by val_loss_min (minimize)" in (sweep / "report" / "val_loss.md").read_text()

    # trial 0 uninterrupted: the same settings as a single run
    single = [o for o in args if not o.startswith(("hparams_search", "hydra.sweep", "hydra.sweeper"))]
    whole = tmp_path / "whole"
    ran = train_in_process(*single, f"model.lr={params['model.lr']}", f"model.hidden=[{params['model.hidden.0']}]", f"hydra.run.dir={whole}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert run_result(sweep / "0") == run_result(whole)  # the val/loss history included, bit for bit
    assert len(run_result(whole)["history"]) == 6


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_as_pruned_everywhere(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    # a median pruner at its most eager: after one finished trial, any trial worse than the median
    # of the earlier trials at the same epoch stops there
    proc = run_cli("vaelab.train", *_search(tiny_root, sweep, "hydra.sweeper.n_trials=3", "trainer.max_epochs=3", "hydra/sweeper/pruner=median",
                                            "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]  # a pruned trial is an outcome of the search, not a failure
    states = _states(sweep)
    pruned = [str(i) for i, s in enumerate(states) if s == "PRUNED"]
    assert pruned and set(states) == {"COMPLETE", "PRUNED"}, states
    for job in pruned:
        status = json.loads((sweep / job / "status.json").read_text())
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert status["status"] == "pruned" and metrics["stop_reason"] == "pruned"
        assert metrics["epochs"] < 3 or metrics["history"][-1]["epoch"] == metrics["epochs"]
        assert status["reason"] == f"by the search's pruner after epoch {metrics['epochs']}, at val/loss {metrics['history'][-1]['val/loss']:.3f}"
        assert f"  {job}: PRUNED {status['reason']}: latent_dim=2" in proc.stdout
    assert f"  {len(states) - len(pruned)} completed, {len(pruned)} pruned" in proc.stdout

    report = report_in_process(str(sweep), "--wandb-mode", "disabled")
    assert report.returncode == 0, report.stderr[-3000:]
    with (sweep / "report" / "runs.csv").open() as f:
        runs = {r["job"]: r for r in csv.DictReader(f)}
    assert {j for j, r in runs.items() if r["status"].startswith("pruned")} == set(pruned)
    table = (sweep / "report" / "val_loss.md").read_text()
    assert all(f"job search/{j} seed 0 (pruned: by the search's pruner" in table for j in pruned)


def test_pruning_without_a_stored_study_is_one_error_line(tiny_root: Path, tmp_path: Path) -> None:
    # the jobs report to the study through its storage: an in-memory study cannot be pruned
    proc = run_cli("vaelab.train", *_search(tiny_root, tmp_path / "search", "hydra/sweeper/pruner=median", "hydra.sweeper.storage=null"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: hydra.sweeper.pruner needs a stored study: each trial reports its val/loss to it from its own job; "
        "set hydra.sweeper.storage=sqlite:///<file>, or hydra/sweeper/pruner=null"
    ]
    assert not (tmp_path / "search" / "0").exists()
