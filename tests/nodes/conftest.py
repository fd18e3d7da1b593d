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


@pytest.fixture(scope="session", autouse=True)
def _alias(pack):
    # `nodes_under_test` = the pack's nodes subpackage, imported through the pack module
    sys.modules["nodes_under_test"] = sys.modules[pack.__name__ + ".nodes"]
    import importlib

    for sub in ("common", "loaders", "pipeline", "comfy_bridge", "scoring_adapter"):
        sys.modules[f"nodes_under_test.{sub}"] = importlib.import_module(f"{pack.__name__}.nodes.{sub}")
