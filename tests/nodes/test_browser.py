"""The frontend in a real browser: serve it from a real ComfyUI (COMFYUI_DIR), load the TTS-VAR
example in headless Chromium, check our extension is registered and the nodes load (schedule
chart), then queue its demo variant from the page and check what the nodes drew: the size produced
on Start State, and the lineage tree on Select Best and Decode (every candidate of every step with
its thumbnail, the links, the final pick) with what the run recorded; a click on a candidate shows it
larger with its scores, the full view opens from the box's title. Screenshots go to
TTSVAR_SCREENSHOT (the lineage in the node) and its _pick / _tree / _tree_pick / _schedule / _full
siblings (paths printed; look at them). TTSVAR_BROWSER_N (default 1) and TTSVAR_BROWSER_SIDE
(default 256) choose N and the size. Needs COMFYUI_DIR, chromium and node with playwright-core
(PLAYWRIGHT_NODE_PATH = a node_modules folder holding it)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_comfyui_server import server  # noqa: F401  (fixture)
from workflow_defs import OUT, PN_FOR_SIDE

NODE_PATH = os.environ.get("PLAYWRIGHT_NODE_PATH", "")
pytestmark = pytest.mark.skipif(
    not (os.environ.get("COMFYUI_DIR") and shutil.which("chromium") and shutil.which("node")
         and (Path(NODE_PATH) / "playwright-core").is_dir()),
    reason="needs COMFYUI_DIR, chromium, node and PLAYWRIGHT_NODE_PATH/playwright-core",
)
N = int(os.environ.get("TTSVAR_BROWSER_N", "1"))
SIDE = int(os.environ.get("TTSVAR_BROWSER_SIDE", "256"))


def test_schedule_chart_size_and_lineage_tree_in_browser(server, tmp_path):  # noqa: F811
    base, log = server
    out = Path(os.environ.get("TTSVAR_SCREENSHOT", tmp_path / "ttsvar_lineage.png"))
    res = subprocess.run(
        ["node", str(Path(__file__).with_name("browser_check.mjs")), base, str(OUT / "ttsvar_tts_var.json"), str(out),
         str(SIDE), str(N)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "NODE_PATH": NODE_PATH},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    print("\nscreenshots: " + ", ".join(info["screenshots"]))
    assert "ttsvar.frontend" in info["ext"], info
    assert "TTSVAR_BatchSchedule" in info["nodes"] and info["errors"] == [], info
    chart = info["chartError"]  # an impossible schedule: the message wraps inside the chart
    assert chart["error"] and chart["widest"] <= chart["room"], chart
    # the demo variant (workflow_defs.ci_variant): every loader on the demo entry, SIDE², and N
    assert sorted(info["queued"]) == sorted([
        "TTSVAR_InfinityLoader.transformer", "TTSVAR_InfinityLoader.vae", "TTSVAR_TextEncoderLoader.encoder",
        "TTSVAR_RewardModelLoader.weights", "TTSVAR_FeatureExtractorLoader.weights", "TTSVAR_BatchSchedule.pn",
        "TTSVAR_BatchSchedule.n", "TTSVAR_StartState.width", "TTSVAR_StartState.height"]), info["queued"]
    run = info["run"]
    assert run["done"] == "success", (run, log.read_text()[-3000:])
    # the size produced, drawn on Start State
    (size,) = info["size"]
    assert size["type"] == "TTSVAR_StartState" and size["report"]["produced"] == [SIDE, SIDE]
    assert size["report"]["pn"] == PN_FOR_SIDE[SIDE] and size["drawn"] == {"lines": 1, "warning": False}
    views = {v["type"]: v for v in info["lineage"]}
    assert set(views) == {"TTSVAR_SelectBest", "TTSVAR_Decode"}, views
    # the plan: cluster, cluster, resample, resample, then Select Best's own event; 8N candidates first
    kinds = ["cluster", "cluster", "resample", "resample", "select"]
    for v in views.values():
        assert v["id"] in run["executed"], (v, run)
        assert v["history"] == v["shown"]["events"] == kinds  # the page got what the run recorded ...
        drawn = v["drawn"]  # ... and drew it as a tree: one row per step and the final pick
        assert drawn["mode"] == "tree" and drawn["events"] == 5 and drawn["rows"] == 6, drawn
        assert drawn["cells"] >= 8 * N + 1 and drawn["thumbnails"] == drawn["cells"], drawn
        assert drawn["top"] - drawn["widgetsEnd"] <= 8, drawn  # the box sits right below the widgets
    assert views["TTSVAR_Decode"]["shown"]["thumbnails"] == 1 and views["TTSVAR_SelectBest"]["shown"]["thumbnails"] == 0
    # a click on a kept candidate: larger, with its scores (in the node when its cells are big enough)
    if N == 1:
        pick = info["pick"]
        assert pick["drawn"]["label"] == pick["want"] and "kept" in pick["drawn"]["lines"], pick
    full = info["fullView"]
    assert full["opened"]["rows"] == 6 and full["opened"]["thumbnails"] == full["opened"]["cells"], full
    assert full["pick"] is not None and full["pick"]["label"] == full["opened"]["kept"]["label"], full
    assert full["closed"], full
    print(f"redraw of the canvas: {info['redrawMs']:.1f} ms; full view: {full['opened']['ms']:.1f} ms "
          f"for {full['opened']['cells']} candidates")
    for path in info["screenshots"]:
        assert Path(path).stat().st_size > 10000, path
