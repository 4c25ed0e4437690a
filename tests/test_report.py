"""vaelab.report on fake sweeps with the real file layout: numbers, missing jobs, figures, W&B (the
report's ``main`` called in process; its error line and exit code through the real CLI)."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import wandb_reader
from conftest import REPO, report_in_process, run_cli

# (kl, latent_dim, seed) -> min val loss; the paper sweep has job 4 (d=2, seed 1) failed and the
# analytic sweep's job 5 never started (its multirun.yaml asks for it, no folder exists)
VAL_MIN = {
    ("paper", 1, 0): 160.5, ("paper", 1, 1): 161.25, ("paper", 1, 2): 159.0,
    ("paper", 2, 0): 150.0, ("paper", 2, 2): 151.5,
    ("analytic", 1, 0): 158.0, ("analytic", 1, 1): 158.75, ("analytic", 1, 2): 157.5,
    ("analytic", 2, 0): 145.0, ("analytic", 2, 1): 146.0,
}  # fmt: skip
# the one run stopped by the epoch cap while still improving: its minimum is its last epoch (12)
NOT_CONVERGED = ("paper", 1, 2)
# completed jobs with an eval.json (IW NLL); analytic d=1 seed 2 was never evaluated
IW = {key: value - 3.0 - key[2] for key, value in VAL_MIN.items() if key != ("analytic", 1, 2)}


def _checkpoint(path: Path, latent_dim: int) -> str:
    """A real Lightning checkpoint of an untrained tiny VAE (the report loads it for the figures)."""
    import pytorch_lightning as pl

    from vaelab.training.module import VAEModule

    module = VAEModule(latent_dim=latent_dim, hidden=[16])
    trainer = pl.Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return str(path)


def _job(sweep: Path, num: int, kl: str, dim: int, seed: int, root: Path, ckpts: dict[int, str]) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nmodel:\n  kl: {kl}\n  latent_dim: {dim}\n")
    data = {"root": str(root), "binarize": "none", "val_size": 100, "split_seed": 1234}
    wandb_cfg = {"project": "vaelab", "group": "reproduce_fake", "name": f"ld{dim}_s{seed}"}
    (job / "run_info.json").write_text(json.dumps({"config": {"data": data, "logger": {"wandb": wandb_cfg}}, "machine": "test machine, 2 cores"}))
    if (kl, dim, seed) not in VAL_MIN:
        (job / "status.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory\ntrace"}))
        return
    best = VAL_MIN[(kl, dim, seed)]
    history = [
        {"epoch": e, "val/loss": best + 10.0 / e - (10.0 if e == 10 else 0) + (0 if e == 10 else 10.0), "train/loss": best + 5} for e in range(1, 13)
    ]
    best_epoch = 12 if (kl, dim, seed) == NOT_CONVERGED else 10
    history[best_epoch - 1]["val/loss"] = best  # the minimum at epoch 10 (12: not converged)
    if best_epoch == 12:
        history[9]["val/loss"] = best + 0.5
    stop = "max_epochs" if best_epoch == 12 else "early_stopping"
    metrics = {
        "latent_dim": dim, "seed": seed, "kl": kl, "recon": "bce", "beta": 1.0, "binarize": "none", "epochs": 12,
        "max_epochs": 12 if stop == "max_epochs" else 100, "stop_reason": stop,
        "val_loss_min": best, "val_loss_min_epoch": best_epoch, "test_loss": best - 1.0, "test_nelbo": best - 2.0,
        "test_recon": best - 6.0, "test_kl": 4.0, "best_ckpt": ckpts[dim], "wall_time_s": 100.0 + seed,
        "git_commit": "abc123", "history": history,
    }  # fmt: skip
    (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "status.json").write_text(json.dumps({"status": "completed"}))
    if (kl, dim, seed) in IW:
        (job / "eval.json").write_text(json.dumps({"k": 100, "test_iw_nll": IW[(kl, dim, seed)], "test_loss": best - 1.0}))


@pytest.fixture(scope="module")
def fake_sweeps(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("report")
    ckpts = {d: _checkpoint(base / f"ckpt_d{d}.ckpt", d) for d in (1, 2)}
    sweeps = []
    for kl in ("paper", "analytic"):
        sweep = base / "reproduce" / kl
        sweep.mkdir(parents=True)
        # as Hydra writes it: the first job's config beside the command line, whose interpolated tag is per job
        task = ["experiment=paper", f"model.kl={kl}", "model.latent_dim=1,2", "seed=0,1,2", "tags=[reproduce,kl-${model.kl}]"]
        (sweep / "multirun.yaml").write_text(f"model:\n  kl: {kl}\nhydra:\n  overrides:\n    task:\n" + "".join(f"    - {t}\n" for t in task))
        for num, (dim, seed) in enumerate((d, s) for d in (1, 2) for s in (0, 1, 2)):
            if kl == "analytic" and num == 5:
                continue  # never started
            _job(sweep, num, kl, dim, seed, tiny_root, ckpts)
        sweeps.append(sweep)
    return sweeps


@pytest.fixture(scope="module")
def report(fake_sweeps: list[Path], tiny_root: Path) -> tuple[Path, object]:
    out = fake_sweeps[0].parent / "results"
    proc = report_in_process(*map(str, fake_sweeps), "--out", str(out), "--data-root", str(tiny_root))
    return out, proc


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_table_numbers(report) -> None:
    out, proc = report
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["kl"], int(r["latent_dim"])): r for r in _rows(out / "val_loss.csv")}
    assert list(rows) == [("paper", 1), ("paper", 2), ("analytic", 1), ("analytic", 2)]
    for (kl, dim), row in rows.items():
        seeds = sorted(s for (k, d, s) in VAL_MIN if (k, d) == (kl, dim))
        vals = [VAL_MIN[(kl, dim, s)] for s in seeds]
        assert float(row["val_loss_min_mean"]) == pytest.approx(statistics.fmean(vals), abs=1e-6)
        assert float(row["val_loss_min_std"]) == pytest.approx(statistics.stdev(vals), abs=1e-6)
        epochs = [12 if (kl, dim, s) == NOT_CONVERGED else 10 for s in seeds]
        assert float(row["val_loss_min_epoch_mean"]) == pytest.approx(statistics.fmean(epochs), abs=1e-6)
        assert int(row["n_not_converged"]) == epochs.count(12)
        assert float(row["test_loss_mean"]) == pytest.approx(statistics.fmean(vals) - 1.0, abs=1e-6)
        assert float(row["test_nelbo_mean"]) == pytest.approx(statistics.fmean(vals) - 2.0, abs=1e-6)
        iw = [IW[(kl, dim, s)] for s in seeds if (kl, dim, s) in IW]
        assert float(row["test_iw_nll_mean"]) == pytest.approx(statistics.fmean(iw), abs=1e-6)
        assert float(row["test_iw_nll_std"]) == pytest.approx(statistics.stdev(iw), abs=1e-6)
        assert float(row["wall_time_s_mean"]) == pytest.approx(100.0 + statistics.fmean(seeds), abs=1e-6)
        assert row["iw_k"] == "100" and int(row["n_seeds"]) == len(seeds) and int(row["n_jobs"]) == 3


def test_missing_jobs_are_shown(report) -> None:
    out, _ = report
    rows = {(r["kl"], int(r["latent_dim"])): r for r in _rows(out / "val_loss.csv")}
    assert "job paper/4 seed 1 (failed: RuntimeError: out of memory)" in rows[("paper", 2)]["missing"]
    assert "job analytic/5 seed 2 (not started)" in rows[("analytic", 2)]["missing"]
    assert rows[("paper", 1)]["missing"] == ""
    md = (out / "val_loss.md").read_text()
    assert "2/3, missing: job paper/4 seed 1 (failed: RuntimeError: out of memory)" in md
    assert "2/3, missing: job analytic/5 seed 2 (not started)" in md
    assert f"{statistics.fmean([IW[('analytic', 1, s)] for s in (0, 1)]):.2f} ± " in md and "(evaluated: 2 of 3 seeds)" in md
    runs = _rows(out / "runs.csv")
    assert len(runs) == 12 and sum(r["status"] == "completed" for r in runs) == 10


def test_markdown_headline_and_provenance(report) -> None:
    out, _ = report
    md = (out / "val_loss.md").read_text()
    p1, p2 = [VAL_MIN[("paper", 1, s)] for s in (0, 1, 2)], [VAL_MIN[("paper", 2, s)] for s in (0, 2)]
    sentence = f"**{statistics.fmean(p1):.2f} ± {statistics.stdev(p1):.2f}** and **{statistics.fmean(p2):.2f} ± {statistics.stdev(p2):.2f}**"
    assert sentence in md
    assert "commit (training runs): abc123" in md and "machine: test machine, 2 cores" in md
    # the command as typed, its per-job interpolation unresolved
    assert "python -m vaelab.train -m experiment=paper model.kl=paper model.latent_dim=1,2 seed=0,1,2 'tags=[reproduce,kl-${model.kl}]'" in md
    assert md.count("| paper |") == 2 and md.count("| analytic |") == 2


def test_a_run_whose_minimum_is_its_last_epoch_is_flagged(report) -> None:
    out, _ = report
    runs = {(r["kl"], int(r["latent_dim"]), int(r["seed"])): r for r in _rows(out / "runs.csv")}
    assert runs[NOT_CONVERGED]["converged"] == "not converged" and runs[NOT_CONVERGED]["stop_reason"] == "max_epochs"
    assert runs[("paper", 1, 0)]["converged"] == "yes" and runs[("paper", 1, 0)]["stop_reason"] == "early_stopping"
    assert runs[("paper", 2, 1)]["converged"] == ""  # failed: neither
    md = (out / "val_loss.md").read_text()
    assert "3/3, 1 not converged¹" in md
    assert "¹ 1 of 10 runs not converged: their minimal validation loss is at their last epoch" in md
    # the headline (paper rows: 5 completed runs) says so
    assert "**1 of these 5 runs had not converged** (minimum at their last epoch)" in md.splitlines()[2]


def test_figures_are_valid_pngs(report) -> None:
    import matplotlib.image

    out, proc = report
    names = [
        "val_loss_curves",
        "latent_line_d1_paper",
        "latent_plane_d2_paper",
        "latent_line_d1_analytic",
        "latent_plane_d2_analytic",
        "reconstructions",
    ]
    for name in names:
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400, (name, image.shape)
        assert image[..., :3].std() > 0.01, name  # not a blank canvas
    assert "6 figures" in proc.stdout


def test_wandb_report_run(report, fake_sweeps: list[Path]) -> None:
    out, _ = report  # the report's W&B run goes with its files, into --out
    runs = [wandb_reader.run_file(p) for p in (out / "wandb").glob("offline-run-*")]
    assert len(runs) == 1
    record = wandb_reader.run_record(runs[0])
    assert record.run_group == "reproduce_fake" and record.job_type == "report"
    logged = {k: v for row in wandb_reader.history(runs[0]) for k, v in row.items()}
    assert logged["val_loss_table._type"] == "table-file" and logged["val_loss_table.nrows"] == 4
    assert logged["figures/val_loss_curves._type"] == "image-file" and logged["figures/reconstructions._type"] == "image-file"
    summary = wandb_reader.summary(runs[0])
    p1 = [VAL_MIN[("paper", 1, s)] for s in (0, 1, 2)]
    assert summary["val_loss_min/paper_d1"] == pytest.approx(statistics.fmean(p1))


def test_no_jobs_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("vaelab.report", str(tmp_path), "--out", str(tmp_path / "out"), "--wandb-mode", "disabled")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no jobs found in") and len(proc.stderr.strip().splitlines()) == 1


def test_a_job_killed_outright_is_reported_as_killed_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL leaves status.json at `running`; the report and the sweep summary tell such a job
    from a live one by the run dir's lock, which the kernel dropped with the process."""
    from vaelab.report.collect import collect_jobs
    from vaelab.runs.lock import lock_run_dir
    from vaelab.runs.sweep import print_summary

    sweep = tmp_path / "sweep"
    _job(sweep, 0, "paper", 1, 0, tmp_path, {1: "unused.ckpt"})
    for num in (1, 2):
        (sweep / str(num)).mkdir()
        (sweep / str(num) / "status.json").write_text(json.dumps({"status": "running"}))
    with lock_run_dir(sweep / "2"):  # job 2's process is alive: it holds its run dir's lock
        jobs = {job.name: job for job in collect_jobs([sweep])}
        capsys.readouterr()
        bad = print_summary(sweep)
    why = "status.json says running but no process holds the run dir: resume=true continues it from its last.ckpt"
    assert (jobs["0"].status, jobs["2"].status, jobs["2"].error) == ("completed", "running", "")
    assert (jobs["1"].status, jobs["1"].error) == ("killed", why)
    out = capsys.readouterr().out
    assert f"  1: KILLED {why}\n" in out and "  2: RUNNING\n" in out and "  1 completed, 1 killed, 1 running\n" in out
    assert bad == ["1", "2"]
    assert json.loads((sweep / "1" / "status.json").read_text()) == {"status": "running"}  # readers write nothing


def test_checkpoint_helper_roundtrip(tmp_path: Path) -> None:
    """The fake sweeps' checkpoints load like real ones (guards the fixture itself)."""
    from vaelab.runs.reading import load_module

    module = load_module(_checkpoint(tmp_path / "c.ckpt", 2))
    assert module.vae.latent_dim == 2 and isinstance(module.vae.encode(torch.zeros(1, 784))[0], torch.Tensor)


def test_rows_of_another_network_sit_beside_the_mlp_rows(fake_sweeps: list[Path], tiny_root: Path, tmp_path: Path) -> None:
    # a reproduction run with model=vae_conv (its metrics.json names the ConvVAE class), reported with the MLP's paper sweep
    conv = tmp_path / "conv" / "paper"
    conv.mkdir(parents=True)
    ckpts = {d: _checkpoint(tmp_path / f"ckpt_d{d}.ckpt", d) for d in (1, 2)}
    for num, dim in enumerate((1, 2)):
        _job(conv, num, "paper", dim, 0, tiny_root, ckpts)
        metrics = json.loads((conv / str(num) / "metrics.json").read_text())
        (conv / str(num) / "metrics.json").write_text(
            json.dumps({**metrics, "net": "vaelab.vae.conv.ConvVAE", "val_loss_min": metrics["val_loss_min"] - 20})
        )
    out = tmp_path / "results"
    proc = report_in_process(str(fake_sweeps[0]), str(conv), "--out", str(out), "--data-root", str(tiny_root), "--wandb-mode", "disabled")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [(r["model"], r["kl"], r["latent_dim"], r["n_seeds"]) for r in _rows(out / "val_loss.csv")]
    assert rows == [("VAE", "paper", "1", "3"), ("VAE", "paper", "2", "2"), ("ConvVAE", "paper", "1", "1"), ("ConvVAE", "paper", "2", "1")]
    table = (out / "val_loss.md").read_text()
    assert "| model | kl form | latent dim |" in table and "| ConvVAE | paper | 1 | 140.50 |" in table
    # the headline stays the report's MLP, and says so now that another network is in the table
    assert "(paper penalty, VAE network on mnist, nats per image" in table
    assert {"latent_line_d1_ConvVAE_paper.png", "latent_plane_d2_ConvVAE_paper.png", "latent_plane_d2_paper.png"} <= {
        p.name for p in out.glob("*.png")
    }


def test_published_rows_beside_ours_with_the_difference_in_nats(tmp_path: Path) -> None:
    """The literature experiment's rows, as the report sets them beside ours and the README gets them."""
    from vaelab.paths import CONF_DIR
    from vaelab.report.reference import HEADING, beside

    published = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / "literature.yaml"))["reference"]
    assert [r["log_px"] for r in published] == [{2: -135.73, 5: -110.21}, {2: -132.50, 5: -108.43}]
    refs = [{"name": r["name"], "log_px": r["log_px"]} for r in published]
    rows = [
        {"latent_dim": 2, "n_iw": 3, "n_seeds": 3, "iw_k": "500", "test_iw_nll_mean": 131.25, "test_iw_nll_std": 0.5},
        {"latent_dim": 5, "n_iw": 2, "n_seeds": 3, "iw_k": "500", "test_iw_nll_mean": 108.0, "test_iw_nll_std": 0.25},
    ]
    lines = beside(rows, refs)
    assert lines[0] == HEADING
    assert lines[2].startswith("Test log p(x) is **−131.25 ± 0.50** at latent dim 2 and **−108.00 ± 0.25** at latent dim 5 (IW estimate, k=500")
    assert "over 3/2 of 3 seeds" in lines[2] and "N-VAE (Davidson et al. 2018, Table 1): +4.48, +2.21" in lines[2]
    assert lines[8] == "| S-VAE (same table) | −132.50 (ours +1.25) | −108.43 (ours +0.43) |"
    assert beside(rows, []) == [] and beside([{**rows[0], "n_iw": 0}], refs) == []

    # the README's literature block is that sentence and table, copied by scripts/readme_results.py
    lit = tmp_path / "lit.md"
    lit.write_text("# title\n\nheadline\n\n| a |\n|---|\n\n" + "\n".join(lines) + "\n- commit: x\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\n<!-- results:end -->\n\n<!-- literature:begin -->\nold\n<!-- literature:end -->\nend\n")
    cmd = [sys.executable, str(REPO / "scripts" / "readme_results.py"), "--readme", str(readme), "--literature", str(lit)]
    assert subprocess.run([*cmd, "--check"], capture_output=True, text=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    block = readme.read_text().split("<!-- literature:begin -->\n")[1].split("\n<!-- literature:end -->")[0]
    assert block == "\n".join([lines[2], "", *lines[4:9]])


# an Optuna search of 5 trials, as its jobs record it: (lr as Optuna draws it, hidden width, val_loss_min);
# trial 4 was pruned. The minimum is trial 2's, the worst completed trial 1's (the old headline's pick)
TRIALS = [(0.00024156772025296256, 256, 231.5), (0.0003572140318996377, 800, 255.65), (0.0023276939100527693, 64, 203.07),
          (0.008082117583015577, 128, 219.25), (0.0003051115935019821, 128, None)]  # fmt: skip


def _search_sweep(sweep: Path, direction: str = "minimize") -> Path:
    """A fake Optuna search: each job's Hydra record names the sweeper and its direction."""
    sweep.mkdir(parents=True)
    for num, (lr, hidden, val) in enumerate(TRIALS):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "hydra.yaml").write_text(
            f"hydra:\n  sweeper:\n    _target_: hydra_plugins.vaelab_launcher.optuna.OptunaSweeper\n    direction: {direction}\n"
        )
        config = {"seed": 0, "optimized_metric": "val_loss_min", "model": {"kl": "paper", "latent_dim": 2, "lr": lr, "hidden": [hidden]}}
        (job / "run_info.json").write_text(json.dumps({"config": config}))
        history = [{"epoch": e, "val/loss": (val or 300.0) + 10.0 * (3 - e), "train/loss": 300.0} for e in (1, 2, 3)]
        metrics = {"latent_dim": 2, "seed": 0, "kl": "paper", "epochs": 3, "max_epochs": 3, "val_loss_min": val or history[-1]["val/loss"],
                   "val_loss_min_epoch": 3, "test_loss": (val or 300.0) - 1, "history": history, "best_ckpt": None}  # fmt: skip
        if val is None:
            metrics["stop_reason"], status = "pruned", {"status": "pruned", "reason": "by the search's pruner after epoch 1, at val/loss 320.000"}
        else:
            metrics["stop_reason"], status = "max_epochs", {"status": "completed"}
        (job / "metrics.json").write_text(json.dumps(metrics))
        (job / "status.json").write_text(json.dumps(status))
    return sweep


def test_an_optuna_report_names_the_best_trial_by_the_search_objective(tmp_path: Path) -> None:
    sweep = _search_sweep(tmp_path / "search")
    proc = report_in_process(str(sweep), "--wandb-mode", "disabled")
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (sweep / "report" / "val_loss.md").read_text()
    assert md.splitlines()[2] == (
        "The best of 5 trials (4 completed, 1 pruned) by val_loss_min (minimize) is trial 2: val_loss_min **203.07** with "
        "model.hidden=[64], model.lr=0.002328 (data mnist, model VAE, paper penalty, latent dimension 2; the completed trials ranged 203.07–255.65)."
    )
    # the table: trials best first, the best in bold, settings rounded for reading, the pruned trial last
    table = [line for line in md.splitlines() if line.startswith("| ") and "kl form" not in line]
    assert [line.split(" | ")[0] for line in table] == ["| **2** (best)", "| 3", "| 0", "| 1", "| 4"]
    assert "| [64] | 0.002328 | 203.07 |" in table[0]
    assert "missing: job search/4 seed 0 (pruned: by the search's pruner after epoch 1, at val/loss 320.000)" in table[-1]
    # full precision stays in the CSVs
    assert [r["model.lr"] for r in _rows(sweep / "report" / "val_loss.csv")][0] == "0.0023276939100527693"
    assert {r["job"]: r["status"] for r in _rows(sweep / "report" / "runs.csv")}["4"].startswith("pruned: by the search's pruner")

    # a search that maximised its objective: the largest value is the best
    up = _search_sweep(tmp_path / "up", direction="maximize")
    assert report_in_process(str(up), "--wandb-mode", "disabled").returncode == 0
    assert "by val_loss_min (maximize) is trial 1: val_loss_min **255.65**" in (up / "report" / "val_loss.md").read_text()


def test_the_trials_figure_orders_numeric_settings_numerically(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from vaelab.report.collect import collect_jobs, row_settings
    from vaelab.report.plots import _trials

    jobs = collect_jobs([_search_sweep(tmp_path / "search")])
    varying = row_settings(jobs)
    assert varying == ["model.hidden", "model.lr"]
    fig = _trials(jobs, varying)
    hidden_axis, lr_axis = fig.axes
    assert [t.get_text() for t in hidden_axis.get_xticklabels()] == ["[64]", "[128]", "[256]", "[800]"]  # not [128] [256] [64] [800]
    assert lr_axis.get_xscale() == "log"
