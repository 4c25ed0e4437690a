"""The two speeds (conf/speed/): the class that runs is named by the speed group alone, the config
check knows which class takes lists of batches without importing Lightning, and the plain module
and the speed path report the same training loss, to the bit."""

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, composed, run_cli, run_result, train_in_process
from vaelab.paths import CONF_DIR


def test_the_speed_group_names_the_module_and_no_model_file_does():
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        assert "_target_" not in OmegaConf.load(path), f"{path.name} names a class the speed group replaces"
    for speed, target in (("fast", "vaelab.training.fast_steps.FastVAEModule"), ("plain", "vaelab.training.module.VAEModule")):
        with composed("train", [f"speed={speed}"]) as cfg:
            assert cfg.model._target_ == target


def test_the_config_check_knows_the_modules_by_name():
    from hydra.utils import get_class

    from vaelab.config.validate import TAKES_BATCH_LISTS

    assert set(TAKES_BATCH_LISTS) == {str(OmegaConf.load(p).model._target_) for p in (CONF_DIR / "speed").glob("*.yaml")}
    for target, takes in TAKES_BATCH_LISTS.items():
        assert get_class(target).takes_batch_lists is takes


def test_a_refused_steps_per_call_names_the_key_without_importing_lightning(tiny_root):
    proc = run_cli(
        "vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", "speed=plain", "data.steps_per_call=8", env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [
        "error: data.steps_per_call=8 needs the speed path's module (speed=fast); vaelab.training.module.VAEModule takes one batch per "
        "call: set data.steps_per_call=1"
    ]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and "pytorch_lightning" not in imported


@pytest.mark.parametrize("warmup", [0, 3])
def test_both_speeds_report_the_same_training_loss(tiny_root, tmp_path, warmup):
    # 10 batches per epoch, 3 per call under speed=fast: the loss sums (torchmetrics' float64 mean in
    # the plain module, the speed path's own capturable float64 sum) must agree to the bit, and so
    # must everything else (with a KL warm-up: a float weight there, a tensor filled in place here)
    results = []
    for speed in ("fast", "plain"):
        steps = 3 if speed == "fast" else 1
        args = [f"data.root={tiny_root}", *TINY, "logger=none", f"speed={speed}", f"data.steps_per_call={steps}", f"model.kl_warmup_epochs={warmup}"]
        proc = train_in_process(*args, f"hydra.run.dir={tmp_path / speed}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        results.append(run_result(tmp_path / speed))
    assert results[0] == results[1]
    assert all(torch.isfinite(torch.tensor(row["train/loss"])) for row in results[0]["history"])
