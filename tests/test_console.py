"""What a user sees and gets from the command line beyond the numbers (issue 19): the epoch axis of
TensorBoard, the package version in the run's record, the chosen logger kept by debug=limit, and
--cfg with -m as one error line."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from conftest import TINY, composed, train_in_process


def test_tensorboard_scalars_sit_on_the_epoch(tiny_root: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    ran = train_in_process(f"data.root={tiny_root}", *TINY, "trainer.max_epochs=3", "logger=tensorboard", f"hydra.run.dir={run}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    (folder,) = {p.parent for p in run.rglob("events.out.tfevents.*")}  # the run's one TensorBoard folder
    acc = EventAccumulator(str(folder))
    acc.Reload()
    history = json.loads((run / "metrics.json").read_text())["history"]
    for tag in ("val/loss", "train/loss"):
        # one point per epoch, at the 1-based epoch, with that epoch's value
        assert [(s.step, round(s.value, 3)) for s in acc.Scalars(tag)] == [(r["epoch"], round(r[tag], 3)) for r in history], tag


def test_the_run_names_the_package_version(tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    ran = train_in_process(f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={run}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    version = metadata.version("vaelab")
    assert json.loads((run / "run_info.json").read_text())["vaelab_version"] == version
    assert json.loads((run / "metrics.json").read_text())["vaelab_version"] == version
    # and the run ends with its summary: run dir, minimum, stop reason, test loss, best checkpoint
    summary = ran.stdout[ran.stdout.index("run: ") :]
    assert "stopped by max_epochs" in summary and f"run dir: {run}" in summary and "best checkpoint: " in summary


def test_debug_limit_keeps_the_chosen_logger() -> None:
    with composed("train", ["debug=limit", "logger=wandb"]) as cfg:
        assert list(cfg.logger) == ["wandb"] and cfg.trainer.limit_train_batches == 10
    with composed("train", ["debug=limit", "logger=none"]) as cfg:
        assert not cfg.logger


def test_cfg_with_multirun_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    from vaelab.config.validate import check_overrides

    with pytest.raises(SystemExit) as exit_:
        check_overrides(["-m", "model.latent_dim=1,2", "--cfg", "job"], config_name="train")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --cfg prints the config of one run: drop -m/--multirun and give one value per key (e.g. model.latent_dim=1)"]


def test_a_search_trial_is_named_by_its_values() -> None:
    from omegaconf import OmegaConf

    from vaelab.runs.wandb_run import trial_values

    sweeper = OmegaConf.create({"params": {"model.lr": "tag(log, interval(1e-4, 1e-2))", "model.hidden.0": "choice(64, 128)"}})
    task = ["model.lr=0.00024", "model.hidden.0=256", "hparams_search=optuna", "data.root=/x"]
    assert trial_values(sweeper, task) == "_lr=0.00024_hidden.0=256"
    assert trial_values(OmegaConf.create({"params": None}), ["model.latent_dim=2"]) == ""  # not a search
    with composed("train", ["logger=wandb"]) as cfg:  # a plain run keeps its short name
        assert cfg.logger.wandb.name == "ld2_s0"
