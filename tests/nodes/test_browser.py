"""The frontend in a real browser: serve it from a real ComfyUI (COMFYUI_DIR), load an example
workflow in headless Chromium, check our extension is registered and the nodes load, and save a
screenshot (path printed; look at it). Needs COMFYUI_DIR, chromium and node with playwright-core
(PLAYWRIGHT_NODE_PATH = a node_modules folder holding it)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_comfyui_server import server  # noqa: F401  (fixture)
from workflow_defs import OUT

NODE_PATH = os.environ.get("PLAYWRIGHT_NODE_PATH", "")
pytestmark = pytest.mark.skipif(
    not (os.environ.get("COMFYUI_DIR") and shutil.which("chromium") and shutil.which("node")
         and (Path(NODE_PATH) / "playwright-core").is_dir()),
    reason="needs COMFYUI_DIR, chromium, node and PLAYWRIGHT_NODE_PATH/playwright-core",
)


def test_schedule_chart_in_browser(server, tmp_path):  # noqa: F811
    base, _ = server
    out = Path(os.environ.get("TTSVAR_SCREENSHOT", tmp_path / "ttsvar_tts_var.png"))
    res = subprocess.run(
        ["node", str(Path(__file__).with_name("browser_check.mjs")), base, str(OUT / "ttsvar_tts_var.json"), str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NODE_PATH": NODE_PATH},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"\nscreenshot: {out}")
    assert "ttsvar.frontend" in info["ext"], info
    assert "TTSVAR_BatchSchedule" in info["nodes"] and info["errors"] == [], info
    assert out.stat().st_size > 10000
