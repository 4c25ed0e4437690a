"""Evaluation entry point: ``python -m vaelab.evaluate ckpt_path=... [k=1000] [data.root=...]``
(console script ``vaelab-evaluate``).

For one trained checkpoint, on the test set (nats per image):
- ``loss``, ``recon``, ``kl``, ``nelbo``: the training objective and the one-sample negative ELBO
  with the data module's fixed evaluation noise, i.e. the same numbers as ``test_*`` in the run's
  metrics.json;
- ``nelbo_k``: the negative ELBO averaged over the ``k`` importance draws (lower variance);
- ``iw_nll``: the importance-weighted estimate ``−log p(x) ≈ −(logsumexp_j log w_j − log k)``,
  see :mod:`vaelab.vae.likelihood`.

Results go to ``eval.json`` in the checkpoint's run dir (``out=`` to change) and are printed.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from vaelab.config import resolvers
from vaelab.config.validate import check_output_dir, check_overrides
from vaelab.errors import UserError, warn
from vaelab.runs.job import end_with_error
from vaelab.runs.layout import EVAL

resolvers.register()


def _command_line_keys() -> set[str]:
    """Keys set on the command line (``data.binarize=static`` -> ``data.binarize``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def apply_run_data(cfg: DictConfig, run_dir: Path, explicit: set[str]) -> None:
    """Copy the run's data settings (binarize, val_size, split_seed) into ``cfg.data``, except keys
    the user set explicitly."""
    from vaelab.runs.reading import RUN_DATA_KEYS, run_data_settings

    settings = run_data_settings(run_dir)
    if not settings:
        warn(f"{run_dir}/run_info.json is missing or has no data settings; using data.* as configured")
    with open_dict(cfg):
        for key in RUN_DATA_KEYS:
            if key in settings and f"data.{key}" not in explicit:
                cfg.data[key] = settings[key]


def evaluate(cfg: DictConfig, explicit: set[str] | None = None) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path``; returns the dict written to eval.json."""
    from vaelab.runs.reading import open_checkpoint, run_dir_of

    start = time.perf_counter()
    from vaelab.config.schema import EvaluateSchema, check

    check(cfg, EvaluateSchema)  # the same typed schema as training, with evaluate's own keys
    checkpoint = open_checkpoint(cfg.ckpt_path)  # the one read of the file, safe and checked
    ckpt = checkpoint.path

    import torch

    from vaelab.runs.provenance import provenance

    run_dir = run_dir_of(ckpt)
    if cfg.data_from_run:
        apply_run_data(cfg, run_dir, explicit or set())
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")

    module = checkpoint.module().to(device)
    hp = module.hparams
    dm = hydra.utils.instantiate(cfg.data, on_device=False, _convert_="all")
    dm.setup()
    sums, n = _sums(cfg, module, dm, device)

    split = cfg.split
    result: dict[str, Any] = {f"{split}_{name}": total / n for name, total in sums.items()}
    result.update(
        {
            "ckpt_path": str(ckpt),
            "run_dir": str(run_dir),
            "split": split,
            "n_images": n,
            "k": int(cfg.k),
            "seed": int(cfg.seed),
            "latent_dim": int(module.vae.latent_dim),
            "kl": str(hp.kl),
            "recon": str(hp.recon),
            "binarize": str(cfg.data.binarize),
            "data_root": str(dm.root),
            "wall_time_s": round(time.perf_counter() - start, 3),
            "git_commit": provenance()["git_commit"],
        }
    )
    if not all(math.isfinite(result[f"{split}_{k}"]) for k in sums):
        warn(f"non-finite results for {ckpt}")
    return result


def _sums(cfg: DictConfig, module: Any, dm: Any, device: Any) -> tuple[dict[str, float], int]:
    """The split's per-image numbers summed over its images (float64), in batches of
    ``cfg.batch_size``, and the number of images: the training objective's terms with the data
    module's fixed evaluation noise, and the ``k``-draw bounds from one generator seeded by
    ``cfg.seed``."""
    import torch
    from tqdm import tqdm

    from vaelab.data.datamodule import epoch_generator
    from vaelab.vae.likelihood import importance_weighted

    x_all = dm.splits[cfg.split]
    noise_all = dm.eval_noise(cfg.split, module.vae.latent_dim)
    n = x_all.shape[0]
    _check_chunk_memory(cfg, module.vae, min(int(cfg.batch_size), n), device)

    gen = epoch_generator(int(cfg.seed), 0, stream=2000, device=device)
    sums = {name: 0.0 for name in ("loss", "recon", "kl", "nelbo", "nelbo_k", "iw_nll")}
    bar = tqdm(total=n, desc=f"IW NLL k={cfg.k}", unit="img", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    with torch.no_grad():
        for lo in range(0, n, int(cfg.batch_size)):
            x = x_all[lo : lo + int(cfg.batch_size)].to(device)
            noise = noise_all[lo : lo + int(cfg.batch_size)].to(device)
            terms = module.terms(x, noise)  # the training objective's own terms
            bounds = importance_weighted(module.vae, x, int(cfg.k), int(cfg.chunk), generator=gen)
            for name in ("loss", "recon", "kl", "nelbo"):
                sums[name] += float(getattr(terms, name).double().sum())
            sums["nelbo_k"] += float(bounds.nelbo.sum())
            sums["iw_nll"] += float(bounds.iw_nll.sum())
            bar.update(x.shape[0])
            bar.set_postfix(iw_nll=f"{sums['iw_nll'] / min(lo + x.shape[0], n):.3f}")
    bar.close()
    return sums, n


def _check_chunk_memory(cfg: DictConfig, vae: Any, batch: int, device: Any) -> None:
    """Refuse, before allocating it, a chunk of importance draws (``min(chunk, k)`` x ``batch``
    images decoded at once) that needs more memory than the device has free: torch would stop with
    a traceback (``k=10**9 chunk=10**9``: an 800 GB request), or the OS kill the process. Refused,
    not shrunk: the draws depend on the chunk size (one generator call per chunk), so a smaller
    chunk would change the results without a word. ``k`` alone costs time, never memory."""
    import torch

    from vaelab.vae.likelihood import chunk_bytes

    draws = min(int(cfg.chunk), int(cfg.k))
    need = chunk_bytes(vae, batch, draws)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else _free_cpu_memory()
    if need > free:
        fits = max(1, draws * free // need // 2)  # half the free memory: room for the rest of the process
        raise UserError(
            f"chunk={cfg.chunk} with k={cfg.k} and batch_size={cfg.batch_size} decodes {draws * batch:,} images at once: "
            f"about {need / 2**30:,.1f} GiB of memory, more than the {free / 2**30:,.1f} GiB free on the {device.type}; "
            f"lower chunk (e.g. chunk={min(fits, 100)}) or batch_size"
        )


def _free_cpu_memory() -> int:
    """Bytes of memory available to a new allocation: MemAvailable of /proc/meminfo (Linux), else
    the machine's physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # not Linux: the physical memory below
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _log_wandb(cfg: DictConfig, result: dict[str, Any]) -> None:
    """Log the results to a W&B run of job type ``evaluate`` in the training run's group."""
    from vaelab.runs.layout import METRICS, read_json
    from vaelab.runs.wandb_run import checkpoint_artifact, resolve_mode, use_artifacts, wandb_settings

    run_dir = Path(result["run_dir"])
    train_wandb = wandb_settings(run_dir)
    if not cfg.wandb.enabled or not train_wandb:
        return
    import wandb

    metrics = read_json(run_dir / METRICS)
    split = result["split"]
    # the checkpoint's artifact, when training uploaded it (logger.wandb.log_model): its name is kept
    # in the config, and declared as this run's input online (the lineage; wandb refuses it offline)
    artifact = checkpoint_artifact(result["ckpt_path"])
    run = wandb.init(
        project=cfg.wandb.project,
        group=train_wandb.get("group"),
        name=f"{train_wandb.get('name', run_dir.name)}_eval",
        tags=list(train_wandb.get("tags") or []),
        job_type="evaluate",
        dir=str(run_dir),
        mode=resolve_mode(str(cfg.wandb.mode)),
        config={"evaluate": OmegaConf.to_container(cfg, resolve=True), "train_run_dir": str(run_dir), "checkpoint_artifact": artifact},
        reinit="finish_previous",
    )
    use_artifacts(run, [artifact] if artifact else [])
    run.summary.update(
        {
            "val/loss_best": metrics.get("val_loss_min"),
            f"{split}/loss": result[f"{split}_loss"],
            f"{split}/nelbo": result[f"{split}_nelbo"],
            f"{split}/iw_nll": result[f"{split}_iw_nll"],
            "iw_k": result["k"],
        }
    )
    run.finish()


def _out_path(cfg: DictConfig, result: dict[str, Any]) -> Path:
    return Path(str(cfg.out)) if cfg.get("out") else Path(result["run_dir"]) / EVAL


@hydra.main(version_base="1.3", config_path="pkg://vaelab.conf", config_name="evaluate")
def run(cfg: DictConfig) -> float | None:
    """Hydra task: evaluate one checkpoint. User errors become one line (in a multirun: the error is
    printed and the next checkpoint is evaluated)."""
    from vaelab.runs.layout import write_json

    if cfg.get("out"):  # before the work: a result must not be lost to an unwritable path
        check_output_dir(str(cfg.out), "out")
    try:
        result = evaluate(cfg, _command_line_keys())
    except UserError as err:
        end_with_error(err)  # a single run exits with the error line; a multirun goes on to the next checkpoint
        return None
    out = _out_path(cfg, result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    s = result["split"]
    print(
        f"{s} set, {result['n_images']} images, nats per image: loss={result[f'{s}_loss']:.3f} "
        f"nelbo={result[f'{s}_nelbo']:.3f} nelbo_k={result[f'{s}_nelbo_k']:.3f} "
        f"iw_nll={result[f'{s}_iw_nll']:.3f} (k={result['k']}, {result['wall_time_s']:.1f}s) -> {out}",
        flush=True,
    )
    _log_wandb(cfg, result)
    return result[f"{s}_iw_nll"]


def main() -> None:
    """Console entry point: check the command line, then hand over to Hydra."""
    check_overrides(sys.argv[1:], config_name="evaluate")
    run()


if __name__ == "__main__":
    main()
