"""A job's life (vaelab.runs.job) with a stand-in for the training function: the status it records,
the objective it returns, the one error tail of single runs and multiruns, the Metrics record
assembled from a fit's results, and the training time of earlier sessions. Lightning never runs
here; the lifecycle with real training is tested by test_train, test_signals, test_refusals,
test_faults, test_run_dirs and test_optuna."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from conftest import TINY, call_task
from vaelab.errors import UserError
from vaelab.runs import job
from vaelab.runs.layout import Metrics
from vaelab.training.fitting import FitResult, _earlier_sessions_s

HISTORY = [{"epoch": 1, "val/loss": 180.5}, {"epoch": 2, "val/loss": math.nan}, {"epoch": 3, "val/loss": 170.25}, {"epoch": 4, "val/loss": 171.0}]
TESTED = {"test/loss": 169.5, "test/nelbo": 170.0, "test/recon": 150.0, "test/kl": 20.0}
SETTINGS = {"provenance": {"git_commit": "abc123", "vaelab_version": "9.9"}}


def _fit(**changes: object) -> FitResult:
    fields = {
        "signal": None,
        "history": HISTORY,
        "stop_reason": "early_stopping",
        "earlier_s": 100.0,
        "best_ckpt": "/r/checkpoints/best-epoch003.ckpt",
    }
    return FitResult(**{**fields, **changes})


def _task(train, tiny_root: Path, run: Path):
    """The training task with ``train`` as its training function, run in process on ``run``."""
    return call_task("train", lambda cfg: job.run_job(cfg, train), f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={run}")


def test_a_finished_job_is_completed_and_returns_its_minimum(tiny_root, tmp_path):
    seen = {}

    def train(cfg, resume, signals):
        seen["status"] = json.loads((tmp_path / "run" / "status.json").read_text())["status"]
        seen["resume"] = resume
        (tmp_path / "run" / "metrics.json").write_text(json.dumps({"val_loss_min": 170.25, "epochs": 4}))
        return job.run_metrics(cfg, _fit(), TESTED, SETTINGS, time.perf_counter())

    ran = _task(train, tiny_root, tmp_path / "run")
    assert ran.returncode == 0, ran.stderr
    assert seen == {"status": "running", "resume": False}  # status.json says running during training
    assert json.loads((tmp_path / "run" / "status.json").read_text()) == {"status": "completed"}
    assert ran.value == 170.25
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()  # Hydra's record, once the dir was claimed


def test_a_user_error_in_training_marks_the_job_failed_with_one_error_line(tiny_root, tmp_path):
    def train(cfg, resume, signals):
        raise UserError("data.root=/nowhere does not exist: give the folder of the IDX files")

    ran = _task(train, tiny_root, tmp_path / "run")
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines()[-1] == "error: data.root=/nowhere does not exist: give the folder of the IDX files"
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status == {"status": "failed", "error": "data.root=/nowhere does not exist: give the folder of the IDX files"}


def test_a_crash_in_training_keeps_its_traceback_and_records_it(tiny_root, tmp_path):
    def train(cfg, resume, signals):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError, match="a bug"):
        _task(train, tiny_root, tmp_path / "run")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and status["error"] == "ZeroDivisionError: a bug"
    assert "ZeroDivisionError: a bug" in status["traceback"] and "Traceback" in status["traceback"]


def test_a_diverged_job_returns_no_objective(tiny_root, tmp_path):
    def train(cfg, resume, signals):
        return job.run_metrics(cfg, _fit(history=[{"epoch": 1, "val/loss": math.nan}], stop_reason="diverged"), TESTED, SETTINGS, time.perf_counter())

    ran = _task(train, tiny_root, tmp_path / "run")
    assert ran.returncode == 0 and ran.value is None  # None: the Optuna sweeper records a FAIL trial and goes on
    assert json.loads((tmp_path / "run" / "status.json").read_text()) == {"status": "completed"}


def test_the_error_tail_exits_a_single_run_and_lets_a_multirun_go_on(monkeypatch, capsys):
    error = UserError("model.lr=-1 must be > 0: set a positive learning rate")
    with pytest.raises(SystemExit) as exit_:
        job.end_with_error(error)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: model.lr=-1 must be > 0: set a positive learning rate\n"
    with pytest.raises(KeyError):
        job.end_with_error(KeyError("bug"))  # not a user's mistake: raised again, with its traceback

    monkeypatch.setattr(job, "is_multirun", lambda: True)
    assert job.end_with_error(error) is None
    assert capsys.readouterr().err == "error: model.lr=-1 must be > 0: set a positive learning rate\n"
    try:
        raise KeyError("bug")
    except KeyError as exc:
        assert job.end_with_error(exc) is None
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.rstrip().endswith("KeyError: 'bug'")


def test_the_metrics_record_is_assembled_from_the_fit(tiny_root):
    from conftest import composed

    with composed("train", [f"data.root={tiny_root}", *TINY, "model.latent_dim=3", "seed=7", "trainer.max_epochs=9"]) as cfg:
        started = time.perf_counter() - 2.0
        metrics = job.run_metrics(cfg, _fit(), TESTED, SETTINGS, started)
    assert isinstance(metrics, Metrics)
    assert (metrics.latent_dim, metrics.seed, metrics.max_epochs, metrics.epochs) == (3, 7, 9, 4)
    assert (metrics.val_loss_min, metrics.val_loss_min_epoch) == (170.25, 3)  # the NaN epoch is passed over
    assert (metrics.test_loss, metrics.test_nelbo, metrics.test_recon, metrics.test_kl) == (169.5, 170.0, 150.0, 20.0)
    assert metrics.stop_reason == "early_stopping" and metrics.best_ckpt == "/r/checkpoints/best-epoch003.ckpt"
    assert (metrics.git_commit, metrics.vaelab_version) == ("abc123", "9.9")
    assert 102.0 <= metrics.wall_time_s < 160.0  # the earlier sessions' 100 s and this session's 2 s and more
    assert job.run_metrics(cfg, _fit(best_ckpt=""), TESTED, SETTINGS, started).best_ckpt is None


class _Clock:
    """A stand-in for Lightning's Timer: its total and this session's start and end (monotonic s)."""

    def __init__(self, total: float, start: float | None, end: float | None) -> None:
        self.total, self.start, self.end = total, start, end

    def time_elapsed(self, stage: str) -> float:
        return self.total

    def start_time(self, stage: str) -> float | None:
        return self.start

    def end_time(self, stage: str) -> float | None:
        return self.end


def test_earlier_sessions_are_the_clock_total_less_this_session():
    assert _earlier_sessions_s(_Clock(100.0, 10.0, 40.0)) == 70.0
    assert _earlier_sessions_s(_Clock(100.0, None, None)) == 100.0  # no training this session
    assert _earlier_sessions_s(_Clock(5.0, 10.0, 40.0)) == 0.0  # never negative
    now = time.monotonic()
    assert 89.0 < _earlier_sessions_s(_Clock(100.0, now - 10.0, None)) <= 90.0  # a session still running
