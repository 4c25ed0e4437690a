"""Per-job torch settings: threads shared among a launcher's parallel jobs, and the NVML check."""

from __future__ import annotations

import os

import pytest
import torch

from vaelab.config.resolvers import job_threads, usable_cores
from vaelab.training.runtime import configure_torch, nvml_loadable

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"


def test_job_threads_share_the_cores_among_parallel_jobs() -> None:
    cores = usable_cores()
    assert job_threads({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) is None
    assert job_threads({"_target_": JOBLIB, "n_jobs": 2}) == max(1, cores // min(2, cores))
    assert job_threads({"_target_": JOBLIB, "n_jobs": -1}) == 1  # one job per core
    assert job_threads({"_target_": JOBLIB, "n_jobs": 10 * cores}) == 1  # never below one thread
    assert job_threads({"_target_": JOBLIB, "n_jobs": 1}) == cores
    assert job_threads({"_target_": SUBMITIT, "cpus_per_task": 3}) == 3
    assert job_threads({"_target_": SUBMITIT, "cpus_per_task": None}) is None
    assert job_threads({"_target_": "hydra_plugins.vaelab_launcher.slurm.SlurmLauncher", "cpus_per_task": 2}) == 2


def test_configure_torch_sets_threads_and_keeps_the_cuda_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    before_threads = torch.get_num_threads()
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    answer = torch.cuda.is_available()
    try:
        configure_torch(1)
        assert torch.get_num_threads() == 1
        if nvml_loadable():
            assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"  # a driver is there: keep the fork-safe check
        else:
            assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ  # no driver: the check only cost time
        assert torch.cuda.is_available() == answer
    finally:
        torch.set_num_threads(before_threads)
