"""The schedule chart computes schedules and costs in JS: they must equal the library's."""

import json
import shutil
import subprocess

import pytest

from ttsvar.infinity.grids import resolve_grid, PN_SCALES
from ttsvar.schedule import BatchSchedule
from ui_convert import REPO

CASES = [("tts-var", 1, "1M", ""), ("tts-var", 2, "0.25M", ""), ("tts-var", 1, "0.60M", ""), ("tts-var", 3, "0.06M", ""), ("best-of-n", 4, "1M", ""),
         ("importance-sampling", 3, "0.60M", ""), ("raw", 5, "0.06M", ""), ("custom", 2, "0.06M", "8,6,6,4,2,2n,1")]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_cost_model_matches_python(tmp_path):
    script = tmp_path / "run.mjs"
    script.write_text(
        f"import {{ scheduleSizes, scheduleCost }} from {json.dumps(str(REPO / 'web' / 'ttsvar_cost.js'))};\n"
        f"const cases = {json.dumps(CASES)};\n"
        "console.log(JSON.stringify(cases.map(c => { const s = scheduleSizes(...c); return [s, scheduleCost(s)]; })));\n"
    )
    out = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True, check=True).stdout)
    for (preset, n, pn, custom), (sizes, cost) in zip(CASES, out):
        sched = BatchSchedule.preset(preset, n, PN_SCALES[pn], custom=custom)
        assert sizes == list(sched.sizes)
        ref = sched.cost(resolve_grid(aspect=1.0, pn=pn).token_counts).to_dict()
        assert cost["generated"] == ref["generated"]
        for key in ("compute", "kv_memory"):
            assert cost[key] == pytest.approx(ref[key], rel=1e-9)
        for key in ("total_compute", "compute_vs_best_of_n", "peak_kv_memory", "kv_vs_best_of_n"):
            assert cost[key] == pytest.approx(ref[key], rel=1e-9)
