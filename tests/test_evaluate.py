"""The importance-weighted NLL against exact integration, the ELBO ordering, and the evaluate CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import wandb_reader
from conftest import TINY, evaluate_in_process, run_cli, train_in_process
from vaelab.vae.likelihood import bernoulli_log_likelihood, gaussian_log_prob, grid_log_likelihood, importance_weighted
from vaelab.vae.loss import analytic_kl
from vaelab.vae.model import VAE


@pytest.fixture(scope="module")
def grid_model() -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A latent-dim-1 VAE whose posterior differs from the encoder's guess, binary images drawn from
    its decoder, and their exact ``−log p(x)`` by the trapezoid rule on a fine grid."""
    torch.manual_seed(0)
    vae = VAE(1, [16]).eval()
    with torch.no_grad():  # sharpen the decoder so p(z|x) is narrow and q(z|x) a poor proposal
        vae.decoder[0].weight.mul_(2.0)
        vae.decoder[-1].weight.mul_(2.5)
        x = torch.bernoulli(torch.sigmoid(vae.decode(torch.randn(8, 1))))
    nll = -grid_log_likelihood(vae.decode, x, steps=4001)
    return vae, x, nll


def test_grid_reference_is_converged(grid_model) -> None:
    vae, x, nll = grid_model
    finer = -grid_log_likelihood(vae.decode, x, steps=16001)
    assert torch.allclose(nll, finer, atol=1e-3)
    assert torch.all(nll > 0)


def test_iw_estimate_converges_to_grid_value(grid_model) -> None:
    vae, x, nll = grid_model
    errors = {}
    for k in (1, 10, 100, 10000):
        bounds = importance_weighted(vae, x, k, chunk=1000, generator=torch.Generator().manual_seed(0))
        errors[k] = float((bounds.iw_nll - nll).abs().mean())
    assert errors[1] > errors[10] > errors[100] > errors[10000], errors
    assert errors[1] > 10.0  # one draw from a poor proposal is far off ...
    assert errors[10000] < 0.05  # ... 10,000 draws are within 0.05 nats of the exact value


def test_chunking_does_not_change_the_estimate(grid_model) -> None:
    vae, x, _ = grid_model
    whole = importance_weighted(vae, x, 300, chunk=300, generator=torch.Generator().manual_seed(1))
    chunked = importance_weighted(vae, x, 300, chunk=7, generator=torch.Generator().manual_seed(1))
    # the same 300 draws in a different number of calls: the draws differ, the estimates agree closely
    assert torch.allclose(whole.iw_nll, chunked.iw_nll, atol=1.0)
    same = importance_weighted(vae, x, 300, chunk=7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(chunked.iw_nll, same.iw_nll)  # seeded: reproducible


def test_elbo_is_never_above_the_iw_bound(grid_model) -> None:
    vae, x, nll = grid_model
    m, log_scale = vae.encode(x)
    z = torch.linspace(-8, 8, 8001, dtype=torch.float64)
    with torch.no_grad():  # exact ELBO: ∫ q(z|x) log p(x|z) dz − KL, on the grid
        log_px = bernoulli_log_likelihood(vae.decode(z[:, None].float()).double()[:, None, :], x.double()[None])
        q = torch.exp(gaussian_log_prob(z[:, None, None], m.double()[None], log_scale.double()[None]))
        exact_nelbo = -(torch.trapezoid(q * log_px, z, dim=0) - analytic_kl(m, log_scale).double())
    assert torch.all(exact_nelbo > nll)  # −ELBO ≥ −log p(x), per image
    for k in (10, 100, 10000):
        bounds = importance_weighted(vae, x, k, chunk=1000, generator=torch.Generator().manual_seed(2))
        assert torch.all(bounds.iw_nll <= bounds.nelbo), k
        assert torch.all(bounds.iw_nll < exact_nelbo), k
    # the k-draw ELBO estimate is the exact ELBO up to Monte Carlo error
    assert torch.allclose(bounds.nelbo, exact_nelbo, rtol=0.01)


@pytest.fixture(scope="module")
def trained_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny statically binarised latent-dim-2 run (W&B offline), trained in process."""
    run_dir = tmp_path_factory.mktemp("eval_run") / "run"
    proc = train_in_process(f"data.root={tiny_root}", f"hydra.run.dir={run_dir}", "data.binarize=static", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_evaluate_writes_eval_json_matching_training_metrics(trained_run: Path, tiny_root: Path) -> None:
    """The evaluate task in process: eval.json, the result line, the progress bar, the W&B run."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    proc = evaluate_in_process(f"ckpt_path={metrics['best_ckpt']}", f"data.root={tiny_root}", "k=64", "chunk=16", "batch_size=50")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((trained_run / "eval.json").read_text())
    assert result["n_images"] == 200 and result["k"] == 64 and result["split"] == "test"
    assert result["binarize"] == "static"  # taken from the run, not the default (none)
    # same checkpoint, same binarised test images, same fixed noise: the training run's test numbers
    for key in ("test_loss", "test_nelbo", "test_recon", "test_kl"):
        assert result[key] == pytest.approx(metrics[key], rel=1e-5), key
    assert result["test_iw_nll"] < result["test_nelbo_k"]
    assert f"iw_nll={result['test_iw_nll']:.3f}" in proc.stdout
    assert "IW NLL k=64" in proc.stderr  # the progress bar
    # an evaluation run in the training run's W&B group, its summary holding min val loss and IW NLL
    runs = [wandb_reader.run_file(p) for p in (trained_run / "wandb").glob("offline-run-*")]
    evals = [r for r in runs if wandb_reader.run_record(r).job_type == "evaluate"]
    trains = [r for r in runs if wandb_reader.run_record(r).job_type == "train"]
    assert len(evals) == 1 and len(trains) == 1
    assert wandb_reader.run_record(evals[0]).run_group == wandb_reader.run_record(trains[0]).run_group
    summary = wandb_reader.summary(evals[0])
    assert summary["test/iw_nll"] == pytest.approx(result["test_iw_nll"])
    assert summary["val/loss_best"] == pytest.approx(metrics["val_loss_min"])


def test_seeded_and_data_override(trained_run: Path, tiny_root: Path) -> None:
    """In process (no CLI start-up cost): same seed, same estimate; data.* overrides beat the run's."""
    from hydra import compose, initialize_config_dir

    from vaelab.evaluate import evaluate
    from vaelab.paths import CONF_DIR

    ckpt = json.loads((trained_run / "metrics.json").read_text())["best_ckpt"]
    results = []
    for extra in ([], [], ["data.binarize=none"], ["seed=1"]):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("evaluate", overrides=[f"ckpt_path={ckpt}", f"data.root={tiny_root}", "k=16", "device=cpu", *extra])
        results.append(evaluate(cfg, explicit={o.split("=")[0] for o in extra}))
    assert results[0]["test_iw_nll"] == results[1]["test_iw_nll"]
    assert results[3]["test_iw_nll"] != results[0]["test_iw_nll"]
    assert results[0]["binarize"] == "static"
    assert results[2]["binarize"] == "none" and results[2]["test_loss"] != results[0]["test_loss"]


@pytest.mark.parametrize("kind", ["missing", "not_a_checkpoint"])
def test_cli_bad_checkpoint_is_one_line_error(kind: str, tmp_path: Path, tiny_root: Path) -> None:
    bad = tmp_path / "model.ckpt"
    if kind == "not_a_checkpoint":
        bad.write_text("not a checkpoint\n")
    proc = run_cli("vaelab.evaluate", f"ckpt_path={bad}", f"data.root={tiny_root}")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ckpt_path"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "override,line",
    [
        ("k=0", "error: k=0 is invalid: expected an integer >= 1 (e.g. k=100)"),
        ("split=train", "error: split='train' is invalid: expected one of test, val (e.g. split=test)"),
        ("device=tpu", "error: device='tpu' is invalid: expected one of auto, cpu, cuda (e.g. device=cpu)"),
    ],
)
def test_bad_evaluate_values_are_one_line(trained_run: Path, override: str, line: str) -> None:
    """evaluate's keys go through the same typed schema as training's (vaelab.config.schema)."""
    ckpt = json.loads((trained_run / "metrics.json").read_text())["best_ckpt"]
    proc = run_cli("vaelab.evaluate", f"ckpt_path={ckpt}", override)
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [line]
