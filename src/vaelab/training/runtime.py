"""Process-wide torch settings of a training job: its thread count, and one per-step cost removed.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that asking "is there a GPU?"
does not initialise CUDA before a fork). With it, every ``torch.cuda.is_available()`` loads NVML
afresh, and ``torch.optim.Adam.step`` asks once per step. On a machine without the NVIDIA driver
(any CPU-only host running a CUDA build of torch) the load fails every time and torch falls back to
the CUDA runtime's count anyway, so the check buys nothing and costs ~0.1 ms per optimiser step.
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def nvml_loadable() -> bool:
    """Whether the NVIDIA management library can be loaded (i.e. an NVIDIA driver is installed)."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def configure_torch(threads: int | None = None) -> None:
    """Apply a job's torch settings; call after importing Lightning, before training.

    Args:
        threads: torch intra-op threads for this process; None keeps torch's default (all cores).
            Parallel jobs on one machine should share the cores (e.g. 2 jobs x 1 thread on 2 cores):
            OpenMP threads that wait for a busy core slow a step down many times over.
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and not nvml_loadable():
        # same answer (torch falls back to the CUDA runtime when NVML is missing), no per-step reload
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


class _DropLitLoggerTip:
    """A logging filter: Lightning's advertisement for its hosted logger, printed on every run."""

    def filter(self, record: Any) -> bool:
        return "litlogger" not in str(record.getMessage())


def ignore_known_warnings() -> None:
    """Warnings every run would print about the libraries' own code, whatever the user does."""
    import warnings

    # Lightning 2.6 on torch 2.14 warns about its own use of a torch-internal API
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # with SLURM installed Lightning warns that `srun` is "not used" on every run outside a job (by design here)
    warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system but is not used.*")
    # our conf/hydra/launcher/*.yaml set the plugins' defaults for this project and are still checked
    # against the plugins' schemas of the same name; Hydra 1.3 warns about that on every run
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema", category=UserWarning)
    # vaelab's claim (vaelab.runs.claim) refuses a run dir that holds another run, so checkpoints/ is
    # only non-empty when vaelab resumes there on purpose; Lightning warns about it on every resume
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def silence_third_party_noise() -> None:
    """Drop the lines of third-party libraries that every run prints and no run needs
    (``extras.ignore_warnings``): Lightning's litlogger tip, its warning that an epoch has fewer
    batches than the logging interval (we log per epoch). W&B's chatter is silenced by
    :func:`vaelab.runs.wandb_run.quiet`. Errors still print."""
    import logging
    import warnings

    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropLitLoggerTip())
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
