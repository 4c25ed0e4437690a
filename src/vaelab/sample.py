"""Sampling entry point: ``python -m vaelab.sample ckpt_path=... [split=test] [n_samples=64]``
(console script ``vaelab-sample``).

Loads a trained model from its checkpoint alone and writes, into ``<run dir>/samples/`` (``out=``
to change): ``latents_<split>.pt`` (``m``, ``log_scale`` and labels of every image of the split,
a ``torch.load``-able dict), ``samples.png`` (prior draws) and ``latent_grid.png`` (d = 1 or 2:
the decoder over the prior's quantiles). The Python API is :mod:`vaelab.runs.trained`; the
images and codes are computed by :mod:`vaelab.vae.views`, as training's image panels are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vaelab.config import resolvers
from vaelab.config.validate import check_output_dir, check_overrides, exit_with
from vaelab.errors import UserError

resolvers.register()

SPLITS = ("train", "val", "test")


@hydra.main(version_base="1.3", config_path="pkg://vaelab.conf", config_name="sample")
def run(cfg: DictConfig) -> None:
    """Hydra task: write the files of one checkpoint; a user error is one line and exit 2."""
    from vaelab.runs.layout import SAMPLES
    from vaelab.runs.reading import open_checkpoint, run_dir_of

    try:
        if cfg.split not in SPLITS:
            raise UserError(f"split={cfg.split} is not a split: choose one of {', '.join(SPLITS)}")
        ckpt = open_checkpoint(cfg.ckpt_path)  # the one read of the file, safe and checked (a missing file: before torch)
        from vaelab.runs.trained import check_grid_sizes, sample_files, write_files

        check_grid_sizes(cfg.n_samples, cfg.grid_steps)
        out = Path(str(cfg.out)) if cfg.out else run_dir_of(ckpt.path) / SAMPLES
        check_output_dir(out, "out", folder=True)  # before the work: the folder can be made and written
        # every file made in memory first, then written all or none: a refusal or a crash on the way
        # leaves out/ as it was (issue 26: a partial latents_test.pt was left behind)
        files = write_files(out, sample_files(ckpt, str(cfg.split), int(cfg.n_samples), int(cfg.grid_steps), int(cfg.seed), cfg.data_root))
    except UserError as err:
        exit_with(err)
    for what, path in files.items():
        print(f"{what}: {path}", flush=True)


def main() -> None:
    """Console entry point: check the command line, then hand over to Hydra."""
    check_overrides(sys.argv[1:], config_name="sample")
    run()


if __name__ == "__main__":
    main()
