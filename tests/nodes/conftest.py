import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ui_convert import import_pack  # noqa: E402


@pytest.fixture(scope="session")
def pack():
    return import_pack()


@pytest.fixture(scope="session")
def mappings(pack):
    return pack.NODE_CLASS_MAPPINGS
