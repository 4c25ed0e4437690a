"""A new user's path to the data: a data root that does not exist yet, MNIST downloaded into it
from a mirror (here a local HTTP server on 127.0.0.1 serving gzipped tiny idx files), checked,
moved in, and reused by the next run; a mirror serving bad bytes leaves nothing behind."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import REPO, TINY, composed, make_tiny_mnist, run_cli, train_in_process
from vaelab.data.fetch import ensure_data
from vaelab.data.idx_files import DATASETS, check_data_root
from vaelab.errors import UserError

FILES = list(DATASETS["mnist"][1])


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes); counts the requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mnist/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The four tiny idx files, uncompressed, by name."""
    raw = make_tiny_mnist(tmp_path_factory.mktemp("originals")) / "MNIST" / "raw"
    return {name: (raw / name).read_bytes() for name in FILES}


@pytest.fixture()
def mirror(originals: dict[str, bytes]) -> Iterator[Mirror]:
    served = Mirror({f"/mnist/{name}.gz": gzip.compress(data) for name, data in originals.items()})
    yield served
    served.server.shutdown()


def train(root: Path, run: Path, mirror_url: str):
    return run_cli(
        "vaelab.train", f"data.root={root}", f"data.mirror={mirror_url}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={run}"
    )


def test_first_run_downloads_checks_and_trains_then_reuses(tmp_path, mirror, originals):
    root = tmp_path / "fresh"  # does not exist yet, as <repo>/data on a fresh clone
    first = train(root, tmp_path / "run1", mirror.url)
    assert first.returncode == 0, first.stderr
    assert sorted(mirror.requests) == sorted(f"/mnist/{name}.gz" for name in FILES)
    raw = root / "MNIST" / "raw"
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == originals  # decompressed, nothing else left there
    assert f"downloading MNIST (4 file(s)) from {mirror.url} into {raw}, once" in first.stdout
    assert (tmp_path / "run1" / "metrics.json").is_file()

    # the second run in process (the first took the command line): the files are reused
    second = train_in_process(
        f"data.root={root}", f"data.mirror={mirror.url}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path / 'run2'}"
    )
    assert second.returncode == 0, second.stderr
    assert len(mirror.requests) == 4 and "downloading" not in second.stdout  # reused: no request
    assert (tmp_path / "run2" / "metrics.json").is_file()


@pytest.mark.parametrize("bad", ["not gzip", "truncated idx"])
def test_a_mirror_serving_bad_bytes_gives_one_line_and_leaves_nothing(tmp_path, mirror, originals, bad):
    name = "train-images-idx3-ubyte"
    mirror.files[f"/mnist/{name}.gz"] = b"<html>proxy login</html>" if bad == "not gzip" else gzip.compress(originals[name][:-100])
    root = tmp_path / "fresh"
    ran = train(root, tmp_path / "run", mirror.url)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: MNIST is missing from {root}/MNIST/raw and the download failed"), lines
    assert ("Not a gzipped file" in lines[0]) if bad == "not gzip" else ("truncated or corrupted" in lines[0])
    assert list((root / "MNIST" / "raw").iterdir()) == []  # no half file, no temp folder


def test_offline_names_the_failure_and_where_the_files_go(tmp_path):
    ran = train(tmp_path / "fresh", tmp_path / "run", "http://127.0.0.1:9/")  # nothing listens on port 9
    lines = ran.stderr.strip().splitlines()
    assert ran.returncode == 2 and len(lines) == 1
    assert "download failed" in lines[0] and "Connection refused" in lines[0] and "data.mirror" in lines[0]
    assert f"in {tmp_path}/fresh/MNIST/raw" in lines[0]


def test_fashion_mnist_downloads_the_same_way(tmp_path, originals):
    served = Mirror({f"/mnist/{name}.gz": gzip.compress(data) for name, data in originals.items()})
    try:
        raw = ensure_data(tmp_path / "fresh", download=True, dataset="fashion_mnist", mirror=served.url)
    finally:
        served.server.shutdown()
    assert raw == tmp_path / "fresh" / "FashionMNIST" / "raw" and {p.name: p.read_bytes() for p in raw.iterdir()} == originals


def test_an_abandoned_download_is_cleared_and_never_read(tmp_path, mirror, originals):
    raw = tmp_path / "MNIST" / "raw"
    dead = raw / ".download-999999999-x"  # a killed download's temp folder: no such process
    dead.mkdir(parents=True)
    (dead / "train-images-idx3-ubyte").write_bytes(originals["train-images-idx3-ubyte"][:500])
    ensure_data(tmp_path, download=True, mirror=mirror.url)
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES)


def test_the_default_root_is_the_checkout_s_data_and_a_fresh_one_is_made(tmp_path, monkeypatch):
    monkeypatch.delenv("VAELAB_DATA_ROOT", raising=False)
    monkeypatch.delenv("VAELAB_DATA_MIRROR", raising=False)
    with composed("train", ["logger=none"]) as cfg:
        assert Path(cfg.data.root) == REPO / "data" and cfg.data.mirror is None
    assert check_data_root(tmp_path / "new", create=True) == tmp_path / "new" and (tmp_path / "new").is_dir()
    with pytest.raises(UserError, match="does not exist"):  # a missing parent: a mistyped path
        check_data_root(tmp_path / "no" / "such", create=True)
    assert not (tmp_path / "no").exists()


def test_no_message_or_setting_names_a_development_machine_folder():
    hits = [str(p) for top in ("src", "conf") for p in (REPO / top).rglob("*") if p.is_file() and "shared/data" in p.read_text(errors="ignore")]
    assert hits == []
