"""A fork server for the tests' command-line runs: ``python -m vaelab.<entry> args`` as a user runs
it (or ``python scripts/<name>.py args``), without the ~9 s this VM spends importing torch, torchvision (through torchmetrics), Lightning
and Hydra in every fresh interpreter (most of the suite's time went there).

The server imports those libraries once (never ``vaelab``, never a torch op: no threads, no
state) and forks one child per run. The child takes the run's arguments, environment, working
directory and stdio, runs the module as ``python -m`` does (``runpy``, ``sys.path[0]`` = the working
directory) and ends as the interpreter would: exit code, traceback, atexit handlers. The test gets a
:class:`ForkedRun`, the part of ``subprocess.Popen`` the tests use (pid, signals, wait, poll,
communicate). Tests that need a truly fresh interpreter (the installed wheel, SLURM jobs, scripts)
start real processes; ``VAELAB_TEST_FORK=0`` makes every run a real process again.

    python tests/forkserver.py <socket path>      (started by conftest, one per pytest worker)
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

# what every CLI run imports before doing anything of its own; imported once here
# (not wandb: it makes a media temp dir at import, which the first child to exit would delete for all)
HEAVY = ("torch", "torchvision", "torchmetrics", "pytorch_lightning", "hydra", "omegaconf", "pydantic")


def serve(path: str) -> None:
    """Import the heavy libraries, then fork one child per request until the parent goes away."""
    parent = os.getppid()
    for name in HEAVY:
        importlib.import_module(name)
    assert threading.active_count() == 1, "a library started a thread at import: forking would not be safe"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}  # child pid -> the connection its exit code goes to
    while os.getppid() == parent:
        if select.select([listener], [], [], 0.02)[0]:
            conn, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in [*waiting.values(), conn]:
                    other.close()
                _run(json.loads(message), fds)  # never returns: the child ends in os._exit
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{pid}\n".encode())
            waiting[pid] = conn
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:  # the test that started the run is gone: nobody to tell
                    pass
                conn.close()


def _run(request: dict[str, Any], fds: list[int]) -> None:
    """In the child: become ``python -m <module> <args>`` in ``cwd`` with ``env`` and stdio ``fds``."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a fresh interpreter's Ctrl-C handling
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = request.get("script")
    # what `python -m` (the working dir) or `python script.py` (the script's dir) puts first on the path
    sys.path[0] = str(Path(script).resolve().parent) if script else request["cwd"]
    sys.argv = [script or request["module"], *request["args"]]
    code = 0
    try:
        if script:
            runpy.run_path(script, run_name="__main__")
        else:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:  # the interpreter prints it and dies by SIGINT
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _end(code)


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` makes the process's exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _end(code: int) -> None:
    """End the child as the interpreter does (non-daemon threads joined, atexit handlers run, stdio
    flushed), but without its module teardown: in a forked child that teardown touches every
    inherited object, copy-on-write copies the whole heap, and it takes ~2.5 s per run here."""
    threading._shutdown()  # type: ignore[attr-defined]  (what the interpreter calls first at exit)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to write to
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


class ForkedRun:
    """A run forked by the server: the part of ``subprocess.Popen`` the tests use. stdout/stderr go
    to temporary files (or /dev/null), read by :meth:`communicate` once the run has ended."""

    def __init__(self, conn: socket.socket, args: list[str], out: Any, err: Any, text: bool) -> None:
        self._conn, self._files = conn, (out, err)
        self.args, self.text, self.returncode = args, text, None
        self.pid = int(self._line())

    def _line(self) -> str:
        """One line from the server, read a byte at a time: a buffered reader could swallow the exit
        line together with the pid line, and select() would then wait for data already read."""
        data = b""
        while not data.endswith(b"\n"):
            byte = self._conn.recv(1)
            if not byte:
                raise RuntimeError("the fork server closed the connection (did it die?)")
            data += byte
        return data.decode()

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], 0)[0]:
            self.returncode = int(self._line())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._conn], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = int(self._line())
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        self.wait(timeout)
        return tuple(self._read(f) for f in self._files)  # type: ignore[return-value]

    def _read(self, f: Any) -> Any:
        if f is None:
            return None
        f.seek(0)
        data = f.read()
        return data.decode(errors="replace") if self.text else data


class ForkServer:
    """The client side: starts the server process and forks runs through it."""

    def __init__(self, sock_dir: Path) -> None:
        self.path = str(sock_dir / "fork.sock")
        self.proc = subprocess.Popen([sys.executable, __file__, self.path], stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if ready != "ready":
            raise RuntimeError(f"the fork server did not start (it said {ready!r})")

    def start(
        self, module: str | None, args: list[str], env: dict[str, str], cwd: Path, capture: bool, text: bool = True, script: Path | None = None
    ) -> ForkedRun:
        """Fork ``python -m module args`` (or ``python script args``); with ``capture`` its
        stdout/stderr are kept, else dropped."""
        import tempfile

        devnull = open(os.devnull, "r+b")  # noqa: SIM115  (closed below: the child has its own copy)
        out, err = (tempfile.TemporaryFile(), tempfile.TemporaryFile()) if capture else (None, None)
        fds = [devnull.fileno(), (out or devnull).fileno(), (err or devnull).fileno()]
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        request = {"module": module, "script": str(script) if script else None, "args": list(args), "env": dict(env), "cwd": str(cwd)}
        socket.send_fds(conn, [json.dumps(request).encode()], fds)
        devnull.close()
        command = [str(script)] if script else ["-m", str(module)]
        return ForkedRun(conn, [sys.executable, *command, *args], out, err, text)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a stray Ctrl-C of the test session ends the server
    serve(sys.argv[1])
