"""W&B run handling around Lightning's WandbLogger: which mode, which run id, and clean endings.

- Online needs a login and a reachable server; when either is missing we fall back to offline
  with one warning, so training never stops for logging (``wandb sync`` uploads the run later).
- The run id is stored in the run dir (``wandb_run_id``), so a resumed run continues the same W&B
  run instead of starting a new one.
- Every job's run is finished when the job ends (failed jobs with exit code 1), so the jobs of a
  multirun in one process each get their own run.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

RUN_ID_FILE = "wandb_run_id"


def _server_reachable(base_url: str, timeout_s: float = 3.0) -> bool:
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_mode(mode: str) -> str:
    """The W&B mode to use: ``mode`` itself, or ``offline`` (with one warning) when online cannot work."""
    if mode != "online":
        return mode
    import wandb

    settings = wandb.Settings()
    api_key = os.environ.get("WANDB_API_KEY")
    if not api_key:
        try:  # the key `wandb login` stored in ~/.netrc
            from wandb.sdk.lib.wbauth import read_netrc_auth

            api_key = read_netrc_auth(host=settings.base_url)
        except Exception:
            api_key = None
    reason = None
    if not api_key:
        reason = "no W&B login (run `wandb login` or set WANDB_API_KEY)"
    elif not _server_reachable(settings.base_url):
        reason = f"W&B server {settings.base_url} is not reachable"
    if reason:
        print(
            f"warning: W&B online mode asked but {reason}: logging offline instead; upload later with `wandb sync <run dir>/wandb/offline-run-*`",
            file=sys.stderr,
            flush=True,
        )
        os.environ["WANDB_MODE"] = "offline"
        return "offline"
    return mode


def run_id(out_dir: Path, ckpt_path: str | None) -> str:
    """The W&B run id of this run: the one stored beside the checkpoint being resumed, else the one
    stored in this run dir, else a new one; stored in ``out_dir``."""
    from wandb.sdk.lib.runid import generate_id

    candidates = [out_dir / RUN_ID_FILE]
    if ckpt_path:
        candidates.insert(0, Path(ckpt_path).resolve().parent.parent / RUN_ID_FILE)
    for path in candidates:
        if path.is_file() and path.read_text().strip():
            rid = path.read_text().strip()
            break
    else:
        rid = generate_id()
    (out_dir / RUN_ID_FILE).write_text(rid + "\n")
    return rid


def finish(failed: bool) -> None:
    """Close this job's W&B run, if one is open."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)
