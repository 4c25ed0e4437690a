"""The one exception type for mistakes a user can fix (bad config value, missing data, bad file).

Entry points catch it and print its message as a single line with a non-zero exit, instead of a
traceback; programming errors keep their tracebacks.
"""


class UserError(Exception):
    """A problem in the user's input; the message names the key or file and how to fix it."""


class RunInterrupted(UserError):
    """SIGTERM (a cluster's time limit or preemption) or SIGINT (Ctrl-C) stopped training; the run
    dir holds the last finished epoch's checkpoint and ``resume=true`` continues from it."""

    def __init__(self, signal_name: str, run_dir: object) -> None:
        self.signal = signal_name
        self.exit_code = signal_exit_code(signal_name)
        super().__init__(
            f"interrupted by {signal_name}: the last finished epoch's checkpoint is in {run_dir}/checkpoints/last.ckpt; "
            f"continue with resume=true and the same hydra.run.dir (or hydra.sweep.dir for a multirun)"
        )


def no_checkpoint(path: object) -> UserError:
    """The error for a ``ckpt_path`` that names no file: one wording for every entry point, checked
    before torch is imported so that a mistyped path is answered at once. A folder (a run dir, its
    ``checkpoints/``) is called a folder, and the files to give are named."""
    from pathlib import Path

    if Path(str(path)).is_dir():
        inside = "" if Path(str(path)).name == "checkpoints" else "/checkpoints"
        return UserError(
            f"ckpt_path={path} is a directory, not a checkpoint file: give {path}{inside}/best-epochNNN.ckpt "
            f"(the run's best) or {path}{inside}/last.ckpt (its last epoch)"
        )
    return UserError(f"ckpt_path={path} does not exist: give the path of a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt)")


class UnsafeCheckpoint(UserError):
    """A checkpoint holding objects vaelab never stores: refused before they are unpickled (loading
    them could run any code). A report refuses its sweep for it rather than skipping a figure."""

    def __init__(self, label: str, names: list[str]) -> None:
        found = ", ".join(names) if names else "objects torch's weights-only loader refuses"
        super().__init__(
            f"{label} holds objects vaelab does not store ({found}): not loaded, since unpickling them could run code; "
            f"only open checkpoints you trust, e.g. ones written by vaelab.train (docs/guarantees.md, 'A checkpoint someone sent you')"
        )


def signal_exit_code(signal_name: str) -> int:
    """The shell's exit status for a process a signal ended: 128 + its number (SIGINT 130, SIGTERM 143)."""
    import signal

    return 128 + signal.Signals[signal_name].value


def warn(message: str) -> None:
    """Say on stderr, in one ``warning:`` line, what was skipped and why; the work goes on."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)
