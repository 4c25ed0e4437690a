"""A DDP job for tests/test_ddp.py, run as a script so Lightning's ``ddp`` can re-launch it per rank.

    python tests/ddp_worker.py validate|fit <ckpt or -> <data root> <devices> <out dir> <val_size>

Each rank writes ``<out dir>/<mode>_rank<r>.json``: the metrics Lightning returned (validate) or
the module's epoch history (fit), as that rank sees them.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from vaelab.data.datamodule import MNISTDataModule
from vaelab.training.module import VAEModule


def run(mode: str, ckpt: str, root: str, devices: int, out: str, val_size: int) -> dict:
    """One rank's job; writes and returns what it saw. Called in the test process for one rank:
    torch's thread count, deterministic mode and Lightning's log level are restored afterwards."""
    lightning_log = logging.getLogger("pytorch_lightning")
    threads, level, deterministic = torch.get_num_threads(), lightning_log.level, torch.are_deterministic_algorithms_enabled()
    lightning_log.setLevel(logging.ERROR)
    torch.set_num_threads(1)
    try:
        pl.seed_everything(0, verbose=False)
        dm = MNISTDataModule(root, batch_size=50, eval_batch_size=20, val_size=int(val_size), download=False)
        module = VAEModule.load_from_checkpoint(ckpt) if ckpt != "-" else VAEModule(latent_dim=2, hidden=[32])
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=devices,
            strategy="ddp" if devices > 1 else "auto",
            max_epochs=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=True,
            use_distributed_sampler=False,
        )
        if mode == "validate":
            result = trainer.validate(module, datamodule=dm, verbose=False)[0]
        else:
            trainer.fit(module, datamodule=dm)
            result = {"history": module.history, "train_batches": trainer.num_training_batches}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        lightning_log.setLevel(level)
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, f"{mode}_rank{trainer.global_rank}.json").write_text(json.dumps(result))
    return result


def main() -> None:
    mode, ckpt, root, devices, out, val_size = sys.argv[1:7]
    warnings.filterwarnings("ignore")
    run(mode, ckpt, root, int(devices), out, int(val_size))


if __name__ == "__main__":
    main()
