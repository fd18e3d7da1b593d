"""The lineage tree's data (web/ttsvar_lineage.js) from a record the library made: one row per step
with every candidate it looked at, links from each survivor to its continuations (a resampled copy
is a fork), the final pick, one numbering (the lineage labels) everywhere; the text view when the
record has no thumbnails."""

import json
import shutil
import subprocess

import pytest
import torch

from ttsvar.decode import decode_images
from ttsvar.infinity.grids import resolve_grid
from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import BatchSchedule
from ttsvar.search.filters import cluster_filter, reward_resample, select_best
from ui_convert import REPO

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


class Favourite:
    """Reward 1 for the first candidate, 0 for the others: resampling with a large λ then forks it."""

    name, input_size = "favourite", 16

    def score(self, images, prompts):
        return torch.tensor([1.0 if i == 0 else 0.0 for i in range(images.shape[0])])


class Pixels:
    name, input_size = "pixels", 8

    def features(self, images):
        return images.flatten(1)


@pytest.fixture(scope="module")
def record(tiny_model, tiny_condition):
    grid = resolve_grid(pn="0.06M")
    state = start_state(tiny_model, tiny_condition, BatchSchedule((6, 6, 3, 3, 2, 2, 2)), grid, seed=1)
    state = cluster_filter(sample_scales(state, until=3), Pixels(), fast_filters=True, thumbnails=16)
    state = reward_resample(sample_scales(state, until=5), Favourite(), lam=1e4, fast_filters=True, thumbnails=16)
    state = sample_scales(state)
    best = select_best(state, Favourite(), k=1, images=decode_images(state, 16), thumbnails=16)
    return best.record()


def _js(record, final_thumbs):
    script = (
        f"import {{ lineageModel, lineageText }} from {json.dumps(str(REPO / 'web' / 'ttsvar_lineage.js'))};\n"
        "const [rec, thumbs] = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify({ model: lineageModel(rec, thumbs), text: lineageText(rec) }));\n"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps([record, final_thumbs])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_tree_rows_links_and_forks(record):
    out = _js(record, ["data:image/jpeg;base64,final"])
    model, events = out["model"], record["events"]
    assert model["hasThumbnails"]
    assert [r["kind"] for r in model["rows"]] == ["cluster", "resample", "select"]
    for row, event in zip(model["rows"], events):
        assert len(row["cells"]) == event["batch_before"] and all(c["thumb"] for c in row["cells"])
        assert [c["label"] for c in row["cells"]] == event["labels_before"]
        assert sorted(l["from"] for l in row["links"]) == sorted(event["kept"])
        assert sum(c["kept"] for c in row["cells"]) == len(event["kept"])
    cluster, resample, select = model["rows"]
    assert len({c["group"] for c in cluster["cells"]}) == 3  # every candidate is in a survivor's group
    # the resample drew the favourite twice: one link keeps its id, the other is a fork to a copy
    assert [l["copy"] for l in resample["links"]] == [False, True]
    assert resample["after"] == [resample["cells"][0]["label"], resample["cells"][0]["label"] + "a"]
    assert [c["label"] for c in select["cells"]] == resample["after"]  # the next row continues them
    final = model["final"]["cells"]
    assert [c["label"] for c in final] == record["labels"] and final[0]["thumb"] == "data:image/jpeg;base64,final"
    assert final[0]["reward"] == 1.0


def test_text_view_without_thumbnails_uses_the_same_names(record):
    bare = json.loads(json.dumps(record))
    for event in bare["events"]:
        event.pop("thumbnails")
    out = _js(bare, [])
    assert not out["model"]["hasThumbnails"]
    text = out["text"]
    first = record["events"][1]["labels_after"]
    assert any(line.startswith("after scale 4 · resample (favourite) · kept 2 of 3: ") and line.endswith(" ".join("#" + x for x in first))
               for line in text), text
    assert text[-1] == f"final #{record['labels'][0]} 1.00"
