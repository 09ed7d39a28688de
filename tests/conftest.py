import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# what p2p measured or fetched on this machine (thread pools, datasets) stays out of the tests
os.environ["P2P_CACHE"] = tempfile.mkdtemp(prefix="p2p-test-cache-")

import pytest  # noqa: E402

from p2p.lab.facades import make_facades  # noqa: E402


@pytest.fixture(scope="session")
def facades_root(tmp_path_factory):
    """The procedural facades at 64x64 (seconds to make), shared by the tests."""
    return make_facades(tmp_path_factory.mktemp("facades"), seed=0, size=64, progress=False)


NO_BROWSER = "no Chromium-family browser found: install chromium (or Google Chrome), or set CHROMIUM=/path/to/it"


@pytest.fixture(scope="session")
def chromium():
    """The Chromium-family browser the site and editor tests drive, found as `make chromium` finds it.

    CHROMIUM (a path, or a name on the PATH) when set, else the first of the Makefile's BROWSERS found. With none the
    tests fail on one line saying what to install, rather than skip: CI must not pass without running them.
    """
    named = os.environ.get("CHROMIUM", "")
    if named:
        found = shutil.which(named)
        if not found:
            pytest.fail(f"CHROMIUM={named} is not an executable: set it to a Chromium-family browser, "
                        "or unset it to search the PATH", pytrace=False)
        return found
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    names = [name for line in re.findall(r"^BROWSERS [:+]= (.+)$", makefile, re.MULTILINE) for name in shlex.split(line)]
    assert "chromium" in names, "the Makefile lists no BROWSERS"
    found = next(filter(None, map(shutil.which, names)), None)
    if not found:
        pytest.fail(NO_BROWSER, pytrace=False)
    return found
