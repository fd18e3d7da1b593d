"""Tiny random models saved the way the real folders look, for the scoring tests and benchmark.

Nothing is downloaded: configs are tiny, weights random with fixed seeds, tokenizers are written
from small hand-made vocabularies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

TINY_IMAGE = 32  # input side of every tiny model (patch 8 → 4×4 patches)


# ---------------------------------------------------------------- tokenizers

def _bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_clip_tokenizer(folder: Path) -> int:
    """A CLIP byte-level BPE vocabulary (bytes, bytes+</w>, a few merges, then the special tokens so
    that <|endoftext|> has the largest id, as in CLIP). Returns the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for m in ("ca", "cat</w>", "do", "dog</w>", "ph", "pho"):
        vocab[m] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\np h\nph o\n")
    return len(vocab)


BERT_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "an", "the", "cat", "dog", "photo", "of", "on",
              "red", "blue", "sofa", "##s", "and", "with", "two"]


def write_bert_vocab(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    return len(BERT_WORDS) + 2  # + [DEC], [ENC] added as in BLIP


def write_preprocessor(folder: Path, size: int = TINY_IMAGE, crop: int = TINY_IMAGE,
                       mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": size},
        "do_center_crop": True, "crop_size": {"height": crop, "width": crop}, "do_normalize": True,
        "image_mean": list(mean), "image_std": list(std), "resample": 3, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_convert_rgb": True}))


# ---------------------------------------------------------------- CLIP family

def tiny_clip_config(vocab_size: int, projection_dim: int = 16):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=vocab_size, hidden_act="gelu",
                         bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8, hidden_act="gelu"),
        projection_dim=projection_dim,
    )


def make_clip_folder(folder: Path, seed: int = 0, projection_dim: int = 16) -> Path:
    from transformers import CLIPModel

    n = write_clip_tokenizer(folder)
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config(n, projection_dim)).eval()
    model.save_pretrained(str(folder))
    write_preprocessor(folder)
    return folder


def random_openclip_state_dict(cfg, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random open_clip-style CLIP state dict with the shapes of a transformers CLIPConfig."""
    g = torch.Generator().manual_seed(seed)
    v, t = cfg.vision_config, cfg.text_config
    sd: dict[str, torch.Tensor] = {}

    def r(*shape, std=0.05):
        return torch.randn(*shape, generator=g) * std

    def ln(prefix, w):
        sd[f"{prefix}.weight"] = 1 + r(w)
        sd[f"{prefix}.bias"] = r(w)

    def blocks(prefix, n, w, hidden):
        for i in range(n):
            p = f"{prefix}{i}."
            ln(p + "ln_1", w)
            ln(p + "ln_2", w)
            sd[p + "attn.in_proj_weight"] = r(3 * w, w, std=0.2)
            sd[p + "attn.in_proj_bias"] = r(3 * w)
            sd[p + "attn.out_proj.weight"] = r(w, w, std=0.2)
            sd[p + "attn.out_proj.bias"] = r(w)
            sd[p + "mlp.c_fc.weight"] = r(hidden, w, std=0.2)
            sd[p + "mlp.c_fc.bias"] = r(hidden)
            sd[p + "mlp.c_proj.weight"] = r(w, hidden, std=0.2)
            sd[p + "mlp.c_proj.bias"] = r(w)

    grid = (v.image_size // v.patch_size) ** 2
    sd["visual.class_embedding"] = r(v.hidden_size, std=0.5)
    sd["visual.positional_embedding"] = r(grid + 1, v.hidden_size, std=0.5)
    sd["visual.conv1.weight"] = r(v.hidden_size, 3, v.patch_size, v.patch_size, std=0.2)
    ln("visual.ln_pre", v.hidden_size)
    ln("visual.ln_post", v.hidden_size)
    sd["visual.proj"] = r(v.hidden_size, cfg.projection_dim, std=0.3)
    blocks("visual.transformer.resblocks.", v.num_hidden_layers, v.hidden_size, v.intermediate_size)
    sd["token_embedding.weight"] = r(t.vocab_size, t.hidden_size, std=0.5)
    sd["positional_embedding"] = r(t.max_position_embeddings, t.hidden_size, std=0.1)
    blocks("transformer.resblocks.", t.num_hidden_layers, t.hidden_size, t.intermediate_size)
    ln("ln_final", t.hidden_size)
    sd["text_projection"] = r(t.hidden_size, cfg.projection_dim, std=0.3)
    sd["logit_scale"] = torch.tensor(4.6052)
    return sd


def make_hps_folder(folder: Path, seed: int = 0):
    """``HPS_v2.1_compressed.pt`` ({'state_dict': open_clip keys}) + tokenizer. Returns (folder, config, sd)."""
    n = write_clip_tokenizer(folder)
    cfg = tiny_clip_config(n)
    sd = random_openclip_state_dict(cfg, seed)
    torch.save({"state_dict": sd}, folder / "HPS_v2.1_compressed.pt")
    return folder, cfg, sd


def make_aesthetic_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny CLIP folder with a tiny ``sac+logos+ava1-l14-linearMSE.pth`` head in it."""
    from ttsvar.scoring.clip import AestheticMlp

    make_clip_folder(folder, seed)
    torch.manual_seed(seed + 1)
    head = AestheticMlp(16)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    torch.save(head.state_dict(), folder / "sac+logos+ava1-l14-linearMSE.pth")
    return folder


# ---------------------------------------------------------------- DINOv2

def make_dinov2_folder(folder: Path, registers: int = 0, seed: int = 0) -> Path:
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(seed)
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=8,
              image_size=TINY_IMAGE)
    if registers:
        model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=registers, **kw))
    else:
        model = Dinov2Model(Dinov2Config(**kw))
    model.eval().save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------- T5 text encoder (Infinity's Flan-T5-XL stand-in)

def make_t5_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny random T5 encoder and a word-level tokenizer, saved like a Hugging Face folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate("a red fox in the snow".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    T5EncoderModel(cfg).eval().save_pretrained(folder)
    return folder


# ---------------------------------------------------------------- ImageReward

TINY_MED = dict(architectures=["BertModel"], attention_probs_dropout_prob=0.1, hidden_act="gelu",
                hidden_dropout_prob=0.1, hidden_size=32, initializer_range=0.02, intermediate_size=64,
                layer_norm_eps=1e-12, max_position_embeddings=40, model_type="bert", num_attention_heads=2,
                num_hidden_layers=2, pad_token_id=0, type_vocab_size=2, vocab_size=len(BERT_WORDS) + 2,
                encoder_width=64, add_cross_attention=True)
TINY_VIT = dict(image_size=TINY_IMAGE, patch=8, dim=64, depth=2, heads=1, hidden=128)


def random_imagereward_state_dict(seed: int = 0, extras: bool = True) -> dict[str, torch.Tensor]:
    """Random weights under the official ImageReward.pt key names (tiny shapes)."""
    from ttsvar.scoring.imagereward import BlipTextEncoder, BlipVisionEncoder, ImageRewardNet

    v = TINY_VIT
    net = ImageRewardNet(BlipVisionEncoder(v["image_size"], v["patch"], v["dim"], v["depth"], v["heads"], v["hidden"]),
                         BlipTextEncoder(TINY_MED, v["dim"]), TINY_MED["hidden_size"])
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, t in net.state_dict().items():
        noise = torch.randn(t.shape, generator=g)
        if k.endswith("LayerNorm.weight") or k.endswith("norm.weight") or k.endswith("norm1.weight") \
                or k.endswith("norm2.weight"):
            sd[k] = 1 + 0.05 * noise
        elif k.endswith(".bias"):
            sd[k] = 0.05 * noise
        elif "embed" in k or k.endswith("cls_token"):
            sd[k] = 0.5 * noise
        else:  # Linear / conv weights: unit gain, so scores stay O(1) and float32 noise small
            sd[k] = noise / t[0].numel() ** 0.5
    if extras:  # parts of BLIP_Pretrain that the official checkpoint carries but ImageReward does not use
        sd["blip.vision_proj.weight"] = torch.randn(16, v["dim"], generator=g)
        sd["blip.vision_proj.bias"] = torch.zeros(16)
        sd["blip.text_proj.weight"] = torch.randn(16, TINY_MED["hidden_size"], generator=g)
        sd["blip.text_proj.bias"] = torch.zeros(16)
        sd["blip.text_encoder.embeddings.position_ids"] = torch.arange(TINY_MED["max_position_embeddings"])[None]
    return sd


def make_imagereward_folder(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(random_imagereward_state_dict(seed), folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(TINY_MED))
    write_bert_vocab(folder)
    return folder


# ---------------------------------------------------------------- fixtures (built once per session)

@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scoring_models")
    hps_dir, hps_cfg, hps_sd = make_hps_folder(root / "hps")
    return {
        "clip": make_clip_folder(root / "clip"),
        "pickscore": make_clip_folder(root / "pickscore", seed=1),
        "aesthetic": make_aesthetic_folder(root / "aesthetic", seed=2),
        "dinov2": make_dinov2_folder(root / "dinov2"),
        "dinov2_reg": make_dinov2_folder(root / "dinov2_reg", registers=4, seed=3),
        "imagereward": make_imagereward_folder(root / "imagereward"),
        "hps": hps_dir,
        "_hps_cfg": hps_cfg,
        "_hps_sd": hps_sd,
    }


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    # smooth-ish random images at a size other than the models' so that the resize path runs
    x = torch.rand(4, 3, 12, 12, generator=g)
    return torch.nn.functional.interpolate(x, size=(48, 40), mode="bilinear", align_corners=False).clamp(0, 1)


PROMPTS = ["a photo of a cat", "two dogs on a red sofa", "a cat", "the blue photo"]
