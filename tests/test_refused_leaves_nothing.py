"""What a refused command leaves (issue 26, items 4 and 5): a single run refused for a bad value,
file or path leaves no run dir, through the real command line; messages name the right key; a
refused report leaves no folder. (A multirun keeps a refused job's record: test_inside_run_dir.py,
test_faults.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, run_cli


def _the_error_line(proc) -> str:
    """The one ``error:`` line of a refused command (exit 2, no traceback), the last on stderr."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.latent_dim=0", "error: model.latent_dim=0 is invalid: expected an integer >= 1"),
        ("data.batch_size=1000000000000", "error: data.batch_size=1000000000000 is larger than the training split (500 images: 600 in "),
        ("data.root={tmp}/no/such/root", "error: data.root={tmp}/no/such/root"),
        ("ckpt_path={tmp}/notes.ckpt", "error: ckpt_path={tmp}/notes.ckpt is not a readable checkpoint"),
    ],
)
def test_a_refused_single_run_leaves_no_run_dir(override: str, expected: str, tiny_root: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    args = [f"data.root={tiny_root}", *TINY, "logger=csv", f"hydra.run.dir={tmp_path / 'runs' / 'run'}", override.format(tmp=tmp_path)]
    line = _the_error_line(run_cli("vaelab.train", *args))
    assert line.startswith(expected.format(tmp=tmp_path)), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ckpt"]  # not even runs/


def test_resume_without_a_run_dir_is_refused_before_anything_is_made(tiny_root: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    proc = run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", "resume=true", env={"VAELAB_OUTPUT_ROOT": str(outputs)})
    line = _the_error_line(proc)
    assert line.startswith(f"error: resume=true but the run dir {outputs}/runs/") and "(no hydra.run.dir was given)" in line, line
    assert "pass hydra.run.dir=<the run dir to resume>" in line and not outputs.exists()
    missing = tmp_path / "gone"
    line = _the_error_line(run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", "resume=true", f"hydra.run.dir={missing}"))
    assert line.startswith(f"error: resume=true but the run dir {missing} does not exist: ") and not missing.exists()


def test_an_unknown_key_under_a_group_option_is_named(tmp_path: Path) -> None:
    line = _the_error_line(run_cli("vaelab.train", "trainer=cpu", "trainer.limit_train_batches=15", f"hydra.run.dir={tmp_path / 'run'}"))
    assert line.startswith("error: trainer.limit_train_batches=15: unknown config key 'trainer.limit_train_batches'"), line
    assert list(tmp_path.iterdir()) == []


def test_a_path_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    """A 300-character folder name, and a 5,043-character path of short names (the probes of issue 26)."""
    long_name = tmp_path / ("a" * 300) / "run"
    line = _the_error_line(run_cli("vaelab.train", f"hydra.run.dir={long_name}"))
    assert line.startswith("error: hydra.run.dir=") and "is longer than the 255 characters a name may have here" in line, line
    deep = tmp_path / "/".join(["abcdefghi"] * ((5043 - len(str(tmp_path))) // 10))
    line = _the_error_line(run_cli("vaelab.train", "-m", "seed=0,1", f"hydra.sweep.dir={deep}"))
    assert line.startswith("error: hydra.sweep.dir=") and f"it is {len(str(deep))} characters long, over the 4096" in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_report_on_a_sweep_still_running_leaves_no_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "status.json").write_text(json.dumps({"status": "running"}))
    line = _the_error_line(run_cli("vaelab.report", str(sweep), "--wandb-mode", "disabled"))
    assert line.startswith(f"error: no job of {sweep} completed"), line
    assert sorted(p.name for p in sweep.iterdir()) == ["0"]
