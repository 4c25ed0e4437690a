"""Opening a checkpoint someone sent you: every entry point reads it with torch's weights-only
loader, so a file holding anything vaelab does not store is refused with one line, before any of it
runs (issue 26 item 1); the file is read once (issue 27 item 2); a folder given as ckpt_path is
called a folder; evaluate's chunk and sample's grids are bounded, and sample writes all or none
(issue 26 item 4).

The poisoned checkpoints are real vaelab checkpoints with one added object whose unpickling
touches a marker file: the marker must never appear."""

from __future__ import annotations

import json
import pathlib
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, call_task, evaluate_in_process, run_cli, train_in_process

REFUSED = "holds objects vaelab does not store (builtins.getattr, pathlib.Path, pathlib.PosixPath): not loaded"


class _TouchOnLoad:
    """Unpickled (``weights_only=False``), it calls ``Path(marker).touch()``: a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def poison(ckpt: Path, marker: Path, dst: Path | None = None) -> Path:
    """``ckpt`` (or a copy at ``dst``) with one added key whose unpickling would create ``marker``."""
    contents = torch.load(ckpt, map_location="cpu", weights_only=True)
    contents["note"] = _TouchOnLoad(marker)
    dst = dst or ckpt
    torch.save(contents, dst)
    return dst


@pytest.fixture(scope="module")
def sweep(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep dir holding one finished 2-epoch tiny run (job 0), as the report reads one."""
    sweep = tmp_path_factory.mktemp("safe") / "sweep"
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", run_dir=sweep / "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def _best(run: Path) -> Path:
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    return best


def _refused(proc, path: Path, marker: Path) -> None:
    """One error line naming ``path`` and what it holds, exit 2, no traceback, no marker."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and REFUSED in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not marker.exists()


def test_the_poison_is_real(sweep: Path, tmp_path: Path) -> None:
    """An unsafe load of the crafted file does run its code (so the refusals below mean something)."""
    marker = tmp_path / "MARKER"
    bad = poison(_best(sweep / "0"), marker, tmp_path / "bad.ckpt")
    torch.load(bad, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_evaluate_and_sample_refuse_a_poisoned_checkpoint(sweep: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    bad = poison(_best(sweep / "0"), marker, tmp_path / "bad.ckpt")
    _refused(run_cli("vaelab.evaluate", f"ckpt_path={bad}", "k=2", f"out={tmp_path / 'eval.json'}"), bad, marker)
    assert not (tmp_path / "eval.json").exists()
    _refused(run_cli("vaelab.sample", f"ckpt_path={bad}", f"out={tmp_path / 'samples'}"), bad, marker)
    assert not (tmp_path / "samples").exists()


def test_train_refuses_a_poisoned_ckpt_path(sweep: Path, tiny_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    bad = poison(_best(sweep / "0"), marker, tmp_path / "bad.ckpt")
    proc = run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    _refused(proc, bad, marker)


def test_resume_refuses_a_poisoned_last_ckpt(sweep: Path, tiny_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run)
    last = poison(run / "checkpoints" / "last.ckpt", marker)
    # a higher epoch cap: the finished run has epochs to train, so resume=true loads its last.ckpt
    proc = run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", "trainer.max_epochs=4", "resume=true", f"hydra.run.dir={run}")
    _refused(proc, last, marker)
    assert json.loads((run / "status.json").read_text())["status"] == "failed"


def test_the_report_and_the_api_refuse_a_poisoned_checkpoint(sweep: Path, tmp_path: Path) -> None:
    from vaelab.errors import UserError
    from vaelab.runs import trained

    marker = tmp_path / "MARKER"
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    metrics = json.loads((copy / "0" / "metrics.json").read_text())
    best = poison(_best(copy / "0"), marker)
    (copy / "0" / "metrics.json").write_text(json.dumps({**metrics, "best_ckpt": str(best)}))
    _refused(run_cli("vaelab.report", str(copy), "--out", str(tmp_path / "report"), "--wandb-mode", "disabled"), best, marker)
    assert not (tmp_path / "report").exists()  # refused before it wrote anything
    for use in (trained.load, trained.encode_split):
        with pytest.raises(UserError, match=REFUSED.replace("(", r"\(").replace(")", r"\)")):
            use(best)
    assert not marker.exists()


def test_real_checkpoints_hold_only_what_the_allow_list_names(sweep: Path, tiny_root: Path, tmp_path: Path) -> None:
    """Both speed paths' checkpoints (last and best: optimiser, LR scheduler, callbacks, loops,
    history) need no global beyond torch's weights-only defaults and SAFE_GLOBALS, and load through
    the reader."""
    from vaelab.training.checkpoint import SAFE_GLOBALS, read_checkpoint

    plain = tmp_path / "plain"
    proc = train_in_process(
        f"data.root={tiny_root}", *TINY, "logger=none", "speed=plain", "model/optimizer=adamw", "model/scheduler=plateau", run_dir=plain
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    for run in (sweep / "0", plain):
        for ckpt in (run / "checkpoints" / "last.ckpt", _best(run)):
            assert set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)) <= allowed, ckpt
            read = read_checkpoint(ckpt, latent_dim=2, hidden=[32])
            assert read.hparams["latent_dim"] == 2 and read.module().vae.latent_dim == 2


@pytest.fixture
def torch_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What ``torch.load`` is called with from now on (ours and Lightning's loads), starting from a
    fresh process's state (no checkpoint read before)."""
    from vaelab.training import checkpoint

    loads: list[object] = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        loads.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(checkpoint, "_last_read", {})
    return loads


def test_sample_and_evaluate_read_their_checkpoint_once(
    sweep: Path, tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_loads: list[object]
) -> None:
    from vaelab.evaluate import run as evaluate_task
    from vaelab.sample import run as sample_task
    from vaelab.training import checkpoint
    from vaelab.training.module import VAEModule

    built: list[int] = []
    real_restore = VAEModule.on_load_checkpoint

    def counting_restore(self, contents):  # once per module built from a checkpoint (ours or Lightning's)
        built.append(1)
        real_restore(self, contents)

    monkeypatch.setattr(VAEModule, "on_load_checkpoint", counting_restore)
    best = _best(sweep / "0")
    for name, task, args in (
        ("sample", sample_task, ["n_samples=4", "grid_steps=3", f"out={tmp_path / 'samples'}"]),
        ("evaluate", evaluate_task, ["k=2", f"out={tmp_path / 'eval.json'}", f"data.root={tiny_root}"]),
    ):
        torch_loads.clear(), built.clear(), checkpoint._last_read.clear()  # each command in a fresh process
        ran = call_task(name, task, f"ckpt_path={best}", *args, env={"WANDB_MODE": "disabled"})
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert torch_loads == [best] and len(built) == 1, (name, torch_loads, built)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["latent_grid.png", "latents_test.pt", "samples.png"]


def test_a_training_job_reads_its_source_or_its_last_ckpt_once(sweep: Path, tiny_root: Path, tmp_path: Path, torch_loads: list[object]) -> None:
    """``ckpt_path=``: the checks and the weights' load are one read; ``resume=true``: the check and
    Lightning's restore are one read. Lightning's other load, the test of the new best, is the
    only other one, also through vaelab's reader."""
    best = _best(sweep / "0")
    ran = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", f"ckpt_path={best}", run_dir=tmp_path / "new")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert torch_loads == [best, _best(tmp_path / "new")], torch_loads
    torch_loads.clear()
    run = tmp_path / "resumed"
    shutil.copytree(sweep / "0", run)
    ran = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", "trainer.max_epochs=3", "resume=true", run_dir=run)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    assert torch_loads == [run / "checkpoints" / "last.ckpt", _best(run)], torch_loads


def test_a_directory_as_ckpt_path_is_called_a_directory(sweep: Path, tiny_root: Path, tmp_path: Path) -> None:
    run = sweep / "0"
    said = f"error: ckpt_path={run} is a directory, not a checkpoint file: give {run}/checkpoints/best-epochNNN.ckpt"
    from vaelab.sample import run as sample

    # the command line once (train); evaluate and sample through their Hydra tasks in process: the same wording
    for proc in (
        run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'run'}"),
        evaluate_in_process(f"ckpt_path={run}", "k=2"),
        call_task("sample", sample, f"ckpt_path={run}"),
    ):
        assert proc.returncode == 2 and proc.stderr.strip().startswith(said) and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_a_chunk_that_cannot_fit(sweep: Path, tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    proc = evaluate_in_process(f"ckpt_path={_best(sweep / '0')}", "k=1000000000", "chunk=1000000000", f"out={out}", f"data.root={tiny_root}")
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert line.startswith("error: chunk=1000000000 with k=1000000000 and batch_size=100 decodes 100,000,000,000 images at once: about ")
    assert "GiB of memory, more than the " in line and line.endswith("lower chunk (e.g. chunk=100) or batch_size")
    assert not out.exists()


def test_sample_refuses_a_grid_too_large_and_writes_nothing(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    proc = run_cli("vaelab.sample", f"ckpt_path={_best(sweep / '0')}", "n_samples=100000000", f"out={out}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip() == (
        "error: n_samples=100000000 is out of range: samples.png holds 1 to 10,000 prior draws "
        "(100,000,000 images: 292.1 GiB of pixels); e.g. n_samples=64"
    )
    assert not out.exists()


def test_sample_writes_all_its_files_or_none(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails midway (a full disk on the second file) leaves out/ as it was: the old
    file untouched, no new file, no temp file."""
    from vaelab.errors import UserError
    from vaelab.runs import trained

    out = tmp_path / "samples"
    out.mkdir()
    (out / "samples.png").write_bytes(b"the previous one")
    real_write, writes = pathlib.Path.write_bytes, []

    def full_disk_on_the_second(self, data):
        writes.append(self.name)
        if len(writes) == 2:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk_on_the_second)
    with pytest.raises(UserError, match=f"cannot write into out={out} \\(No space left on device\\); nothing was written"):
        trained.write_samples(_best(sweep / "0"), out, n_samples=4, grid_steps=3)
    assert [p.name for p in out.iterdir()] == ["samples.png"] and (out / "samples.png").read_bytes() == b"the previous one"
    monkeypatch.undo()
    written = trained.write_samples(_best(sweep / "0"), out, n_samples=4, grid_steps=3)
    assert sorted(p.name for p in out.iterdir()) == ["latent_grid.png", "latents_test.pt", "samples.png"] == sorted(p.name for p in written.values())
