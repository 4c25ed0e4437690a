"""A network's own settings (``model.net_args``): set in its YAML and on the command line, checked
against the class before the run dir is made, recorded in the checkpoint and restored from it alone,
compared by ``resume=true`` and ``ckpt_path=``.

The model outside the package is trained and sampled through the real command lines (its module
found through ``PYTHONPATH``, its YAML through ``hydra.searchpath``, as docs/architecture.md tells a
user); the rest is called in process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import TINY, model_outside, run_cli, train_in_process
from vaelab.errors import UserError
from vaelab.runs.claim import changed_settings
from vaelab.runs.reading import load_module, open_checkpoint
from vaelab.training.checkpoint import read_checkpoint

# a network the package does not ship, with an argument of its own: the width of a bottleneck layer
# between the shared hidden layers and the latent code
MODULE = """
from torch import nn

from vaelab.vae.model import IMAGE_PIXELS, GaussianVAE


def relu_mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class BottleneckVAE(GaussianVAE):
    def __init__(self, latent_dim, hidden=(64,), log_scale_max=10.0, width=16):
        super().__init__(latent_dim, log_scale_max)
        self.width = int(width)
        self.encoder = relu_mlp([IMAGE_PIXELS, *hidden, self.width, 2 * self.latent_dim])
        self.decoder = relu_mlp([self.latent_dim, self.width, *reversed(list(hidden)), IMAGE_PIXELS])
"""

# its YAML: the shipped MLP's keys, this network and its own argument
YAML = """
# a model of my own: the shipped MLP's settings, with my network
defaults:
  - vae_mlp
  - _self_
# my network class, by import path
net: mynets.BottleneckVAE
# its own arguments
net_args:
  # units of the layer before the latent code
  width: 16
"""


@pytest.fixture()
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding mynets.py and conf/model/mynet.yaml, outside the package, on ``sys.path`` for this test."""
    return model_outside(tmp_path, monkeypatch, "mynets", MODULE, "mynet", YAML)


def _error_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return line


def test_a_model_outside_the_package_takes_its_argument_from_the_command_line(outside: Path, tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {"PYTHONPATH": os.pathsep.join([str(outside), os.environ.get("PYTHONPATH", "")]), "WANDB_MODE": "disabled"}
    search = f"hydra.searchpath=[file://{outside / 'conf'}]"
    trained = run_cli(
        "vaelab.train", "model=mynet", search, "model.net_args.width=24", f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1",
        "logger=none", f"hydra.run.dir={run}", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads((run / "run_info.json").read_text())["config"]["model"]["net_args"] == {"width": 24}
    ckpt = json.loads((run / "metrics.json").read_text())["best_ckpt"]
    assert open_checkpoint(ckpt).hparams["net_args"] == {"width": 24}  # a plain dict: read weights-only

    # the sample command rebuilds the network from the checkpoint alone (no searchpath, no override):
    # with the YAML's width (16) the saved weights would not fit
    out = tmp_path / "samples"
    sampled = run_cli("vaelab.sample", f"ckpt_path={ckpt}", f"out={out}", "n_samples=4", env=env)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["latent_grid.png", "latents_test.pt", "samples.png"]
    module = load_module(ckpt)  # as the sample command loads it
    assert (type(module.vae).__name__, module.vae.width) == ("BottleneckVAE", 24)
    assert module.vae.encoder[2].weight.shape == (24, 32)  # TINY's hidden [32] -> width 24


@pytest.mark.parametrize(
    "override,says",
    [
        # an argument the class does not take: named, with the ones it takes
        ("+model.net_args.depth=3", "error: model.net_args.depth is not an argument of mynets.BottleneckVAE: the arguments of its own are width; "),
        # a shared argument comes from its own key
        ("+model.net_args.latent_dim=3", "error: model.net_args.latent_dim is set by model.latent_dim, not in model.net_args: "),
        # a value the class refuses (its own ValueError), before any work
        ("model.net_args.width=-2", "error: mynets.BottleneckVAE refuses model.net_args.width=-2 (with model.hidden=[32]): "),
        # an object to build is not a setting a checkpoint can hold
        ("model.net_args.width={_target_:builtins.int}", "error: model.net_args.width is an object to build (_target_): "),
    ],
)
def test_a_wrong_net_argument_is_one_line_before_the_run_dir(override: str, says: str, outside: Path, tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = train_in_process(
        "model=mynet", f"hydra.searchpath=[file://{outside / 'conf'}]", override, f"data.root={tiny_root}", *TINY, "logger=none",
        f"hydra.run.dir={run}", env={"WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert _error_line(proc).startswith(says)
    assert not run.exists()


@pytest.fixture(scope="module")
def conv_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch ConvVAE run with channels [4, 8] set on the command line (not its YAML's [32, 64])."""
    run = tmp_path_factory.mktemp("conv") / "run"
    proc = train_in_process(
        "model=vae_conv", f"data.root={tiny_root}", *TINY, "model.net_args.channels=[4,8]", "model.hidden=[]", "trainer.max_epochs=1",
        "logger=none", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def _conv_args(tiny_root: Path, *extra: str) -> list[str]:
    return ["model=vae_conv", f"data.root={tiny_root}", *TINY, "model.hidden=[]", "trainer.max_epochs=1", "logger=none", *extra]


def test_a_conv_checkpoint_restores_its_channels(conv_run: Path) -> None:
    ckpt = json.loads((conv_run / "metrics.json").read_text())["best_ckpt"]
    module = load_module(ckpt)
    assert module.vae.channels == [4, 8] and module.vae.hidden == [] and module.vae.feature_shape == (8, 7, 7)
    assert module.vae.encoder[1].weight.shape == (4, 1, 4, 4)
    # ckpt_path= with the same shape passes the check; another channel list is refused, naming the key
    read_checkpoint(ckpt, 2, [], "vaelab.vae.conv.ConvVAE", {"channels": [4, 8]})
    with pytest.raises(UserError, match=r"trained with model.net_args.channels=\[4, 8\], but this run has model.net_args.channels=\[32, 64\]"):
        read_checkpoint(ckpt, 2, [], "vaelab.vae.conv.ConvVAE", {})  # the class's default


def test_ckpt_path_with_other_channels_is_refused(conv_run: Path, tiny_root: Path, tmp_path: Path) -> None:
    ckpt = json.loads((conv_run / "metrics.json").read_text())["best_ckpt"]
    run = tmp_path / "run"
    proc = train_in_process(*_conv_args(tiny_root, "model.net_args.channels=[4,4]", f"ckpt_path={ckpt}", f"hydra.run.dir={run}"))
    assert "was trained with model.net_args.channels=[4, 8], but this run has model.net_args.channels=[4, 4]: make them match" in _error_line(proc)
    assert not run.exists()


def test_resume_names_a_changed_net_argument(conv_run: Path, tiny_root: Path) -> None:
    before = (conv_run / "metrics.json").read_text()
    proc = train_in_process(
        *_conv_args(tiny_root, "model.net_args.channels=[4,4]", "trainer.max_epochs=2", "resume=true", f"hydra.run.dir={conv_run}")
    )
    assert "model.net_args.channels: [4, 8] -> [4, 4]" in _error_line(proc)
    assert (conv_run / "metrics.json").read_text() == before


def test_net_arguments_are_compared_as_the_network_is_built() -> None:
    conv = "vaelab.vae.conv.ConvVAE"

    def config(**model) -> dict:
        return {"model": {"net": conv, **model}}

    def changed(recorded: dict, current: dict) -> list[str]:
        return [c for c in changed_settings(recorded, current) if c.startswith("model.net")]

    # a run recorded before model.net_args existed built ConvVAE with its default channels
    assert changed(config(), config(net_args={"channels": [32, 64]})) == []
    assert changed(config(net_args={}), config(net_args={"channels": [32, 64]})) == []
    assert changed(config(), config(net_args={"channels": [16, 32]})) == ["model.net_args.channels: [32, 64] -> [16, 32]"]
    # another class: its name, and its arguments as they were written
    assert changed(config(net_args={"channels": [8]}), {"model": {"net": "vaelab.vae.model.VAE", "net_args": {}}}) == [
        f"model.net: '{conv}' -> 'vaelab.vae.model.VAE'",
        "model.net_args.channels: [8] -> '<absent>'",
    ]
