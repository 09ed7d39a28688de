"""A chapter trained on a released dataset, fetched by `p2p.lab.datasets.download` from a server on loopback.

The archive has the released layout (facades/train, val, test of A|B files), made here from
procedural files; the chapter runs with `dataset = "facades"` as a reader on Colab would set it.
"""

import functools
import http.server
import json
import tarfile
import threading
from pathlib import Path

import nbformat
import papermill
import pytest

from p2p.lab.facades import make_facades

pytestmark = pytest.mark.slow  # a papermill run of a chapter

BOOK = Path(__file__).resolve().parents[1] / "book"


@pytest.fixture
def released_facades_server(tmp_path, monkeypatch):
    """A loopback server with facades.tar.gz in the released layout; P2P_DATASETS_URL points at it."""
    files = make_facades(tmp_path / "facades", seed=1, size=32, progress=False)
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "facades.tar.gz", "w:gz") as tar:
        for split in ("train", "val", "test"):
            tar.add(files / split, arcname=f"facades/{split}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("P2P_DATASETS_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("P2P_CACHE", str(tmp_path / "cache"))  # the kernel inherits both
    yield files
    server.shutdown()
    server.server_close()


def test_a_chapter_downloads_a_released_dataset_and_trains_on_it(released_facades_server, tmp_path):
    folder = tmp_path / "chapter"
    folder.mkdir()
    papermill.execute_notebook(
        str(BOOK / "03-objective.ipynb"), str(folder / "03-objective.ipynb"), cwd=str(folder), kernel_name="python3",
        parameters={"preset": "tiny", "steps": 40, "dataset": "facades"}, progress_bar=False,
    )
    notebook = nbformat.read(folder / "03-objective.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "facades: unpacked facades.tar.gz (sha256 " in printed  # downloaded once, its checksum said
    assert (tmp_path / "cache" / "facades" / "test").is_dir()
    for run in ("l1", "l1-cgan"):  # retrained on it: the book runs learned the procedural facades only
        config = json.loads((folder / "runs" / "book" / run / "config.json").read_text())
        assert config["data"] == "facades" and config["preset"] == "tiny" and config["direction"] == "BtoA"

