"""``resume=true`` on a single run that already finished: kept as it is, as a finished job of a
resumed sweep is (no new test, no new W&B run), unless the command raises the epoch cap of a run
that stopped at it; and no Lightning warning about the checkpoint folder vaelab resumes on purpose."""

from __future__ import annotations

import json
import warnings

from conftest import TINY, train_in_process


def offline_runs(run):
    return sorted(p.name for p in (run / "wandb").glob("offline-run-*"))


def test_resume_true_on_a_finished_run_keeps_it(tiny_root, tmp_path):
    args = [f"data.root={tiny_root}", *TINY, "logger=wandb"]
    run = tmp_path / "run"
    first = train_in_process(*args, f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    metrics, runs = (run / "metrics.json").read_text(), offline_runs(run)
    assert len(runs) == 1

    again = train_in_process(*args, "resume=true", f"hydra.run.dir={run}")
    assert again.returncode == 0, again.stderr[-2000:]
    best = json.loads(metrics)["val_loss_min"]
    assert f"kept {run}: completed before (val_loss_min {best})" in again.stdout
    assert again.value == best  # the sweepers' objective, as a kept sweep job returns it
    assert (run / "metrics.json").read_text() == metrics and offline_runs(run) == runs  # nothing tested or logged again


def test_resume_true_with_a_raised_cap_trains_on_without_lightning_s_folder_warning(tiny_root, tmp_path):
    args = [f"data.root={tiny_root}", *[o for o in TINY if not o.startswith("trainer.max_epochs")], "logger=none"]
    run = tmp_path / "run"
    assert train_in_process(*args, "trainer.max_epochs=2", f"hydra.run.dir={run}").returncode == 0
    assert json.loads((run / "metrics.json").read_text())["stop_reason"] == "max_epochs"
    with warnings.catch_warnings(record=True) as seen:  # every warning the resumed run lets through
        warnings.simplefilter("always")
        more = train_in_process(*args, "trainer.max_epochs=3", "resume=true", f"hydra.run.dir={run}")
    assert more.returncode == 0, more.stderr[-2000:]
    assert f"resuming {run}" in more.stdout and "epoch 3 (cap 3)" in more.stdout
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 3
    assert not [w for w in seen if "exists and is not empty" in str(w.message)]
