"""hparams_search=optuna: two real trials on tiny data, and the optimised value is the jobs' own."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from conftest import TINY, run_cli

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
