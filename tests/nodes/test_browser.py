"""The frontend in a real browser: serve it from a real ComfyUI (COMFYUI_DIR), load the TTS-VAR
example in headless Chromium, check our extension is registered and the nodes load (schedule
chart), then queue its tiny-model variant from the page and check the lineage view on Select Best
and Decode was drawn with what the run recorded. Screenshots go to TTSVAR_SCREENSHOT (the lineage
crop) and its _schedule / _full siblings (paths printed; look at them). Needs COMFYUI_DIR,
chromium and node with playwright-core (PLAYWRIGHT_NODE_PATH = a node_modules folder holding it)."""

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


def test_schedule_chart_and_lineage_in_browser(server, tmp_path):  # noqa: F811
    base, log = server
    out = Path(os.environ.get("TTSVAR_SCREENSHOT", tmp_path / "ttsvar_lineage.png"))
    res = subprocess.run(
        ["node", str(Path(__file__).with_name("browser_check.mjs")), base, str(OUT / "ttsvar_tts_var.json"), str(out)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "NODE_PATH": NODE_PATH},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    print("\nscreenshots: " + ", ".join(info["screenshots"]))
    assert "ttsvar.frontend" in info["ext"], info
    assert "TTSVAR_BatchSchedule" in info["nodes"] and info["errors"] == [], info
    # the CI variant: every loader on the tiny model, 512², 0.25M
    assert sorted(info["queued"]) == sorted([
        "TTSVAR_InfinityLoader.transformer", "TTSVAR_InfinityLoader.vae", "TTSVAR_TextEncoderLoader.encoder",
        "TTSVAR_RewardModelLoader.weights", "TTSVAR_FeatureExtractorLoader.weights", "TTSVAR_BatchSchedule.pn",
        "TTSVAR_StartState.width", "TTSVAR_StartState.height"]), info["queued"]
    run = info["run"]
    assert run["done"] == "success", (run, log.read_text()[-3000:])
    views = {v["type"]: v for v in info["lineage"]}
    assert set(views) == {"TTSVAR_SelectBest", "TTSVAR_Decode"}, views
    for v in views.values():
        assert v["id"] in run["executed"], (v, run)
        events = v["history"]
        # the plan: cluster, cluster, resample, resample, then Select Best's own event
        assert [e["kind"] for e in events] == ["cluster", "cluster", "resample", "resample", "select"], events
        assert v["shown"]["events"] == events  # the page got what the run recorded
        assert v["drawn"] is not None and v["drawn"]["events"] == len(events), v  # ... and drew it
        assert v["drawn"]["lines"] >= 1 + len(events)
    assert views["TTSVAR_Decode"]["drawn"]["thumbnails"] == views["TTSVAR_Decode"]["shown"]["thumbnails"] == 1
    assert views["TTSVAR_SelectBest"]["drawn"]["thumbnails"] == 0
    for path in info["screenshots"]:
        assert Path(path).stat().st_size > 10000, path
