"""Importing the pack the way ComfyUI does: fast, and fine with or without ComfyUI modules."""

import os
import subprocess
import sys
import textwrap

from ui_convert import REPO

SNIPPET = textwrap.dedent(
    """
    import importlib.util, sys, time, json
    {pre}
    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location("ttsvar_pack", {init!r}, submodule_search_locations=[{repo!r}])
    m = importlib.util.module_from_spec(spec); sys.modules["ttsvar_pack"] = m; spec.loader.exec_module(m)
    dt = time.perf_counter() - t
    print(json.dumps({{"seconds": dt, "nodes": len(m.NODE_CLASS_MAPPINGS), "torch": "torch" in sys.modules,
                      "web": m.WEB_DIRECTORY, "comfy": "folder_paths" in sys.modules}}))
    """
)


def _run(pre="", env_extra=None, cwd=None):
    import json

    code = SNIPPET.format(pre=pre, init=str(REPO / "__init__.py"), repo=str(REPO))
    env = {**os.environ, **(env_extra or {})}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd or "/", timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_without_comfyui_is_light():
    res = _run()
    print(f"\npack import without ComfyUI: {res['seconds'] * 1000:.1f} ms (torch imported: {res['torch']})")
    assert res["nodes"] >= 15 and res["web"] == "./web"
    assert not res["torch"], "importing the pack must not import torch"
    assert not res["comfy"]


def test_import_with_stub_comfyui_modules(tmp_path):
    # Minimal stand-ins for ComfyUI's modules, as present when ComfyUI loads the pack.
    (tmp_path / "folder_paths.py").write_text(textwrap.dedent(f"""
        import os
        models_dir = {str(tmp_path / 'models')!r}
        folder_names_and_paths = {{"text_encoders": ([os.path.join(models_dir, "text_encoders")], set())}}
        def add_model_folder_path(name, path, is_default=False):
            folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)
        def get_folder_paths(name):
            return folder_names_and_paths[name][0]
    """))
    os.makedirs(tmp_path / "models" / "infinity")
    (tmp_path / "models" / "infinity" / "infinity_2b_reg.pth").write_bytes(b"")
    res = _run(pre=f"sys.path.insert(0, {str(tmp_path)!r})")
    print(f"\npack import with folder_paths present: {res['seconds'] * 1000:.1f} ms")
    assert res["comfy"] and res["nodes"] >= 15
