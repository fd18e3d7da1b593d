"""ImageReward-v1.0 (Xu et al., 2023) as a batched :class:`~ttsvar.scoring.base.RewardModel`.

Architecture, as in the official ``ImageReward.pt`` (a plain state dict):

* ``blip.visual_encoder.*`` — a BLIP/timm-style ViT (ViT-L/16 at 224 px: width 1024, 24 blocks,
  16 heads, pre-norm, fused ``qkv``, exact GELU, LayerNorm eps 1e-6); all its tokens are the
  image embeddings.
* ``blip.text_encoder.*`` — BLIP's "MED" BERT (BERT-base, 12 layers, no token-type embeddings)
  whose every layer has, after self-attention, a cross-attention to the image embeddings with
  key/value projections from the vision width (1024) to 768. The config comes from
  ``med_config.json``; as in BLIP, ``encoder_width`` is taken from the vision encoder.
* ``mlp.layers.{0,2,4,6,7}`` — linear layers 768→1024→128→64→16→1 *without* activations
  (dropouts at 1, 3, 5 are inactive at inference).
* The score is ``(mlp(h_CLS) − 0.16717362830052426) / 1.0333394966054072`` where ``h_CLS`` is
  the text encoder's output at [CLS] (the prompt is tokenised with bert-base-uncased, padded to
  35 tokens, truncated).

Preprocessing: shortest edge → 224 (bicubic), center crop 224, CLIP mean/std (``Resize``,
``CenterCrop``, ``Normalize`` of the official code, here on tensors).

Why not ``transformers.BertModel``: its cross-attention projects keys/values from
``hidden_size`` and it has token-type embeddings, so it cannot hold these weights; the two small
modules below are written from the architecture description. Checkpoint keys load strictly;
``blip.vision_proj``/``blip.text_proj`` (contrastive heads of BLIP, unused by ImageReward) and the
``position_ids`` buffer are the only keys ignored.

The ViT's size is read from the checkpoint's shapes (width from ``cls_token``, patch from the
patch embedding, depth by counting blocks, image size from ``pos_embed``; heads = width / 64 as
in every BLIP ViT).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.scoring import _common as C

IMAGEREWARD_MEAN = 0.16717362830052426
IMAGEREWARD_STD = 1.0333394966054072
TEXT_MAX_LENGTH = 35

_HINT = ("Download ImageReward.pt and med_config.json from the Hugging Face repo THUDM/ImageReward, and the "
         "tokenizer file vocab.txt (with tokenizer_config.json) from google-bert/bert-base-uncased, into one folder.")
_IGNORED_KEYS = ("blip.vision_proj.", "blip.text_proj.", "blip.text_encoder.embeddings.position_ids")


# ---------------------------------------------------------------- vision: BLIP ViT

class _VitAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _VitMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _VitBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _VitMlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class BlipVisionEncoder(nn.Module):
    """``[B,3,S,S]`` normalised pixels → ``[B, 1 + (S/patch)², width]`` tokens (CLS first)."""

    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int, hidden: int):
        super().__init__()
        self.image_size = image_size
        self.patch_embed = _PatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(_VitBlock(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed[:, : x.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


# ---------------------------------------------------------------- text: BLIP MED BERT with cross-attention

class _BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_width: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width, hidden)
        self.value = nn.Linear(kv_width, hidden)

    def forward(self, x, context, mask):
        b, n, c = x.shape
        m = context.shape[1]

        def split(t, length):
            return t.view(b, length, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x), n), split(self.key(context), m),
                                             split(self.value(context), m), attn_mask=mask)
        return out.transpose(1, 2).reshape(b, n, c)


class _BertSelfOutput(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)


class _BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_width: int, eps: float):
        super().__init__()
        self.self = _BertSelfAttention(hidden, heads, kv_width)
        self.output = _BertSelfOutput(hidden, eps)

    def forward(self, x, context, mask):
        h = self.self(x, context, mask)
        return self.output.LayerNorm(self.output.dense(h) + x)


class _Dense(nn.Module):
    def __init__(self, n_in: int, n_out: int, eps: float | None = None):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)


class _BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, enc_width: int, eps: float, act: str):
        super().__init__()
        self.attention = _BertAttention(hidden, heads, hidden, eps)
        self.crossattention = _BertAttention(hidden, heads, enc_width, eps)
        self.intermediate = _Dense(hidden, inter)
        self.output = _Dense(inter, hidden, eps)
        self.act = {"gelu": F.gelu, "relu": F.relu,
                    "gelu_new": lambda t: F.gelu(t, approximate="tanh")}.get(act)
        if self.act is None:
            raise TTSVarError(f"med_config.json: unsupported hidden_act {act!r}.")

    def forward(self, x, self_mask, image_embeds):
        x = self.attention(x, x, self_mask)
        x = self.crossattention(x, image_embeds, None)  # every image token is attended (mask of ones)
        h = self.act(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(h) + x)


class _BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, max_pos: int, eps: float, pad_id: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=pad_id)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)[None])


class _BertEncoder(nn.Module):
    def __init__(self, layers: list[_BertLayer]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class BlipTextEncoder(nn.Module):
    """Token ids + padding mask + image embeddings → hidden states ``[B, L, hidden]``."""

    def __init__(self, cfg: dict, enc_width: int):
        super().__init__()
        hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        eps = cfg.get("layer_norm_eps", 1e-12)
        self.embeddings = _BertEmbeddings(cfg["vocab_size"], hidden, cfg.get("max_position_embeddings", 512), eps,
                                          cfg.get("pad_token_id", 0))
        self.encoder = _BertEncoder([_BertLayer(hidden, heads, cfg["intermediate_size"], enc_width, eps,
                                                cfg.get("hidden_act", "gelu"))
                                     for _ in range(cfg["num_hidden_layers"])])

    def forward(self, ids, attention_mask, image_embeds):
        x = self.embeddings(ids)
        # additive padding mask, as BERT's extended attention mask; 0 where attended
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, mask, image_embeds)
        return x


class _Blip(nn.Module):
    def __init__(self, visual: BlipVisionEncoder, text: BlipTextEncoder):
        super().__init__()
        self.visual_encoder = visual
        self.text_encoder = text


class _Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                    nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


class ImageRewardNet(nn.Module):
    """The network with the official key names (``blip.*``, ``mlp.layers.*``)."""

    def __init__(self, visual: BlipVisionEncoder, text: BlipTextEncoder, text_width: int):
        super().__init__()
        self.blip = _Blip(visual, text)
        self.mlp = _Mlp(text_width)

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised rewards ``[B]`` (in the MLP's dtype)."""
        image_embeds = self.blip.visual_encoder(pixels)
        h = self.blip.text_encoder(ids, attention_mask, image_embeds)[:, 0]
        w = self.mlp.layers[0].weight
        r = self.mlp.layers(h.to(w.dtype))[:, 0]
        return (r - IMAGEREWARD_MEAN) / IMAGEREWARD_STD


def _vit_shape(sd: dict[str, torch.Tensor]) -> dict:
    p = "blip.visual_encoder."
    try:
        dim = sd[p + "cls_token"].shape[-1]
        patch = sd[p + "patch_embed.proj.weight"].shape[-1]
        n_tok = sd[p + "pos_embed"].shape[1] - 1
        hidden = sd[p + "blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise TTSVarError(f"The checkpoint is not an ImageReward state dict: no {e.args[0]} "
                          f"(keys start with {sorted(sd)[:3]}).") from None
    if not C.is_square(n_tok):
        raise TTSVarError(f"ImageReward checkpoint: pos_embed holds {n_tok} patch positions, not a square grid.")
    depth = 1 + max(int(k[len(p + "blocks."):].split(".")[0]) for k in sd if k.startswith(p + "blocks."))
    return dict(image_size=int(n_tok ** 0.5) * patch, patch=patch, dim=dim, depth=depth, heads=max(1, dim // 64),
                hidden=hidden)


class ImageRewardScorer(C.ModuleBacked):
    """Batched ImageReward. ``score(images [B,3,H,W] in 0..1, prompts)`` → float32 ``[B]`` on the CPU."""

    name = "imagereward"
    _weight_attrs = ("net",)  # device/dtype follow the net's parameters (see C.ModuleBacked)

    def __init__(self, net: ImageRewardNet, tokenizer, *, device: torch.device, dtype: torch.dtype):
        self.net = net.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device, self.dtype = device, dtype
        self.input_size = net.blip.visual_encoder.image_size
        self.max_length = TEXT_MAX_LENGTH

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        s = self.input_size
        return C.clip_style_preprocess(images, resize_to=s, crop=s, mean=C.CLIP_MEAN, std=C.CLIP_STD,
                                       device=self.device, dtype=self.dtype, rounding="round")

    def tokenize(self, prompts: Sequence[str]):
        t = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.max_length,
                           return_tensors="pt")
        return t["input_ids"].to(self.device), t["attention_mask"].to(self.device)

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        C.check_images(images, len(prompts))
        ids, mask = self.tokenize(prompts)
        return C.to_output(self.net(self.preprocess(images), ids, mask))


def _load_bert_tokenizer(folder: Path):
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    # the same special tokens BLIP adds (ids 30522/30523 with bert-base-uncased); prompts don't use them
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def load_imagereward(path: str | os.PathLike, *, tokenizer_path: str | os.PathLike | None = None,
                     device: torch.device | str | None = "cpu",
                     dtype: torch.dtype | str | None = torch.float32) -> ImageRewardScorer:
    """ImageReward from local files.

    ``path``: a folder with ``ImageReward.pt`` and ``med_config.json`` (and, unless
    ``tokenizer_path`` is given, the bert-base-uncased ``vocab.txt``), or the ``.pt`` file itself
    (``med_config.json`` is then looked for next to it). ``dtype``: the backbone's dtype; the MLP
    head runs in float32 (float64 when ``dtype`` is float64).
    """
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    ckpt = C.find_file(path, ["ImageReward.pt", "ImageReward.safetensors"], what="ImageReward weights", hint=_HINT)
    folder = ckpt.parent
    med = folder / "med_config.json"
    if not med.is_file():
        raise MissingWeightsError("ImageReward text-encoder config (med_config.json)", str(folder), _HINT)
    tok_dir = Path(tokenizer_path) if tokenizer_path is not None else folder
    C.require_files(tok_dir, [["vocab.txt"]], what="ImageReward tokenizer (bert-base-uncased)", hint=_HINT)

    try:
        cfg = json.loads(med.read_text())
    except json.JSONDecodeError as e:
        raise TTSVarError(f"{med} is not valid JSON: {e}") from e
    sd = C.load_state_dict(ckpt)
    v = _vit_shape(sd)
    visual = BlipVisionEncoder(v["image_size"], v["patch"], v["dim"], v["depth"], v["heads"], v["hidden"])
    try:
        text = BlipTextEncoder(cfg, enc_width=v["dim"])
    except KeyError as e:
        raise TTSVarError(f"{med} lacks the BERT setting {e.args[0]!r}.") from None
    net = ImageRewardNet(visual, text, cfg["hidden_size"])
    C.load_strict(net, sd, source=str(ckpt), ignore=_IGNORED_KEYS)
    net.to(device=device, dtype=dtype)
    net.mlp.to(dtype=C.head_dtype(dtype))
    return ImageRewardScorer(net, _load_bert_tokenizer(tok_dir), device=device, dtype=dtype)
