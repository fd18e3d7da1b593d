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

Modules: the two BLIP towers are ``transformers.BlipVisionModel`` and ``transformers.BlipTextModel``
(a port of BLIP's ``med.py``, whose cross-attention takes ``encoder_hidden_size``-wide inputs; plain
``BertModel`` cannot hold these weights: its cross-attention K/V take ``hidden_size`` inputs and it
has token-type embeddings); only the MLP head is written here. Checkpoint keys load strictly through
an explicit map (:func:`vision_key_map` for the ViT; the text tower's names are the checkpoint's);
``blip.vision_proj``/``blip.text_proj`` (contrastive heads of BLIP, unused by ImageReward) and the
``position_ids`` buffer (non-persistent in transformers) are the only keys ignored.

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

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.hf_folder import quiet_transformers
from ttsvar.scoring import _common as C

IMAGEREWARD_MEAN = 0.16717362830052426
IMAGEREWARD_STD = 1.0333394966054072
TEXT_MAX_LENGTH = 35

_HINT = ("Download ImageReward.pt and med_config.json from the Hugging Face repo THUDM/ImageReward, and the "
         "tokenizer file vocab.txt (with tokenizer_config.json) from google-bert/bert-base-uncased, into one folder.")
_IGNORED_KEYS = ("blip.vision_proj.", "blip.text_proj.", "blip.text_encoder.embeddings.position_ids")


# ---------------------------------------------------------------- the two BLIP towers (transformers)

def BlipVisionEncoder(image_size: int, patch: int, dim: int, depth: int, heads: int,
                      hidden: int) -> nn.Module:
    """BLIP's ViT as ``transformers.BlipVisionModel``: ``pixel_values [B,3,S,S]`` →
    ``last_hidden_state [B, 1 + (S/patch)², dim]`` (CLS first; all tokens are the image embeddings).
    LayerNorm eps 1e-6 and exact GELU as timm/BLIP's ``VisionTransformer`` (transformers' defaults
    differ: eps 1e-5). (A factory named like the module it replaced; the test fixtures build nets with it.)"""
    from transformers import BlipVisionConfig, BlipVisionModel

    cfg = BlipVisionConfig(hidden_size=dim, intermediate_size=hidden, num_hidden_layers=depth,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch, hidden_act="gelu",
                           layer_norm_eps=1e-6, attention_dropout=0.0, attn_implementation="eager")
    return BlipVisionModel(cfg)


def BlipTextEncoder(cfg: dict, enc_width: int) -> nn.Module:
    """BLIP's MED BERT as ``transformers.BlipTextModel`` (no pooler) from ``med_config.json``, with
    cross-attention keys/values from ``enc_width`` (the ViT's width, as BLIP sets ``encoder_width``).

    ``is_decoder=True`` in the config only makes the layers carry their cross-attention (that is
    how ``BlipTextLayer`` decides); the forward is run with ``is_decoder=False``, i.e. bidirectional
    self-attention with the padding mask, as BLIP's ``mode="text"``/multimodal encoder."""
    from transformers import BlipTextConfig, BlipTextModel

    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "relu", "gelu_new"):
        raise TTSVarError(f"med_config.json: unsupported hidden_act {act!r}.")
    tc = BlipTextConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], encoder_hidden_size=enc_width,
                        intermediate_size=cfg["intermediate_size"], num_hidden_layers=cfg["num_hidden_layers"],
                        num_attention_heads=cfg["num_attention_heads"],
                        max_position_embeddings=cfg.get("max_position_embeddings", 512), hidden_act=act,
                        layer_norm_eps=cfg.get("layer_norm_eps", 1e-12), hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=cfg.get("pad_token_id", 0),
                        bos_token_id=None, eos_token_id=None, sep_token_id=None, is_decoder=True, use_cache=False,
                        attn_implementation="eager")
    return BlipTextModel(tc, add_pooling_layer=False)


# ---------------------------------------------------------------- official key names <-> transformers names

_VIT_BLOCK_KEYS = (("norm1", "layer_norm1"), ("attn.qkv", "self_attn.qkv"), ("attn.proj", "self_attn.projection"),
                   ("norm2", "layer_norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"))


def vision_key_map(depth: int) -> dict[str, str]:
    """``blip.visual_encoder.*`` checkpoint names → ``BlipVisionModel`` names, in checkpoint order.

    The text tower needs no map: ``BlipTextModel`` (a port of BLIP's ``med.py``) uses med.py's
    names (``embeddings.word_embeddings``, ``encoder.layer.i.attention.self.query``,
    ``….crossattention.…``, ``….intermediate.dense``, ``….output.LayerNorm``, …)."""
    m = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
         "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
         "patch_embed.proj.bias": "embeddings.patch_embedding.bias"}
    for i in range(depth):
        for ours, theirs in _VIT_BLOCK_KEYS:
            for p in ("weight", "bias"):
                m[f"blocks.{i}.{ours}.{p}"] = f"encoder.layers.{i}.{theirs}.{p}"
    m.update({"norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"})
    return m


class _Blip(nn.Module):
    def __init__(self, visual: nn.Module, text: nn.Module):
        super().__init__()
        self.visual_encoder = visual
        self.text_encoder = text


class _Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                    nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


class ImageRewardNet(nn.Module):
    """``blip.visual_encoder`` (BlipVisionModel), ``blip.text_encoder`` (BlipTextModel), ``mlp``.

    ``state_dict()`` and ``load_state_dict()`` use the official ``ImageReward.pt`` names: the ViT's
    keys are renamed by :func:`vision_key_map` both ways (every ViT tensor has an entry; a key outside
    the map is left as it is, so a strict load reports it). ``named_parameters()`` shows the
    transformers names."""

    _VIT = "blip.visual_encoder."

    def __init__(self, visual: nn.Module, text: nn.Module, text_width: int):
        super().__init__()
        self.blip = _Blip(visual, text)
        self.mlp = _Mlp(text_width)
        self._to_hf = vision_key_map(visual.config.num_hidden_layers)
        self._to_official = {v: k for k, v in self._to_hf.items()}
        self.register_state_dict_post_hook(ImageRewardNet._official_names)
        self.register_load_state_dict_pre_hook(ImageRewardNet._hf_names)

    def _official_names(self, state_dict, prefix, local_metadata):
        p = prefix + self._VIT
        vit = {k[len(p):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(p)]}
        rest = {k: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(prefix)]}
        if set(vit) != set(self._to_official):
            raise TTSVarError(f"ImageReward ViT key map out of date: {sorted(set(vit) ^ set(self._to_official))}")
        state_dict.update({p + k: vit[v] for k, v in self._to_hf.items()})  # checkpoint order
        state_dict.update(rest)

    def _hf_names(self, state_dict, prefix, *_):
        p = prefix + self._VIT
        for k in [k for k in state_dict if k.startswith(p) and k[len(p):] in self._to_hf]:
            state_dict[p + self._to_hf[k[len(p):]]] = state_dict.pop(k)

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised rewards ``[B]`` (in the MLP's dtype)."""
        image_embeds = self.blip.visual_encoder(pixel_values=pixels).last_hidden_state
        # every image token is attended (BLIP passes a mask of ones: the same as none)
        h = self.blip.text_encoder(input_ids=ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                                   is_decoder=False).last_hidden_state[:, 0]
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
        self.input_size = net.blip.visual_encoder.config.image_size
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

    with quiet_transformers():
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
