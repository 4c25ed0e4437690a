"""The model and data choices: model=vae_conv (the convolutional VAE), data=fashion_mnist (through
the one MNIST data module), logger=tensorboard, and the MLP's numbers kept as they were."""

from __future__ import annotations

import json
import os
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import REPO, TINY, graph_and_eager, run_result, train_in_process, write_idx
from vaelab.config.schema import check
from vaelab.data.datamodule import MNISTDataModule
from vaelab.data.idx_files import DATASETS, FASHION_MNIST_FILES, check_mnist_raw
from vaelab.errors import UserError
from vaelab.paths import CONF_DIR as CONF
from vaelab.training.module import VAEModule
from vaelab.vae.conv import ConvVAE
from vaelab.vae.loss import vae_loss
from vaelab.vae.model import VAE, GaussianVAE
from vaelab.vae.nets import build_net, net_class, unknown_arguments

MLP, CONV = "vaelab.vae.model.VAE", "vaelab.vae.conv.ConvVAE"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def make_tiny_fashion(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 1) -> Path:
    """``root/FashionMNIST/raw/`` with tiny idx files: class ``k`` is a filled box of height ``2k + 4``
    (garment-like blobs, unlike conftest's MNIST strokes), so a test can tell which files were read."""
    rng = np.random.default_rng(seed)
    raw = root / "FashionMNIST" / "raw"
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28))
        for i, k in enumerate(labels):
            x[i, 4 : 4 + 2 * k + 4, 6:22] = 0.9
        x = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
        write_idx(raw / f"{split}-images-idx3-ubyte", (x * 255).astype(np.uint8), 2051)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels.astype(np.uint8), 2049)
    return root


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_fashion(tmp_path_factory.mktemp("tiny_fashion"))


# ------------------------------------------------------------------------------------------ models
def test_mlp_numbers_are_unchanged():
    """Regression values of the report's MLP (latent 2, hidden [400]), computed with this very code
    on the tree *before* model.arch / vaelab.vae.archs existed (commit daa2de8 plus the working tree
    of 2026-11-27, CPU, torch 2.14.1): same parameter count, same seeded initial weights (their sum),
    same per-image losses. If they move, MLP runs no longer give the numbers of earlier runs."""
    torch.manual_seed(0)
    module = VAEModule(latent_dim=2, hidden=[400])
    assert isinstance(module.vae, VAE) and module.hparams.net == MLP
    assert sum(p.numel() for p in module.parameters()) == 631188  # 784*400+400 + 400*4+4 + 2*400+400 + 400*784+784
    assert sum(float(p.detach().double().sum()) for p in module.parameters()) == pytest.approx(35.7849955831516, abs=1e-9)
    assert list(module.state_dict()) == [f"vae.{part}.{i}.{w}" for part in ("encoder", "decoder") for i in (0, 2) for w in ("weight", "bias")]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 784, generator=g)
    noise = torch.randn(4, 2, generator=g)
    with torch.no_grad():
        terms = module.terms(x, noise)
    expected = [545.1732788085938, 548.0321655273438, 570.0615844726562, 546.8064575195312]
    assert terms.loss.tolist() == pytest.approx(expected, rel=1e-6)
    assert float(terms.nelbo.double().sum()) == pytest.approx(2209.9124145507812, rel=1e-6)
    # the tests' small MLP (TINY: hidden [32]) too, latent 1
    torch.manual_seed(0)
    small = VAEModule(latent_dim=1, hidden=[32])
    assert sum(p.numel() for p in small.parameters()) == 51122
    assert sum(float(p.detach().double().sum()) for p in small.parameters()) == pytest.approx(-6.764929227881794, abs=1e-9)


def test_conv_vae_shapes_and_interface():
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=3, hidden=[64], log_scale_max=2.0)
    assert vae.latent_dim == 3 and vae.feature_shape == (64, 7, 7)
    x = torch.rand(5, 784)
    m, log_scale = vae.encode(x)
    assert m.shape == log_scale.shape == (5, 3)
    # images may come flat (as the data module gives them) or as [b, 1, 28, 28]: same codes
    torch.testing.assert_close(vae.encode(x.view(5, 1, 28, 28))[0], m)
    logits, m2, s2, c = vae(x, torch.zeros(5, 3))
    assert logits.shape == (5, 784) and c.shape == (5, 3)
    torch.testing.assert_close(c, m2)  # zero noise: c = m
    # any leading dims, as the importance-weighted estimate decodes [draws, batch, d]
    assert vae.decode(torch.randn(4, 5, 3)).shape == (4, 5, 784)
    assert vae.decode(torch.randn(3)).shape == (784,)
    samples = vae.sample(6, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (6, 784) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    # σ is clamped like the MLP's
    with torch.no_grad():
        vae.encoder[-1][-1].bias.fill_(100.0)
    assert float(vae.encode(x)[1].detach().max()) == 2.0
    # the module's loss terms are vae.loss's, unchanged
    module = VAEModule(net=CONV, latent_dim=3, hidden=[64], kl="analytic")
    noise = torch.randn(5, 3)
    terms = module.terms(x, noise)
    logits, m, s, _ = module.vae(x, noise)
    torch.testing.assert_close(terms.loss, vae_loss(logits, x, m, s, kl="analytic").loss)
    terms.loss.mean().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_conv_vae_options():
    assert isinstance(build_net(CONV, 2, [], 10.0), ConvVAE)  # no fully connected layer: conv features -> m, σ
    assert isinstance(build_net(MLP, 2, [400], 10.0), VAE)
    one = build_net(CONV, 2, [16], 10.0, {"channels": [8]})  # model.net_args: the class's own keywords
    assert one.feature_shape == (8, 14, 14) and one(torch.rand(2, 784))[0].shape == (2, 784)
    with pytest.raises(ValueError, match="one or two conv layers"):
        ConvVAE(2, [16], channels=[8, 16, 32])
    with pytest.raises(ValueError, match="'resnet' is not an import path"):
        build_net("resnet", 2, [16], 10.0)
    with pytest.raises(ValueError, match="cannot be imported"):
        net_class("vaelab.vae.model.NoSuchVAE")
    with pytest.raises(ValueError, match="not a subclass of vaelab.vae.model.GaussianVAE"):
        net_class("torch.nn.Linear")


@pytest.mark.parametrize("model", options("model"))
def test_every_model_yaml_names_a_network_class(model):
    """conf/model/*.yaml hold the model names (one YAML per model, the class by its import path and
    its own arguments in model.net_args); a YAML added there is checked here with no test edit."""
    cfg = _compose([f"model={model}"])
    cls = net_class(str(cfg.model.net))
    assert issubclass(cls, GaussianVAE)
    assert unknown_arguments(cls, cfg.model.net_args) == []  # the config check's rule, kept by the shipped files
    vae = instantiate(cfg.model, _convert_="all").vae
    assert type(vae) is cls and vae(torch.rand(2, 784))[0].shape == (2, 784)


def test_the_shipped_models_and_their_own_arguments():
    assert {m: str(_compose([f"model={m}"]).model.net) for m in ("vae_mlp", "vae_conv")} == {"vae_mlp": MLP, "vae_conv": CONV}
    conv = _compose(["model=vae_conv", "model.net_args.channels=[16,32]", "model.hidden=[]"])
    module = instantiate(conv.model, _convert_="all")
    assert module.vae.channels == [16, 32] and module.vae.hidden == [] and module.vae.feature_shape == (32, 7, 7)
    assert module.hparams.net_args == {"channels": [16, 32]}  # recorded as a plain dict: a checkpoint holds it
    check(conv)  # the typed schema takes both (hidden=[]: the conv features map to m, σ)
    assert _compose(["model=vae_mlp"]).model.net_args == {}


@pytest.mark.parametrize("model", [m for m in options("model") if m != "vae_mlp"])
def test_a_model_yaml_composes_the_mlp_and_holds_only_what_differs(model):
    """Each other model file starts from vae_mlp.yaml (its defaults list) and sets only the keys whose
    values differ from the MLP's: the loss, optimiser and schedule keys are written once."""
    own = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    assert list(own.defaults) == ["vae_mlp", "_self_"]
    mlp, this = _compose(["model=vae_mlp"]).model, _compose([f"model={model}"]).model
    differ = {k for k in {*mlp, *this} if k not in mlp or k not in this or mlp[k] != this[k]}
    assert differ == set(own) - {"defaults"}
    # the optimiser and scheduler groups still fill it
    assert _compose([f"model={model}", "model/optimizer=adamw"]).model.optimizer._target_ == "torch.optim.AdamW"


# ------------------------------------------------------------------------------------------ config
def _compose(overrides: list[str]):
    # threads=1: its default reads the Hydra launcher, which compose() without a run does not set;
    # vaelab's resolvers (data.steps_per_call's) as an entry point registers them
    from vaelab.config import resolvers

    resolvers.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "threads=1"])


@pytest.mark.parametrize("data,model,experiment", list(product(options("data"), options("model"), [None, *options("experiment")])))
def test_every_data_and_model_compose_with_every_experiment(data, model, experiment):
    cfg = _compose([f"data={data}", f"model={model}"] + ([f"experiment={experiment}"] if experiment else []))
    check(cfg)  # the typed schema accepts it
    assert cfg.data.dataset in DATASETS
    assert cfg.data.dataset == data  # the option names are the data set names
    assert cfg.model.net == _compose([f"model={model}"]).model.net  # an experiment keeps the model's network
    module = instantiate(cfg.model, _convert_="all")
    assert type(module.vae) is net_class(cfg.model.net)
    assert module.vae.hidden == list(cfg.model.hidden)  # experiments' MLP widths mean the conv's fc layers
    dm = instantiate(cfg.data, root=str(REPO), _convert_="all")  # no files read before setup
    assert dm.dataset == cfg.data.dataset


@pytest.mark.parametrize(
    "override,key,expected",
    [
        ("model.net=resnet", "model.net", "the import path of a GaussianVAE subclass"),
        ("data.dataset=cifar10", "data.dataset", "one of mnist, fashion_mnist"),
    ],
)
def test_schema_names_the_model_and_data_choices(override, key, expected):
    with pytest.raises(UserError, match=rf"{key}=.* is invalid: expected {expected}"):
        check(_compose([override]))


def test_tensorboard_logger_is_available():
    cfg = _compose(["logger=tensorboard"])
    assert cfg.logger.tensorboard._target_ == "pytorch_lightning.loggers.TensorBoardLogger"
    import tensorboard  # noqa: F401  (a dependency: Lightning's TensorBoardLogger needs it)


# -------------------------------------------------------------------------------------------- data
def test_fashion_datamodule_reads_its_own_files(fashion_root: Path, tiny_root: Path, tmp_path: Path):
    # one root holding both data sets: data.dataset picks the folder
    both = tmp_path / "both"
    both.mkdir()
    (both / "MNIST").symlink_to(tiny_root / "MNIST")
    (both / "FashionMNIST").symlink_to(fashion_root / "FashionMNIST")
    fashion = MNISTDataModule(str(both), dataset="fashion_mnist", val_size=50, batch_size=32, download=False, binarize="static")
    fashion.prepare_data()
    fashion.setup()
    assert {k: tuple(v.shape) for k, v in fashion.splits.items()} == {"train": (250, 784), "val": (50, 784), "test": (100, 784)}
    assert set(fashion.splits["val"].unique().tolist()) <= {0.0, 1.0}  # binarised like MNIST
    mnist = MNISTDataModule(str(both), dataset="mnist", val_size=100, download=False)
    mnist.setup()
    assert mnist.splits["train"].shape == (500, 784)  # conftest's 600 MNIST images, not the 300 above
    # the class-k box of the tiny Fashion files: its height grows with the label
    x, y = fashion.splits["test"].view(-1, 28, 28), fashion.labels["test"]
    rows = (x[:, :, 6:22].mean(dim=2) > 0.5).sum(dim=1)
    assert torch.corrcoef(torch.stack([rows.float(), y.float()]))[0, 1] > 0.9
    # the same seeded batches and evaluation noise as MNIST gives
    xb, idx = next(iter(fashion.train_dataloader()))
    assert xb.shape == (32, 784) and idx.shape == (32,)
    assert fashion.eval_noise("val", 2).shape == (50, 2)


def test_fashion_missing_files_say_where_and_how(tmp_path: Path):
    with pytest.raises(UserError) as err:
        MNISTDataModule(str(tmp_path), dataset="fashion_mnist", download=False).prepare_data()
    message = str(err.value)
    assert "FashionMNIST files" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "scripts/fetch_fashion_mnist.sh" in message and "\n" not in message
    with pytest.raises(UserError, match="not a data set"):
        MNISTDataModule(str(tmp_path), dataset="cifar10")


FASHION_RAW = Path(os.environ.get("VAELAB_DATA_ROOT") or "/nonexistent") / "FashionMNIST" / "raw"


@pytest.mark.real_data
@pytest.mark.skipif(
    not (FASHION_RAW / "train-images-idx3-ubyte").is_file(),
    reason=f'real Fashion-MNIST not found in {FASHION_RAW}: run scripts/fetch_fashion_mnist.sh "$VAELAB_DATA_ROOT" '
    "(needs Debian's dataset-fashion-mnist package) or set VAELAB_DATA_ROOT to a folder with FashionMNIST/raw/",
)
def test_real_fashion_mnist_files():
    check_mnist_raw(FASHION_RAW, FASHION_MNIST_FILES)  # headers, sizes, counts and the official MD5s
    dm = MNISTDataModule(str(FASHION_RAW.parents[1]), dataset="fashion_mnist", download=False, on_device=False)
    dm.setup()
    assert {k: tuple(v.shape) for k, v in dm.splits.items()} == {"train": (50000, 784), "val": (10000, 784), "test": (10000, 784)}
    assert dm.labels["test"].bincount().tolist() == [1000] * 10  # 1,000 test images per class
    assert float(dm.splits["train"].mean()) == pytest.approx(0.2860, abs=2e-3)  # Fashion-MNIST's known pixel mean


# ---------------------------------------------------------------------------------------- training
# vae_mlp is trained by most of the suite; every other model file here (a new one too) is trained once
@pytest.mark.parametrize("model", [m for m in options("model") if m != "vae_mlp"])
def test_every_other_model_trains_with_fast_dev_run(model: str, tiny_root: Path, tmp_path: Path):
    proc = train_in_process(f"model={model}", "debug=fast_dev_run", f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["net"] == _compose([f"model={model}"]).model.net and metrics["epochs"] == 1 and np.isfinite(metrics["test_loss"])


def test_conv_on_fashion_trains_logs_to_tensorboard_and_loads(fashion_root: Path, tmp_path: Path):
    run = tmp_path / "run"
    proc = train_in_process(
        "model=vae_conv",
        "data=fashion_mnist",
        "logger=tensorboard",
        f"data.root={fashion_root}",
        *[a for a in TINY if not a.startswith("trainer.max_epochs")],
        "trainer.max_epochs=1",
        "callbacks.images.every_n_epochs=1",
        f"hydra.run.dir={run}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = run_result(run)
    assert np.isfinite(result["val_loss_min"]) and np.isfinite(result["test_loss"])
    info = json.loads((run / "run_info.json").read_text())["config"]
    assert (info["model"]["net"], info["data"]["dataset"]) == (CONV, "fashion_mnist")

    from vaelab.runs.reading import best_checkpoint, load_module

    module = load_module(best_checkpoint(run))  # what vaelab.evaluate and the report use
    assert isinstance(module.vae, ConvVAE) and module.vae.hidden == [32]
    again = VAEModule.load_from_checkpoint(str(best_checkpoint(run)), map_location="cpu")
    x = torch.rand(3, 784)
    torch.testing.assert_close(module.vae.encode(x)[0], again.vae.encode(x)[0])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"val/loss", "train/loss", "test/loss"} <= set(tags["scalars"])
    assert events.Scalars("val/loss")[-1].value == pytest.approx(result["val_loss_min"], rel=1e-5)
    assert "images/reconstructions" in tags["images"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA-graph path only runs on a GPU")
def test_conv_cuda_graph_matches_eager(tiny_root: Path, tmp_path: Path):
    proc = graph_and_eager(tiny_root, tmp_path, "model=vae_conv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    eager, graph = run_result(tmp_path / "0"), run_result(tmp_path / "1")
    assert graph["val_loss_min"] == pytest.approx(eager["val_loss_min"], rel=1e-5)
    assert graph["test_loss"] == pytest.approx(eager["test_loss"], rel=1e-5)
