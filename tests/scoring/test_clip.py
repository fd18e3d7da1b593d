"""CLIP score, PickScore, HPSv2 (open_clip checkpoint conversion), aesthetic predictor, CLIP features."""

import math

import pytest
import torch

from conftest import PROMPTS, make_clip_folder, make_hps_folder
from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.scoring import (load_aesthetic, load_clip_features, load_clip_score, load_hpsv2, load_pickscore,
                            openclip_to_hf, hpsv2_clip_config)
from ttsvar.scoring.base import FeatureExtractor, RewardModel


@pytest.fixture(scope="module")
def clip(tiny_dirs):
    return load_clip_score(tiny_dirs["clip"])


@pytest.fixture(scope="module")
def hps(tiny_dirs):
    return load_hpsv2(tiny_dirs["hps"], config=tiny_dirs["_hps_cfg"])


def _hf_reference(model, tok, pixels, prompts):
    """Direct transformers forward: normalised image and text embeddings."""
    t = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], pixel_values=pixels)
    i = torch.nn.functional.normalize(out.image_embeds, dim=-1)
    x = torch.nn.functional.normalize(out.text_embeds, dim=-1)
    return i, x


def test_clip_score_is_100_cos(clip, images):
    s = clip.score(images, PROMPTS)
    assert isinstance(clip, RewardModel) and s.shape == (4,) and s.dtype == torch.float32
    i, x = _hf_reference(clip.model, clip.tokenizer, clip.preprocess(images), PROMPTS)
    # the same embeddings through transformers' own forward: float32 reordering, scaled by 100
    torch.testing.assert_close(s, 100 * (i * x).sum(-1), atol=1e-4, rtol=1e-5)
    assert clip.input_size == 32


def test_pickscore_uses_logit_scale(tiny_dirs, images):
    pick = load_pickscore(tiny_dirs["pickscore"], processor_path=tiny_dirs["clip"])
    s = pick.score(images, PROMPTS)
    i, x = _hf_reference(pick.model, pick.tokenizer, pick.preprocess(images), PROMPTS)
    # the same embeddings through transformers' own forward: float32 reordering only
    torch.testing.assert_close(s, pick.model.logit_scale.exp() * (i * x).sum(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("loader", ["clip", "hps"])
def test_batch_equals_one_by_one(request, loader, images):
    m = request.getfixturevalue(loader)
    batch = m.score(images, PROMPTS)
    single = torch.cat([m.score(images[i:i + 1], [PROMPTS[i]]) for i in range(4)])
    # the batch size changes how matmul kernels block their float32 sums (differs by CPU and thread
    # count): compare relative to the scores' magnitude
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5 * float(single.abs().max()))


def test_text_cache_and_repeated_prompt(clip, images):
    same = clip.score(images, [PROMPTS[0]] * 4)
    clip._cache.clear()
    again = torch.cat([clip.score(images[i:i + 1], [PROMPTS[0]]) for i in range(4)])
    # one image at a time vs a batch of four: float32 sums blocked differently, relative to the scores
    torch.testing.assert_close(same, again, rtol=1e-4, atol=1e-5 * float(again.abs().max()))
    assert list(clip._cache) == [PROMPTS[0]]


# ---------------------------------------------------------------- HPSv2

def _openclip_reference(sd, cfg, pixels, ids):
    """open_clip's CLIP.forward written out from the open_clip state dict (float64): cos similarity."""
    sd = {k: v.double() for k, v in sd.items()}

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], 1e-5)

    def block(x, p, heads, causal):
        h = ln(x, p + "ln_1")
        b, n, c = h.shape
        q, k, v = (h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]).chunk(3, -1)
        sp = lambda t: t.reshape(b, n, heads, c // heads).transpose(1, 2)
        a = sp(q) @ sp(k).transpose(-1, -2) / math.sqrt(c // heads)
        if causal:
            a = a + torch.full((n, n), float("-inf"), dtype=a.dtype).triu(1)
        a = (a.softmax(-1) @ sp(v)).transpose(1, 2).reshape(b, n, c)
        x = x + a @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
        h = ln(x, p + "ln_2") @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
        return x + torch.nn.functional.gelu(h) @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]

    v, t = cfg.vision_config, cfg.text_config
    x = torch.nn.functional.conv2d(pixels.double(), sd["visual.conv1.weight"], stride=v.patch_size)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, -1), x], 1) + sd["visual.positional_embedding"]
    x = ln(x, "visual.ln_pre")
    for i in range(v.num_hidden_layers):
        x = block(x, f"visual.transformer.resblocks.{i}.", v.num_attention_heads, False)
    img = ln(x[:, 0], "visual.ln_post") @ sd["visual.proj"]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
    for i in range(t.num_hidden_layers):
        x = block(x, f"transformer.resblocks.{i}.", t.num_attention_heads, True)
    x = ln(x, "ln_final")
    txt = x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ sd["text_projection"]
    img, txt = torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(txt, dim=-1)
    return (img * txt).sum(-1).float()


def test_hps_conversion_matches_openclip_forward(hps, tiny_dirs, images):
    sd, cfg = tiny_dirs["_hps_sd"], tiny_dirs["_hps_cfg"]
    # open_clip's tokenizer: [SOT] tokens [EOT] then zeros up to 77
    ids = hps.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    ids = ids["input_ids"] * ids["attention_mask"]
    ref = _openclip_reference(sd, cfg, hps.preprocess(images), ids)
    # converted weights vs open_clip's layout run by hand: same arithmetic, float32 reordering only
    torch.testing.assert_close(hps.score(images, PROMPTS), ref, atol=1e-5, rtol=1e-5)
    assert hps.name == "hpsv2" and hps.scale == 1.0


def test_hps_default_config_is_vit_h14():
    c = hpsv2_clip_config()
    v, t = c.vision_config, c.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.patch_size, v.image_size) == (1280, 32, 16, 14, 224)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.max_position_embeddings) == (1024, 24, 16, 77)
    assert c.projection_dim == 1024 and v.hidden_act == t.hidden_act == "gelu"


def test_hps_full_size_keys_convert_strictly():
    """The converted key set of a full ViT-H-14 open_clip layout equals CLIPModel's (meta tensors)."""
    from transformers import CLIPModel

    cfg = hpsv2_clip_config()
    with torch.device("meta"):
        model = CLIPModel(cfg)
        own = model.state_dict()
    v, t = cfg.vision_config, cfg.text_config
    keys = {"visual.class_embedding", "visual.positional_embedding", "visual.conv1.weight", "visual.proj",
            "token_embedding.weight", "positional_embedding", "text_projection", "logit_scale"}
    keys |= {f"{p}.{w}" for p in ("visual.ln_pre", "visual.ln_post", "ln_final") for w in ("weight", "bias")}
    per_block = ["ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                 "attn.out_proj.weight", "attn.out_proj.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                 "mlp.c_proj.bias"]
    keys |= {f"visual.transformer.resblocks.{i}.{k}" for i in range(v.num_hidden_layers) for k in per_block}
    keys |= {f"transformer.resblocks.{i}.{k}" for i in range(t.num_hidden_layers) for k in per_block}
    fake = {k: torch.empty(6, 2) if "in_proj" in k else torch.empty(2, 2) for k in keys}
    assert set(openclip_to_hf(fake)) == set(own)


def test_hps_unknown_key_is_reported(tmp_path, tiny_dirs):
    folder, cfg, sd = make_hps_folder(tmp_path / "hps")
    torch.save({"state_dict": {**sd, "score_predictor.weight": torch.zeros(1)}}, folder / "HPS_v2.1_compressed.pt")
    with pytest.raises(TTSVarError, match="unexpected keys.*score_predictor.weight"):
        load_hpsv2(folder, config=cfg)


def test_hps_missing_files(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        load_hpsv2(tmp_path)
    assert "HPS_v2.1_compressed.pt" in str(e.value) and "xswu/HPSv2" in str(e.value)
    torch.save({"state_dict": {}}, tmp_path / "HPS_v2.1_compressed.pt")
    with pytest.raises(MissingWeightsError, match="vocab.json.*laion/CLIP-ViT-H-14"):
        load_hpsv2(tmp_path)


# ---------------------------------------------------------------- aesthetic and features

def test_aesthetic_head_on_normalised_embeds(tiny_dirs, images):
    aes = load_aesthetic(tiny_dirs["aesthetic"])
    s = aes.score(images, PROMPTS)
    with torch.no_grad():
        e = aes.vision(pixel_values=C_pre(aes, images)).image_embeds
        ref = aes.head(torch.nn.functional.normalize(e, dim=-1))[:, 0]
    # the same vision forward and head called directly: float32 reordering only
    torch.testing.assert_close(s, ref, atol=1e-5, rtol=1e-5)
    single = torch.cat([aes.score(images[i:i + 1]) for i in range(4)])
    # batch vs one by one: float32 sums blocked differently, relative to the scores' magnitude
    torch.testing.assert_close(s, single, rtol=1e-4, atol=1e-5 * float(single.abs().max()))


def C_pre(m, images):
    from ttsvar.scoring import _common as C

    p = m.proc
    return C.clip_style_preprocess(images, resize_to=p["resize_to"], crop=p["crop"], mean=p["mean"], std=p["std"],
                                   device=m.device, dtype=m.dtype, rounding="round")


def test_aesthetic_missing_head_or_clip(tmp_path, tiny_dirs):
    with pytest.raises(MissingWeightsError, match=r"sac\+logos\+ava1-l14-linearMSE.pth"):
        load_aesthetic(tmp_path)
    torch.save(torch.load(tiny_dirs["aesthetic"] / "sac+logos+ava1-l14-linearMSE.pth"), tmp_path / "sac+logos+ava1-l14-linearMSE.pth")
    with pytest.raises(MissingWeightsError, match="config.json.*openai/clip-vit-large-patch14"):
        load_aesthetic(tmp_path)
    load_aesthetic(tmp_path / "sac+logos+ava1-l14-linearMSE.pth", clip_path=tiny_dirs["aesthetic"])


def test_clip_features_are_unit_image_embeds(tiny_dirs, clip, images):
    f = load_clip_features(tiny_dirs["clip"])
    out = f.features(images)
    assert isinstance(f, FeatureExtractor) and out.shape == (4, 16) and out.dtype == torch.float32
    # unit vectors in float32: the norm is 1 up to a few ulps of its 16 squared terms
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4), atol=1e-5, rtol=0)
    # the same vision forward reached through the reward's loader: float32 reordering only
    torch.testing.assert_close(out, clip.image_embeds(images).float(), atol=1e-5, rtol=1e-5)


def test_float64_and_bfloat16(tiny_dirs, clip, images):
    ref = clip.score(images, PROMPTS)
    c64 = load_clip_score(tiny_dirs["clip"], dtype=torch.float64)
    assert c64.model.dtype == torch.float64
    out = c64.score(images, PROMPTS)
    assert out.dtype == torch.float32
    # float64 vs float32 model; scores are 100·cos, so the float32 run's ~1e-6 relative error is ~1e-4
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-5)
    cbf = load_clip_score(tiny_dirs["clip"], dtype="bfloat16")
    assert cbf.model.dtype == torch.bfloat16
    out = cbf.score(images, PROMPTS)
    assert out.dtype == torch.float32 and (out - ref).abs().max() < 5.0  # 100·cos scale


def test_missing_clip_folder_names_files(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        load_clip_score(tmp_path)
    msg = str(e.value)
    assert "config.json" in msg and "model.safetensors" in msg and str(tmp_path) in msg
    make_clip_folder(tmp_path / "c")
    (tmp_path / "c" / "vocab.json").unlink()
    with pytest.raises(MissingWeightsError, match="tokenizer.json or vocab.json"):
        load_clip_score(tmp_path / "c")
    with pytest.raises(MissingWeightsError, match="yuvalkirstain/PickScore_v1"):
        load_pickscore(tmp_path / "nothing")
