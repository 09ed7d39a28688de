import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# what p2p measured or fetched on this machine (thread pools, datasets) stays out of the tests
os.environ["P2P_CACHE"] = tempfile.mkdtemp(prefix="p2p-test-cache-")

import pytest  # noqa: E402

from p2p.facades import make_facades  # noqa: E402


@pytest.fixture(scope="session")
def facades_root(tmp_path_factory):
    """The procedural facades at 64x64 (seconds to make), shared by the tests."""
    return make_facades(tmp_path_factory.mktemp("facades"), seed=0, size=64, progress=False)
