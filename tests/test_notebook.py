"""notebooks/latent_space.ipynb runs top to bottom on a run trained on tiny data, so it cannot rot."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, TINY, train_in_process

NOTEBOOK = REPO / "notebooks" / "latent_space.ipynb"


def test_notebook_executes(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latent_dim = 2  # (the latent-line branch draws with the same code, tested in test_report.py)
    run_dir = tmp_path / "run"
    proc = train_in_process(f"data.root={tiny_root}", f"hydra.run.dir={run_dir}", "logger=none", f"model.latent_dim={latent_dim}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    # the kernel inherits this environment: the run dir, the data root, and PYTHONPATH (this checkout's src/)
    monkeypatch.setenv("VAELAB_RUN_DIR", str(run_dir))
    monkeypatch.setenv("VAELAB_DATA_ROOT", str(tiny_root))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    km = client.create_kernel_manager()
    assert Path(km.format_kernel_cmd()[0]).resolve() == Path(sys.executable).resolve()  # this venv's interpreter
    client.execute()  # uses client.km; raises CellExecutionError on the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run {run_dir}" in text and f"latent dim {latent_dim}" in text
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    # loss curves, reconstructions, latent line/plane, traversals
    assert len(pngs) == 4, [o.output_type for o in outputs]


def test_make_notebook_uses_the_active_environment_and_writes_where_git_stays_clean() -> None:
    import subprocess

    dry = subprocess.run(["make", "-n", "notebook", "RUN=/r", "VIRTUAL_ENV=/opt/env"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "/opt/env/bin/python -m jupyter nbconvert" in dry.stdout and "--output-dir outputs/notebook" in dry.stdout
    assert ".venv" not in dry.stdout  # no .venv built or used inside an active environment
    assert subprocess.run(["git", "check-ignore", "-q", "outputs/notebook/latent_space.md"], cwd=REPO).returncode == 0
    asked = subprocess.run(
        ["make", "-n", "notebook", "RUN=/r", "VIRTUAL_ENV=/opt/env", "OUT=docs/notebook"], cwd=REPO, capture_output=True, text=True
    )
    assert "--output-dir docs/notebook" in asked.stdout
