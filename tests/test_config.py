"""Config composition, and one clear line for every bad value (through the real CLI: the command-line contract)."""

from itertools import product
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import REPO, run_cli
from vaelab.paths import CONF_DIR as CONF


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_the_config_groups_are_found_at_the_top_of_the_checkout():
    """The design card's layout: conf/ at the top, shipped as vaelab.conf (an empty group here would
    leave the parametrised tests below with nothing to check)."""
    assert CONF.resolve() == (REPO / "conf").resolve()
    assert {"experiment", "trainer", "logger", "model", "data", "speed"} <= {p.name for p in CONF.iterdir() if p.is_dir()}
    assert all(options(group) for group in ("experiment", "trainer", "logger", "model", "data", "speed"))


@pytest.mark.parametrize("experiment,trainer,logger", list(product([None, *options("experiment")], options("trainer"), options("logger"))))
def test_every_combination_composes(experiment, trainer, logger):
    overrides = [f"trainer={trainer}", f"logger={logger}"] + ([f"experiment={experiment}"] if experiment else [])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    assert cfg.model._target_ == "vaelab.training.fast_steps.FastVAEModule"  # speed=fast, the default
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    OmegaConf.to_container(cfg.model, resolve=True)  # interpolations inside the model resolve
    if logger == "none":
        assert not cfg.logger
    else:
        assert list(cfg.logger) == [logger]
    if trainer == "cpu":
        assert cfg.trainer.accelerator == "cpu"


def test_the_checkpoint_file_names_are_the_ones_the_run_dir_readers_look_for():
    from fnmatch import fnmatch

    from vaelab.runs.layout import BEST_CKPT_GLOB, CHECKPOINTS, LAST_CKPT

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("train", overrides=["paths.output_dir=/run"])
    best, last = cfg.callbacks.model_checkpoint, cfg.callbacks.last_checkpoint
    assert fnmatch(best.filename.format(epoch=3) + ".ckpt", BEST_CKPT_GLOB) and last.filename + ".ckpt" == LAST_CKPT
    assert best.dirpath == last.dirpath == f"/run/{CHECKPOINTS}"


def test_experiment_paper_sets_the_report_setting():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=paper", "model.latent_dim=1"])
    assert (cfg.model.kl, cfg.model.recon, cfg.model.beta, list(cfg.model.hidden)) == ("paper", "bce", 1.0, [400])
    assert cfg.model.latent_dim == 1  # the command line wins over the experiment file


def test_experiment_literature_halves_the_rate_on_a_plateau_and_a_user_can_drop_it():
    """The literature recipe's schedule (conf/model/scheduler/plateau_long.yaml) is the config the
    committed results/literature/ runs were given on the command line, and `model/scheduler=none`
    (or another schedule) replaces it whole, leaving no plateau keys behind."""
    spelled = ["model/scheduler=plateau", "model.scheduler.patience=20", "model.scheduler.min_lr=1e-5"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        recipe = compose(config_name="train", overrides=["experiment=literature"])
        by_hand = compose(config_name="train", overrides=["experiment=literature", *spelled])
        constant = compose(config_name="train", overrides=["experiment=literature", "model/scheduler=none"])
        cosine = compose(config_name="train", overrides=["experiment=literature", "model/scheduler=cosine"])
    sched = recipe.model.scheduler
    assert (sched._target_, sched.mode, sched.factor, sched.patience, sched.min_lr) == (
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "min",
        0.5,
        20,
        1e-5,
    )
    assert sched.patience < recipe.callbacks.early_stopping.patience == 50  # reductions come before a stop
    assert OmegaConf.to_container(recipe) == OmegaConf.to_container(by_hand)
    assert constant.model.scheduler is None
    assert set(cosine.model.scheduler) == {"_target_", "_partial_", "T_max", "eta_min"}


def test_every_config_key_has_a_comment():
    """Config holds choices and explains them: each default is preceded by or carries a comment.

    Override files (``# @package _global_``: experiments, debug modes) explain themselves in their
    header instead.
    """
    missing = []
    for path in CONF.rglob("*.yaml"):
        lines = path.read_text().splitlines()
        if lines and lines[0].startswith("# @package _global_"):
            continue
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
                continue
            key = stripped.split(":", 1)[0]
            value = stripped.split(":", 1)[1].strip()
            if key in ("defaults", "_target_") or value == "" or "#" in line:
                continue  # section headers and targets explain themselves
            prev = lines[i - 1].strip() if i else ""
            if not prev.startswith("#") and not (prev and ":" in prev and not prev.split(":", 1)[1].strip()):
                missing.append(f"{path.relative_to(REPO)}:{i + 1} {key}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


BAD = [
    (["model.latent_dim=0"], "model.latent_dim", "integer >= 1"),
    (["model.latent_dim=-1"], "model.latent_dim", "integer >= 1"),
    (["model.latent_dim=two"], "model.latent_dim", "integer >= 1"),
    (["model=nosuch"], "model", "vae_mlp"),
    (["data.batch_size=0"], "data.batch_size", "integer >= 1"),
    (["model.lr=-0.1"], "model.lr", "number > 0"),
    (["data.root=/nonexistent/mnist"], "data.root", "VAELAB_DATA_ROOT"),
    (["model.kl=exact"], "model.kl", "paper, analytic"),
    (["model.latnt_dim=2"], "latnt_dim", "unknown config key"),
    (["trainer=nosuch"], "trainer", "cpu, ddp, default, gpu"),
]


@pytest.mark.parametrize("args,key,accepted", BAD, ids=[a[0] for a, _, _ in BAD])
def test_bad_value_gives_one_clear_line(args, key, accepted, tiny_root: Path, tmp_path: Path):
    root = [] if any(a.startswith("data.root") for a in args) else [f"data.root={tiny_root}"]
    proc = run_cli("vaelab.train", *root, *args, "logger=none", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and key in lines[0] and accepted in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "metrics.json").exists()
