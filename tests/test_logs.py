"""Logs to rely on: train.log holds what the console shows without a terminal (the config tree, one
line per epoch, the end summary), once each on the console; TensorBoard's HParams tab holds the
run's settings beside val/loss_best."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY, run_cli, train_in_process


def test_train_log_holds_the_config_tree_the_epochs_and_the_summary(tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [o for o in TINY if o != "print_config=false"]
    ran = run_cli("vaelab.train", f"data.root={tiny_root}", *overrides, "trainer.max_epochs=3", "logger=none", f"hydra.run.dir={run}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert "config (resolved)" in log and "latent_dim: 2" in log and "\x1b[" not in log  # the tree, without colours
    for epoch in (1, 2, 3):
        assert f"] epoch {epoch} (cap 3)" in log and ran.stdout.count(f"] epoch {epoch} (cap 3)") == 1  # printed once
    best = json.loads((run / "metrics.json").read_text())["val_loss_min"]
    assert f"stopped: max_epochs after 3 epoch(s) (cap 3); minimal val/loss {best:.4f}" in log
    assert f"run: latent_dim=2 seed=0 kl=paper val_loss_min={best:.3f}" in log and f"run dir: {run}" in log
    assert ran.stdout.count("config (resolved)") == 1 and ran.stdout.count("stopped: max_epochs") == 1


def test_tensorboard_hparams_tab_shows_the_settings_beside_val_loss_best(tiny_root: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    ran = train_in_process(
        f"data.root={tiny_root}", *TINY, "trainer.max_epochs=3", "model.latent_dim=3", "logger=tensorboard", f"hydra.run.dir={run}"
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    (folder,) = {p.parent for p in run.rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in acc.PluginTagToContent("hparams").items()}
    experiment = next(c.experiment for c in content.values() if c.HasField("experiment"))
    assert [m.name.tag for m in experiment.metric_infos] == ["val/loss_best"]
    session = next(c.session_start_info for c in content.values() if c.HasField("session_start_info"))
    assert session.hparams["model/latent_dim"].number_value == 3 and session.hparams["model/kl"].string_value == "paper"
    assert session.hparams["data/batch_size"].number_value == 50
    metrics = json.loads((run / "metrics.json").read_text())
    # the value the tab shows: the last val/loss_best point, the run's minimum, at its epoch
    last = acc.Scalars("val/loss_best")[-1]
    assert (last.step, round(last.value, 4)) == (metrics["val_loss_min_epoch"], round(metrics["val_loss_min"], 4))
