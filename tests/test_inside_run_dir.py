"""Every path a run writes stays inside its run dir (issue 26, item 2): config values joined into
the loggers' and callbacks' paths are refused when they leave it, and a symbolic link planted in a
run dir is refused, never written through (train.log, .lock)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from conftest import TINY, composed, run_cli


def _error_lines(proc) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_logger_name_that_leaves_the_job_dir_is_refused_and_recorded(tiny_root: Path, tmp_path: Path) -> None:
    """The probe of issue 26 (exit 0, metrics.csv two folders up) and its variant into another job's dir."""
    sweep = tmp_path / "deep" / "S"
    args = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=csv", f"hydra.sweep.dir={sweep}"]
    proc = run_cli("vaelab.train", "-m", *args, "logger.csv.name=../../esc_csv,../0")
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = _error_lines(proc)
    assert (
        f"error: logger.csv.name=../../esc_csv is invalid: it would write to {tmp_path / 'deep' / 'esc_csv'}, outside the run dir {sweep / '0'}"
        in lines[0]
    )
    assert lines[1].startswith(f"error: logger.csv.name=../0 is invalid: it would write to {sweep / '0'}, outside the run dir {sweep / '1'}")
    assert "0: FAILED logger.csv.name=../../esc_csv is invalid" in proc.stdout and "2 failed" in proc.stdout
    # nothing written outside the job dirs, nothing of job 1 in job 0's dir; each failed job keeps its record
    assert _files(tmp_path) - {"deep", "deep/S"} == {f"deep/S/{f}" for f in _files(sweep)}
    assert not list(tmp_path.rglob("metrics.csv")) and not list(tmp_path.rglob("hparams.yaml"))
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "failed"


def test_a_save_dir_outside_refuses_a_single_run_and_leaves_nothing(tiny_root: Path, tmp_path: Path) -> None:
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    proc = run_cli(
        "vaelab.train", f"data.root={tiny_root}", *TINY, "logger=tensorboard", f"logger.tensorboard.save_dir={elsewhere}", f"hydra.run.dir={run}"
    )
    assert proc.returncode == 2 and _error_lines(proc) == [proc.stderr.strip().splitlines()[-1]], proc.stderr[-3000:]
    assert _error_lines(proc)[0].startswith(
        f"error: logger.tensorboard.save_dir={elsewhere} is invalid: it would write to {elsewhere}, outside the run dir {run}"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("logger.csv.version=../../x", "logger.csv.version=../../x is invalid"),
        ("logger.csv.save_dir=/tmp", "logger.csv.save_dir=/tmp is invalid"),
        ("callbacks.model_checkpoint.filename=../../best", "callbacks.model_checkpoint.filename=../../best is invalid"),
        ("callbacks.images.out_dir=/tmp/images", "callbacks.images.out_dir=/tmp/images is invalid"),
        ("logger.csv.name=" + "n" * 300, "is longer than the 255 characters a name may have here"),
        ("logger.csv.name=csv/../csv2", None),  # inside: allowed
    ],
)
def test_path_keys_are_checked_against_the_run_dir(override: str, named: str | None, tmp_path: Path) -> None:
    from vaelab.config.run_paths import check_inside_run_dir
    from vaelab.errors import UserError

    with composed("train", ["logger=csv", override], run_dir=tmp_path / "run") as cfg:
        if named is None:
            check_inside_run_dir(cfg, cfg.paths.output_dir)
            return
        with pytest.raises(UserError, match=named.replace(".", r"\.")):
            check_inside_run_dir(cfg, cfg.paths.output_dir)


@pytest.mark.parametrize("logger", ["wandb", "tensorboard", "csv", "none"])
def test_the_shipped_loggers_write_inside_the_run_dir(logger: str, tmp_path: Path) -> None:
    from vaelab.config.run_paths import check_inside_run_dir

    # W&B's name is its run's display name, not a folder: slashes and dots are its own business
    extra = ["logger.wandb.name=a/../../b"] if logger == "wandb" else []
    with composed("train", [f"logger={logger}", *extra], run_dir=tmp_path / "run") as cfg:
        check_inside_run_dir(cfg, cfg.paths.output_dir)


def test_a_symlinked_train_log_is_never_written_through(tiny_root: Path, tmp_path: Path) -> None:
    """A fresh run dir and a sweep's job dir whose train.log links to a file elsewhere: refused
    with one line, the file untouched; the sweep's other job runs."""
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    for job in (run, sweep / "0"):
        job.mkdir(parents=True)
        (job / "train.log").symlink_to(victim)
    base = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none"]
    proc = run_cli("vaelab.train", *base, f"hydra.run.dir={run}")
    assert proc.returncode == 2 and len(_error_lines(proc)) == 1, proc.stderr[-3000:]
    assert _error_lines(proc)[0].startswith(f"error: {run / 'train.log'} is a symbolic link (to {victim})")
    proc = run_cli("vaelab.train", "-m", *base, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1 and "  0: REFUSED " in proc.stdout and "1 completed, 1 refused" in proc.stdout, proc.stdout[-3000:]
    assert victim.read_text() == "mine\n" and (sweep / "0" / "train.log").is_symlink()
    assert "epoch 1" in (sweep / "1" / "train.log").read_text()


def test_the_job_log_opens_no_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Hydra's job log handler: a link planted after the claim (a race) is not opened either; its
    lines are dropped with one warning. A plain file is appended to."""
    from vaelab.joblog import RunLogFile

    victim, link, plain = tmp_path / "victim.txt", tmp_path / "train.log", tmp_path / "plain.log"
    victim.write_text("mine\n")
    link.symlink_to(victim)
    plain.write_text("before\n")
    record = logging.LogRecord("vaelab", logging.INFO, __file__, 0, "a line", None, None)
    for path in (link, plain):
        handler = RunLogFile(str(path))
        handler.emit(record)
        handler.emit(record)
        handler.close()
    assert victim.read_text() == "mine\n" and plain.read_text() == "before\na line\na line\n"
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning: ")]
    assert warnings == [f"warning: {link} is a symbolic link: the job log is not written through it"]


def test_a_symlinked_lock_file_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    from vaelab.errors import UserError
    from vaelab.runs.claim import claim

    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(victim, run / ".lock")
    with pytest.raises(UserError, match=r"\.lock is a symbolic link"):
        claim(run, {}, resume=False, multirun=False)
    assert victim.read_text() == "mine\n"


def test_a_json_file_is_never_written_through_a_link_at_its_temp_name(tmp_path: Path) -> None:
    """status.json, metrics.json, eval.json: written to <name>.tmp, then renamed; a link planted at
    the temp name (vaelab.evaluate writes eval.json into a run dir it does not claim) is removed."""
    from vaelab.runs.layout import write_json

    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (tmp_path / "eval.json.tmp").symlink_to(victim)
    write_json(tmp_path / "eval.json", {"k": 1})
    assert victim.read_text() == "mine\n" and json.loads((tmp_path / "eval.json").read_text()) == {"k": 1}
    assert not (tmp_path / "eval.json.tmp").exists() and not (tmp_path / "eval.json").is_symlink()
