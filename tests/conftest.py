import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from p2p.facades import make_facades


@pytest.fixture(scope="session")
def facades_root(tmp_path_factory):
    """The procedural facades at 64x64 (seconds to make), shared by the tests."""
    return make_facades(tmp_path_factory.mktemp("facades"), seed=0, size=64, progress=False)
