"""Nothing a refused or interrupted command writes may lie (issue 21): a refused command leaves the
run's record as it was, a sweep of refused jobs fails, a moved run dir resumes from its own files,
one best checkpoint remains, and bad paths or packages are one error line before any work."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, evaluate_in_process, report_in_process, run_cli, train_in_process

FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "run_info.json", "metrics.json", "status.json")


def _digest(run: Path) -> dict[str, str]:
    return {f: hashlib.md5((run / f).read_bytes()).hexdigest() for f in FILES if (run / f).is_file()}


def _one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and lines[-1].startswith("error: "), proc.stderr[-2000:]
    return lines[-1]


@pytest.fixture()
def done_run(tiny_root: Path, tmp_path: Path) -> Path:
    """A completed 1-epoch run, trained in process (the task writes Hydra's record into .hydra/)."""
    run = tmp_path / "run"
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / ".hydra" / "overrides.yaml").is_file()
    return run


def test_a_refused_command_leaves_the_record_of_the_run(done_run: Path, tiny_root: Path) -> None:
    before = _digest(done_run)
    base = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={done_run}"]
    # the command line once: Hydra itself writes .hydra/ before the task starts
    line = _one_error_line(run_cli("vaelab.train", *base, "seed=3"))
    assert "holds a run with other settings" in line, line
    assert _digest(done_run) == before  # .hydra/*, run_info.json, metrics.json, status.json untouched
    for extra in (["resume=true", "model.kl=analytic"], ["resume=true", "model.fused=false"]):
        line = _one_error_line(train_in_process(*base, *extra))
        assert "other settings" in line, line
        assert _digest(done_run) == before, extra


def test_a_sweep_whose_jobs_are_all_refused_fails_and_keeps_its_record(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.sweep.dir={sweep}"]
    first = run_cli("vaelab.train", "-m", *args, "model.latent_dim=1,2")
    assert first.returncode == 0, first.stderr[-2000:]
    record, jobs = (sweep / "multirun.yaml").read_bytes(), {n: _digest(sweep / n) for n in ("0", "1")}
    swapped = run_cli("vaelab.train", "-m", *args, "model.latent_dim=2,1", "resume=true")
    assert swapped.returncode == 1, swapped.stdout[-2000:]
    assert "  0: REFUSED " in swapped.stdout and "  1: REFUSED " in swapped.stdout and "2 refused" in swapped.stdout
    assert "error: 2 of 2 job(s) did not complete: 0, 1" in swapped.stderr
    assert (sweep / "multirun.yaml").read_bytes() == record and {n: _digest(sweep / n) for n in ("0", "1")} == jobs
    # the report still shows the command that made the runs
    from vaelab.report.collect import sweep_command

    assert "model.latent_dim=1,2" in sweep_command(sweep) and "resume" not in sweep_command(sweep)


def test_a_moved_run_dir_resumes_and_tests_its_own_checkpoints(tiny_root: Path, tmp_path: Path) -> None:
    first, moved = tmp_path / "first", tmp_path / "moved"
    base = [f"data.root={tiny_root}", *TINY, "logger=none"]
    assert train_in_process(*base, "trainer.max_epochs=2", f"hydra.run.dir={first}").returncode == 0
    shutil.copytree(first, moved)
    (moved / "status.json").write_text(json.dumps({"status": "interrupted"}))
    shutil.rmtree(first)  # resuming must not need (or use) the original
    ran = train_in_process(*base, "trainer.max_epochs=3", "resume=true", f"hydra.run.dir={moved}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    metrics = json.loads((moved / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and Path(metrics["best_ckpt"]).parent == moved / "checkpoints"
    assert json.loads((moved / "status.json").read_text())["status"] == "completed"


def test_one_best_checkpoint_is_left_after_a_stale_one(tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = [f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={run}"]
    assert train_in_process(*base, "trainer.max_epochs=2").returncode == 0
    # what a kill between writing a new best and deleting the old one leaves: an untracked best file
    shutil.copy(run / "checkpoints" / "best-epoch002.ckpt", run / "checkpoints" / "best-epoch001.ckpt")
    (run / "status.json").write_text(json.dumps({"status": "interrupted"}))
    assert train_in_process(*base, "trainer.max_epochs=3", "resume=true").returncode == 0
    assert sorted(p.name for p in (run / "checkpoints").glob("best-*.ckpt")) == ["best-epoch003.ckpt"]


def test_bad_output_paths_and_a_missing_logger_package_are_one_line(done_run: Path, tiny_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    ckpt = json.loads((done_run / "metrics.json").read_text())["best_ckpt"]
    line = _one_error_line(evaluate_in_process(f"ckpt_path={ckpt}", f"out={blocker / 'eval.json'}", "k=2", f"data.root={tiny_root}"))
    assert line.startswith(f"error: out={blocker / 'eval.json'} cannot be created: {blocker} is a file")
    sweep = done_run.parent / "sweep"
    line = _one_error_line(report_in_process(str(done_run.parent), "--out", str(blocker / "r"), "--wandb-mode", "disabled"))
    assert line.startswith(f"error: --out={blocker / 'r'} cannot be created") and not sweep.exists()
    line = _one_error_line(run_cli("vaelab.train", f"data.root={blocker}", "logger=none", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert line.startswith(f"error: data.root={blocker} is a file, not a folder")
    # a logger whose package is missing: tensorboard hidden from the interpreter
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorboard', 'tensorboardX'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    proc = run_cli(
        "vaelab.train", f"data.root={tiny_root}", *TINY, "logger=tensorboard", f"hydra.run.dir={tmp_path / 'tb'}", env={"PYTHONPATH": str(hide)}
    )
    assert _one_error_line(proc).startswith("error: logger=tensorboard cannot start: No module named 'tensorboard'")


def test_a_report_where_every_job_failed_exits_non_zero(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("vaelab.train", "-m", f"data.root={tiny_root}", *TINY, "logger=none", "model.lr=-1,-2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1 and "2 failed" in proc.stdout, proc.stdout[-2000:]
    line = _one_error_line(report_in_process(str(sweep), "--wandb-mode", "disabled"))
    assert line.startswith(f"error: no job of {sweep} completed")


def test_report_writes_beside_the_sweep_and_leaves_results_alone(done_run: Path, tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sw"
    proc = run_cli(
        "vaelab.train", "-m", f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", "model.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    committed = {p: p.read_bytes() for p in (REPO / "results").glob("*") if p.is_file()}
    report = report_in_process(str(sweep), "--wandb-mode", "disabled", "--data-root", str(tiny_root))
    assert report.returncode == 0, report.stderr[-2000:]
    assert {p: p.read_bytes() for p in (REPO / "results").glob("*") if p.is_file()} == committed
    rows = (sweep / "report" / "val_loss.csv").read_text().splitlines()
    # two learning rates, one seed each: two rows with an lr column, never one row "over 2 seeds"
    assert rows[0].split(",")[:5] == ["data", "model", "kl", "latent_dim", "model.lr"] and len(rows) == 3
    assert [float(r.split(",")[4]) for r in rows[1:]] == [0.001, 0.002]
    assert [r.split(",")[rows[0].split(",").index("n_seeds")] for r in rows[1:]] == ["1", "1"]
    assert (sweep / "report" / "trials.png").is_file()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
