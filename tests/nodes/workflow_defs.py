"""Source of the shipped example workflows: each is built here once and written in both formats.

``python tests/nodes/workflow_defs.py`` rewrites example_workflows/*.json (UI format, what users
load) and example_workflows/api/*.json (API format, what tests and /prompt execute). The test
``test_example_workflows.py`` converts every UI file to API format with the node declarations and
checks it equals its twin, so editing one file alone is caught.

The shipped files name the real model files users download (README, "ComfyUI" section). Tests
run them on the tiny random model through :func:`ci_variant`; the world workflow names the pack's
own entries (the world model and its built-in verifier) and runs as shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "example_workflows"
TINY = "(tiny random demo)"
WORLD = "(world model demo)"
BUILT_IN = "(built-in world verifier)"
#: Loader entries that ship with the pack: a workflow naming them runs anywhere, as it is.
SHIPPED = (WORLD, BUILT_IN)
WORLD_PROMPT = "a photo of three circles"  # counting: where the search gains most on the world (README)

PROMPT = "a red fox sitting in fresh snow at golden hour, detailed fur, 35mm photo"


class G:
    """A tiny graph builder: nodes with widget values (by input name) and links."""

    def __init__(self):
        self.nodes = []  # (id, class_type, {input: value or ("link", src_id, slot)}, title)

    def add(self, class_type, title=None, **inputs):
        nid = str(len(self.nodes) + 1)
        self.nodes.append((nid, class_type, inputs, title))
        return nid

    def api(self):
        out = {}
        for nid, ct, inputs, title in self.nodes:
            ins = {k: ([v[1], v[2]] if isinstance(v, tuple) else v) for k, v in inputs.items()}
            out[nid] = {"class_type": ct, "inputs": ins, "_meta": {"title": title or ct}}
        return out


def L(src, slot=0):
    return ("link", src, slot)


def _loaders(g, reward=True, features=True, reward_family="imagereward", reward_file="ImageReward/"):
    m = g.add("TTSVAR_InfinityLoader", transformer="infinity_2b_reg.pth", vae="infinity_vae_d32reg.pth", dtype="auto")
    te = g.add("TTSVAR_TextEncoderLoader", encoder="flan-t5-xl/", dtype="auto", model=L(m))
    cond = g.add("TTSVAR_EncodePrompt", text_encoder=L(te), prompt=PROMPT, negative="")
    rw = g.add("TTSVAR_RewardModelLoader", family=reward_family, weights=reward_file) if reward else None
    fe = g.add("TTSVAR_FeatureExtractorLoader", family="dinov2 (pca)", weights="dinov2-with-registers-large/") if features else None
    return m, cond, rw, fe


def _start(g, m, cond, preset, n):
    sch = g.add("TTSVAR_BatchSchedule", preset=preset, n=n, pn="1M", custom="8,8,6,6,6,4,2,2,2,1,1,1,1")
    return g.add("TTSVAR_StartState", model=L(m), condition=L(cond), schedule=L(sch), width=1024, height=1024,
                 aspect="from width/height", pn="auto (from schedule)", cfg=3.0, tau=0.5, top_p=0.97, seed=42,
                 cfg_insertion_layer=0)


def _paper_plan(g, st, fe, rw):
    """The paper's plan node by node from a start state: cluster after the first two drops of the
    schedule, resample after the next two, sample to the end, keep the best; returns Select Best."""
    for kind in ("cluster", "cluster", "resample", "resample"):
        st = g.add("TTSVAR_SampleScales", state=L(st), until_scale=0)
        if kind == "cluster":
            st = g.add("TTSVAR_ClusterFilter", state=L(st), feature_extractor=L(fe), keep=0, seed=0, decode_at_model_size=False)
        else:
            st = g.add("TTSVAR_RewardResample", state=L(st), reward_model=L(rw), potential="value", lam=10.0, keep=0, decode_at_model_size=False)
    st = g.add("TTSVAR_SampleScales", state=L(st), until_scale=-1)
    return g.add("TTSVAR_SelectBest", state=L(st), reward_model=L(rw), k=1)


def tts_var():
    g = G()
    m, cond, rw, fe = _loaders(g)
    img = g.add("TTSVAR_Decode", state=L(_paper_plan(g, _start(g, m, cond, "tts-var", 1), fe, rw)))
    g.add("PreviewImage", images=L(img))
    return g


def best_of_n():
    g = G()
    m, cond, rw, _ = _loaders(g, features=False)
    st = _start(g, m, cond, "best-of-n", 4)
    st = g.add("TTSVAR_SampleScales", state=L(st), until_scale=-1)
    best = g.add("TTSVAR_SelectBest", state=L(st), reward_model=L(rw), k=1)
    img = g.add("TTSVAR_Decode", state=L(best))
    g.add("PreviewImage", images=L(img))
    return g


def importance_sampling():
    g = G()
    m, cond, rw, _ = _loaders(g, features=False)
    s = g.add("TTSVAR_Sampler", model=L(m), condition=L(cond), strategy="importance-sampling", n=4, width=1024,
              height=1024, cfg=3.0, tau=0.5, top_p=0.97, seed=42, potential="value", lam=10.0, reward_model=L(rw),
              decode_at_model_size=False, score_from_scale=-1)
    g.add("PreviewImage", images=L(s, 0))
    return g


def plain():
    g = G()
    m, cond, _, _ = _loaders(g, reward=False, features=False)
    st = _start(g, m, cond, "raw", 1)
    st = g.add("TTSVAR_SampleScales", state=L(st), until_scale=-1)
    img = g.add("TTSVAR_Decode", state=L(st))
    g.add("PreviewImage", images=L(img))
    return g


def reward_swap():
    """TTS-VAR with the all-in-one sampler and a different reward: HPSv2 + ImageReward combined."""
    g = G()
    m, cond, rw, fe = _loaders(g)
    hps = g.add("TTSVAR_RewardModelLoader", family="hpsv2", weights="HPSv2/")
    comb = g.add("TTSVAR_CombineRewards", reward_a=L(hps), weight_a=1.0, reward_b=L(rw), weight_b=1.0,
                 normalization="softmax", weight_c=1.0, weight_d=1.0)
    s = g.add("TTSVAR_Sampler", model=L(m), condition=L(cond), strategy="tts-var", n=1, width=1024, height=1024,
              cfg=3.0, tau=0.5, top_p=0.97, seed=42, potential="value", lam=10.0, reward_model=L(comb),
              feature_extractor=L(fe), decode_at_model_size=False, score_from_scale=-1)
    g.add("PreviewImage", images=L(s, 0))
    return g


def world():
    """The synthetic world end to end, with its own verifiers: TTS-VAR node by node (64×64, 7 scales,
    the paper's plan) beside one plain sample of the same prompt and seed."""
    g = G()
    m = g.add("TTSVAR_InfinityLoader", transformer=WORLD, vae=WORLD, dtype="auto")
    te = g.add("TTSVAR_TextEncoderLoader", encoder=WORLD, dtype="auto")
    cond = g.add("TTSVAR_EncodePrompt", text_encoder=L(te), prompt=WORLD_PROMPT, negative="")
    rw = g.add("TTSVAR_RewardModelLoader", family="world-reward", weights=BUILT_IN)
    fe = g.add("TTSVAR_FeatureExtractorLoader", family="world-features (pca)", weights=BUILT_IN)
    starts = {}
    for preset in ("tts-var", "raw"):
        sch = g.add("TTSVAR_BatchSchedule", preset=preset, n=1, pn="0.06M", custom="8,8,6,6,4,2,1")
        starts[preset] = g.add("TTSVAR_StartState", model=L(m), condition=L(cond), schedule=L(sch), width=64, height=64,
                               aspect="from width/height", pn="auto (from schedule)", cfg=3.0, tau=0.5, top_p=0.97,
                               seed=42, cfg_insertion_layer=0)
    best = _paper_plan(g, starts["tts-var"], fe, rw)
    g.add("PreviewImage", "TTS-VAR", images=L(g.add("TTSVAR_Decode", state=L(best))))
    plain_end = g.add("TTSVAR_SampleScales", state=L(starts["raw"]), until_scale=-1)
    g.add("PreviewImage", "plain sample", images=L(g.add("TTSVAR_Decode", state=L(plain_end))))
    return g


WORKFLOWS = {
    "ttsvar_tts_var": tts_var,
    "ttsvar_best_of_n": best_of_n,
    "ttsvar_importance_sampling": importance_sampling,
    "ttsvar_plain_generation": plain,
    "ttsvar_reward_swap_hps_imagereward": reward_swap,
    "ttsvar_world_tts_var_vs_plain": world,
}


#: Side (px) of the square test sizes -> the pixel budget whose scale grid produces it.
PN_FOR_SIDE = {256: "0.06M", 512: "0.25M", 768: "0.60M", 1024: "1M"}
#: The loader inputs that name model files: the demo variant replaces them with a demo entry.
MODEL_FILE_INPUTS = ("transformer", "vae", "encoder", "weights")


def ci_variant(api: dict, side: int, demo: str = TINY) -> dict:
    """The same workflow on a demo model at side×side: every loader combo becomes the demo entry,
    1M budgets become the budget of that side, 1024 sizes become it, and filters use fast previews
    (full-resolution decodes of the tiny VAE on a CPU would dominate the test time; the official
    previews are tested in the library's own tests). The graph is unchanged.
    (The one place tests switch workflows to demo models: the browser test mirrors it in JS.)"""
    out = json.loads(json.dumps(api))
    for node in out.values():
        ins = node["inputs"]
        for key in MODEL_FILE_INPUTS:
            if key in ins and isinstance(ins[key], str) and ins[key] not in SHIPPED:
                ins[key] = demo
        if ins.get("pn") == "1M":
            ins["pn"] = PN_FOR_SIDE[side]
        for key in ("width", "height"):
            if ins.get(key) == 1024:
                ins[key] = side
        if "decode_at_model_size" in ins:
            ins["decode_at_model_size"] = True
    return out


# --------------------------------------------------------------------------- UI format
def to_ui(api: dict, mappings: dict) -> dict:
    """Lay an API graph out as a UI-format workflow (what ComfyUI's editor saves)."""

    nodes, links = [], []
    link_id = 0
    order = list(api)
    pos = {nid: [60 + 330 * (i % 5), 60 + 420 * (i // 5)] for i, nid in enumerate(order)}
    out_links: dict[tuple[str, int], list[int]] = {}
    in_link: dict[tuple[str, str], int] = {}
    for nid in order:
        for name, v in api[nid]["inputs"].items():
            if isinstance(v, list):
                link_id += 1
                src, slot = v
                ltype = _output_types(api[src]["class_type"], mappings)[slot]
                links.append([link_id, int(src), slot, int(nid), None, ltype])
                out_links.setdefault((src, slot), []).append(link_id)
                in_link[(nid, name)] = link_id
    for nid in order:
        ct = api[nid]["class_type"]
        spec = _input_spec(ct, mappings)
        inputs, widgets = [], []
        link_slot = 0
        for name, (typ, opts) in spec:
            v = api[nid]["inputs"].get(name)
            is_widget = typ in ("INT", "FLOAT", "STRING", "BOOLEAN") or isinstance(typ, list)
            if (nid, name) in in_link:
                lk = in_link[(nid, name)]
                entry = {"name": name, "type": typ if isinstance(typ, str) else "COMBO", "link": lk}
                if is_widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
                for link in links:
                    if link[0] == lk:
                        link[4] = len(inputs) - 1
                link_slot += 1
            elif not is_widget:
                inputs.append({"name": name, "type": typ, "link": None})
            if is_widget and (nid, name) not in in_link:
                widgets.append(v if name in api[nid]["inputs"] else opts.get("default"))
                if opts.get("control_after_generate"):
                    widgets.append("fixed")
        outs = []
        for slot, t in enumerate(_output_types(ct, mappings)):
            outs.append({"name": _output_names(ct, mappings)[slot], "type": t, "links": out_links.get((nid, slot), [])})
        nodes.append({
            "id": int(nid), "type": ct, "pos": pos[nid], "size": [300, 200 if ct != "TTSVAR_BatchSchedule" else 330],
            "flags": {}, "order": order.index(nid), "mode": 0, "inputs": inputs, "outputs": outs,
            "properties": {"Node name for S&R": ct}, "widgets_values": widgets,
            **({"title": api[nid]["_meta"]["title"]} if api[nid]["_meta"]["title"] != ct else {}),
        })
    return {
        "id": "00000000-0000-4000-8000-0000000000" + f"{len(order):02d}",
        "revision": 0, "last_node_id": len(order), "last_link_id": link_id, "nodes": nodes, "links": links,
        "groups": [], "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [0, 0]}}, "version": 0.4,
    }


BUILTIN = {"PreviewImage": {"required": {"images": ("IMAGE", {})}}}


def _input_spec(ct, mappings):
    if ct in BUILTIN:
        d = BUILTIN[ct]
    else:
        d = mappings[ct].INPUT_TYPES()
    return [(k, (v[0], v[1] if len(v) > 1 else {})) for sec in ("required", "optional") for k, v in d.get(sec, {}).items()]


def _output_types(ct, mappings):
    return [] if ct in BUILTIN else list(mappings[ct].RETURN_TYPES)


def _output_names(ct, mappings):
    if ct in BUILTIN:
        return []
    cls = mappings[ct]
    return list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))


def main():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ui_convert import import_pack

    mappings = import_pack().NODE_CLASS_MAPPINGS
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for name, build in WORKFLOWS.items():
        api = build().api()
        (OUT / "api" / f"{name}.json").write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
        (OUT / f"{name}.json").write_text(json.dumps(to_ui(api, mappings), indent=2, ensure_ascii=False) + "\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
