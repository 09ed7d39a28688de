"""Installing p2p as the chapters' first cell does on Colab: from a git URL, on top of the TensorFlow already there."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What the fresh environment has: TensorFlow (version, where) and whether it finds p2p.
PROBE = """
import importlib.metadata, importlib.util, json
tensorflow = importlib.metadata.distribution("tensorflow")
print(json.dumps({"tensorflow": [tensorflow.version, str(tensorflow.locate_file(""))],
                  "p2p": importlib.util.find_spec("p2p") is not None}))
"""

#: What the installed p2p sees, as the chapters import it: where its book runs are, and TensorFlow's version.
IMPORT = """
import json
from p2p.lab import import_tensorflow_quietly
tf = import_tensorflow_quietly()
from p2p import models
from p2p.lab import bookruns
print(json.dumps([str(bookruns.SHIPPED), tf.__version__]))
"""


def _run(*command, cwd) -> subprocess.CompletedProcess:
    """Run `command` in `cwd`; a failure fails the test with its output."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow  # clones the repository and builds p2p's wheel (needs an index for setuptools, as on Colab)
def test_installing_from_a_git_url_keeps_the_tensorflow_there(tmp_path):
    clone = tmp_path / "repository"
    _run("git", "clone", "--quiet", ROOT, clone, cwd=tmp_path)
    # Colab's TensorFlow sits in the system's site-packages. A venv made with --system-site-packages would see the base
    # interpreter's, which lacks it, so a .pth file puts this environment's packages (pip too) behind the venv's own.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).stdout.strip()
    Path(purelib, "system.pth").write_text(sysconfig.get_path("purelib") + "\n")
    before = json.loads(_run(python, "-c", PROBE, cwd=tmp_path).stdout)
    assert not before["p2p"]  # as on Colab, where the chapters' first cell installs it

    report = tmp_path / "report.json"
    _run(python, "-m", "pip", "install", "--quiet", "--report", report, f"p2p @ git+{clone.as_uri()}", cwd=tmp_path)

    installed = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installed == ["p2p"], f"installing p2p also installed {installed}"
    assert json.loads(_run(python, "-c", PROBE, cwd=tmp_path).stdout)["tensorflow"] == before["tensorflow"]
    shipped, tensorflow = json.loads(_run(python, "-c", IMPORT, cwd=tmp_path).stdout)
    assert tensorflow == before["tensorflow"][0]
    assert Path(shipped).is_relative_to(venv)
    committed = _run("git", "ls-files", cwd=clone / "p2p" / "lab" / "trained").stdout.split()
    missing = [name for name in committed if not Path(shipped, name).is_file()]
    assert committed and not missing, f"the installed p2p lacks these book run files: {missing}"
    assert "usage: python -m p2p" in _run(python, "-m", "p2p", "--help", cwd=tmp_path).stdout
