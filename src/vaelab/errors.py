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
    before torch is imported so that a mistyped path is answered at once."""
    return UserError(f"ckpt_path={path} does not exist: give the path of a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt)")


def signal_exit_code(signal_name: str) -> int:
    """The shell's exit status for a process a signal ended: 128 + its number (SIGINT 130, SIGTERM 143)."""
    import signal

    return 128 + signal.Signals[signal_name].value


def warn(message: str) -> None:
    """Say on stderr, in one ``warning:`` line, what was skipped and why; the work goes on."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)
