"""An sbatch refusal as one ``error:`` line, for the SLURM launcher
(``hydra_plugins.vaelab_launcher.slurm``: Hydra only loads launchers from ``hydra_plugins``).

When sbatch refuses a job array (a GPU asked of a CPU node, more memory than a node has, an unknown
partition), submitit raises ``FailedJobError`` with sbatch's message and Hydra prints it as a
traceback. Here it becomes one line that quotes sbatch and names the ``hydra.launcher.*`` key to
change.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Any

from vaelab.errors import UserError

# words of sbatch's refusal -> the launcher keys that size that part of the request
REFUSAL_KEYS = (
    ("generic resource", ("gpus_per_node", "gres")),
    ("gres", ("gpus_per_node", "gres")),
    ("partition", ("partition",)),
    ("memory", ("mem_gb",)),
    ("time limit", ("timeout_min",)),
    ("qos", ("qos",)),
    ("account", ("account",)),
    ("node configuration is not available", ("cpus_per_task", "mem_gb", "gpus_per_node", "nodes")),
    ("cpu count", ("cpus_per_task",)),
)


def is_refusal(message: str) -> bool:
    """Whether submitit's ``FailedJobError`` message is sbatch refusing the submission."""
    return "sbatch" in message or "submission failed" in message.lower()


def refusal_error(message: str) -> UserError:
    """The one-line error for sbatch's refusal ``message``: sbatch's own words and the keys to change."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    said = lines[-1] if lines else "no message"
    said = said.split("error:")[-1].strip() if "error:" in said else said
    lowered = said.lower()
    keys = next((keys for words, keys in REFUSAL_KEYS if words in lowered), ("cpus_per_task", "mem_gb", "gpus_per_node", "partition"))
    named = " or ".join(f"hydra.launcher.{k}" for k in keys)
    return UserError(
        f"sbatch refused the jobs ({said}); no job was submitted: change {named} to what the cluster offers "
        f"(`sinfo -o '%P %c %m %G'` lists partitions, CPUs, memory in MB and GPUs per node)"
    )


class _WithoutSbatchLines(io.TextIOBase):
    """stderr without the ``sbatch: error:`` lines submitit echoes: the error line quotes them."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.dropped = False

    def write(self, text: str) -> int:
        if text.startswith("sbatch: error"):
            self.dropped = True
            return len(text)
        if self.dropped and text == "\n":  # the newline print() writes after a dropped line
            self.dropped = False
            return len(text)
        self.dropped = False
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def quiet_sbatch() -> Iterator[None]:
    """stderr without the sbatch lines submitit echoes while submitting."""
    with contextlib.redirect_stderr(_WithoutSbatchLines(sys.stderr)):
        yield
