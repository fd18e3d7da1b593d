import json
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


@pytest.fixture(scope="session")
def workflow_run(mappings):
    """`workflow_run(name)`: the example workflow's tiny-model variant (workflow_defs.ci_variant),
    run once per session and shared: (api graph, its Runner, the images of that first run).

    The runner may be re-run by a test (the re-execution tests do); the images stay those of the
    first run."""
    from runner import Runner
    from workflow_defs import OUT, ci_variant

    runs = {}

    def run(name):
        if name not in runs:
            api = ci_variant(json.loads((OUT / "api" / f"{name}.json").read_text()))
            runner = Runner(mappings)
            runner.run(api)
            runs[name] = (api, runner, {nid: images.clone() for nid, images in runner.images.items()})
        return runs[name]

    return run
