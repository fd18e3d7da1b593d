"""Against a real ComfyUI (COMFYUI_DIR = a checkout whose python deps are importable): start it
headless with the pack on a custom_nodes path, check /object_info lists our nodes, post every
example workflow unchanged but for its size and the demo entries (workflow_defs.ci_variant) at 256²,
512² and 1024² to /prompt and wait for a successful history (1024² takes minutes per workflow on a
CPU), and check that a mistake downstream stops the run before sampling."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ui_convert import REPO
from workflow_defs import OUT, WORKFLOWS, ci_variant

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")
PY = os.environ.get("COMFYUI_PYTHON", sys.executable)


def _port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url, data):
    req = urllib.request.Request(url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("comfy")
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir()
    os.symlink(REPO, nodes_dir / "ComfyUI-TTS-VAR")  # the pack as users install it: a folder in custom_nodes
    cfg = tmp / "extra_model_paths.yaml"
    cfg.write_text(f"ttsvar_test:\n  base_path: {tmp}\n  custom_nodes: {nodes_dir}\n")
    port = _port()
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [PY, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
         "--extra-model-paths-config", str(cfg), "--output-directory", str(tmp / "out"),
         "--temp-directory", str(tmp / "temp"), "--disable-api-nodes"],
        cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        if proc.poll() is not None:
            break
        try:
            _get(base + "/system_stats")
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
    if proc.poll() is not None:
        pytest.fail("ComfyUI did not start:\n" + (tmp / "server.log").read_text()[-4000:])
    yield base, tmp / "server.log"
    proc.terminate()
    proc.wait(30)


def test_pack_imported_and_listed(server):
    base, log = server
    text = log.read_text()
    assert "IMPORT FAILED" not in text.split("Import times for custom nodes")[-1].split("\n\n")[0]
    info = _get(base + "/object_info")
    from ui_convert import import_pack

    for node_id in import_pack().NODE_CLASS_MAPPINGS:
        assert node_id in info, node_id
        assert info[node_id]["category"].startswith("TTS-VAR")
    assert "(tiny random demo)" in info["TTSVAR_InfinityLoader"]["input"]["required"]["transformer"][0]
    ext = _get(base + "/extensions")
    assert any(e.endswith("/ttsvar.js") for e in ext), ext


def _run(base, log, api, deadline_s=1800):
    res = _post(base + "/prompt", {"prompt": api, "client_id": "ttsvar-test"})
    assert res.get("node_errors") == {}, res
    pid = res["prompt_id"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        hist = _get(base + f"/history/{pid}")
        if pid in hist:
            return hist[pid]
        time.sleep(0.5)
    pytest.fail("timed out; log tail:\n" + log.read_text()[-3000:])


@pytest.mark.parametrize("side", [256, 512, 1024])
@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_on_server(server, name, side):
    base, log = server
    entry = _run(base, log, ci_variant(json.loads((OUT / "api" / f"{name}.json").read_text()), side))
    status = entry["status"]
    assert status["status_str"] == "success", json.dumps(status)[:3000]
    outputs = entry["outputs"]
    assert any("images" in o for o in outputs.values())
    assert any("ttsvar_lineage" in o for o in outputs.values())
    sizes = [r for o in outputs.values() for r in o.get("ttsvar_size", [])]
    assert sizes and all(r["produced"] == [side, side] for r in sizes), sizes


def test_a_downstream_mistake_stops_the_run_before_sampling(server):
    base, log = server
    api = ci_variant(json.loads((OUT / "api" / "ttsvar_tts_var.json").read_text()), 256)
    select = next(nid for nid, n in api.items() if n["class_type"] == "TTSVAR_SelectBest")
    api[select]["inputs"]["k"] = 3
    entry = _run(base, log, api)
    status = entry["status"]
    assert status["status_str"] == "error"
    error = next(m[1] for m in status["messages"] if m[0] == "execution_error")
    assert error["node_type"] == "TTSVAR_StartState", error
    assert f"(node {select}), input 'k'" in error["exception_message"], error
