"""CLIP-family verifiers on ``transformers.CLIPModel``: CLIP score, PickScore, HPSv2.1, the LAION
aesthetic predictor and CLIP image features.

All of them preprocess like ``CLIPImageProcessor``/open_clip's validation transform: shortest
edge → image size (bicubic, antialias), center crop, CLIP mean/std — read from the folder's
``preprocessor_config.json`` when there is one. Text goes through a ``CLIPTokenizer`` read from a
local folder (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``), padded to the text
model's context (77) and truncated. Text embeddings are cached per prompt (the search scores the
same prompt again and again).

Scores:

* ``clip``      — ``100 · cos(image, text)`` (CLIP-Score as in torchmetrics, without its clamp at 0).
* ``pickscore`` — ``exp(logit_scale) · cos(image, text)`` (the PickScore_v1 reference code).
* ``hpsv2``     — ``cos(image, text)``: HPSv2's ``score()`` takes the diagonal of
  ``image_features @ text_features.T`` with both L2-normalised and no logit scale, so HPSv2.1
  scores are ≈0.2–0.35.
* ``aesthetic`` — the LAION improved-aesthetic-predictor MLP on the L2-normalised CLIP ViT-L/14
  image embedding (a 1–10 scale).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from ttsvar.errors import TTSVarError
from ttsvar.hf_folder import load_pretrained, quiet_transformers
from ttsvar.scoring import _common as C

_HF_WEIGHTS = ["model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json",
               "open_clip_pytorch_model.bin"]
_TOKENIZER_FILES = [["tokenizer.json", "vocab.json"]]

HINT_CLIP = ("Download a Hugging Face CLIP folder (config.json, model.safetensors, preprocessor_config.json, "
             "tokenizer files), e.g. openai/clip-vit-large-patch14.")
HINT_PICKSCORE = ("Download yuvalkirstain/PickScore_v1 (config.json, model.safetensors); its tokenizer and "
                  "preprocessor files come from laion/CLIP-ViT-H-14-laion2B-s32B-b79K (put them in the same folder "
                  "or pass processor_path).")
HINT_HPS = ("Download HPS_v2.1_compressed.pt from the Hugging Face repo xswu/HPSv2, and the tokenizer files "
            "(vocab.json, merges.txt or tokenizer.json) from laion/CLIP-ViT-H-14-laion2B-s32B-b79K into the same "
            "folder (or pass tokenizer_path).")
HINT_AESTHETIC = ("Download sac+logos+ava1-l14-linearMSE.pth from christophschuhmann/improved-aesthetic-predictor "
                  "(GitHub; also mirrored on Hugging Face) and the CLIP folder openai/clip-vit-large-patch14 "
                  "(pass it as clip_path, or put the .pth inside the CLIP folder).")
AESTHETIC_FILE = "sac+logos+ava1-l14-linearMSE.pth"
CLIP_REPO = "openai/clip-vit-large-patch14"
PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
HPS_FILES = ["HPS_v2.1_compressed.pt", "HPS_v2_compressed.pt"]


# ---------------------------------------------------------------- loading helpers

def _check_hf_folder(path, hint: str, what: str) -> Path:
    return C.require_files(path, [["config.json"], _HF_WEIGHTS], what=what, hint=hint)


def load_clip_tokenizer(folder: str | os.PathLike, *, hint: str = HINT_CLIP):
    """A CLIP BPE tokenizer from local files (``tokenizer.json`` or ``vocab.json`` + ``merges.txt``)."""
    folder = Path(folder)
    C.require_files(folder, _TOKENIZER_FILES, what="CLIP tokenizer", hint=hint)
    if not (folder / "tokenizer.json").is_file():
        C.require_files(folder, [["merges.txt"]], what="CLIP tokenizer", hint=hint)
    from transformers import CLIPTokenizer

    try:
        with quiet_transformers():
            return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TTSVarError(f"Could not read the CLIP tokenizer in {folder}: {e}") from e


def read_image_processing(folder: Path | None, default_size: int) -> dict:
    """``resize_to``, ``crop``, ``mean``, ``std`` from ``preprocessor_config.json`` (CLIP defaults
    otherwise)."""
    out = dict(resize_to=default_size, crop=default_size, mean=C.CLIP_MEAN, std=C.CLIP_STD)
    f = folder / "preprocessor_config.json" if folder is not None else None
    if f is None or not f.is_file():
        return out
    cfg = json.loads(f.read_text())
    size = cfg.get("size")
    if isinstance(size, dict):
        size = size.get("shortest_edge", size.get("height"))
    crop = cfg.get("crop_size")
    if isinstance(crop, dict):
        crop = crop.get("height")
    if size:
        out["resize_to"] = int(size)
    out["crop"] = int(crop) if crop and cfg.get("do_center_crop", True) else out["resize_to"]
    out["mean"] = tuple(cfg.get("image_mean", out["mean"]))
    out["std"] = tuple(cfg.get("image_std", out["std"]))
    return out


# ---------------------------------------------------------------- scorers

class ClipSimilarityReward(C.ModuleBacked):
    """``scale · cos(image_embeds, text_embeds)`` with a CLIPModel: CLIP score, PickScore, HPSv2."""

    _weight_attrs = ("model",)

    def __init__(self, model, tokenizer, *, name: str, scale: float | None, proc: dict, device: torch.device,
                 dtype: torch.dtype, crop_rounding: str = "floor", cache_size: int = 64):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.scale = scale  # None → the model's exp(logit_scale)
        self.proc = proc
        self.input_size = proc["crop"]
        self.device, self.dtype = device, dtype
        self.crop_rounding = crop_rounding
        self.context = model.config.text_config.max_position_embeddings
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        p = self.proc
        return C.clip_style_preprocess(images, resize_to=p["resize_to"], crop=p["crop"], mean=p["mean"], std=p["std"],
                                       device=self.device, dtype=self.dtype, rounding=self.crop_rounding)

    def _logit_scale(self) -> float:
        return float(self.model.logit_scale.float().exp()) if self.scale is None else self.scale

    @torch.inference_mode()
    def text_embeds(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[B, D]`` in float32 (float64) on the model's device."""
        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if todo:
            t = self.tokenizer(todo, padding="max_length", truncation=True, max_length=self.context,
                               return_tensors="pt")
            e = self.model.get_text_features(input_ids=t["input_ids"].to(self.device),
                                             attention_mask=t["attention_mask"].to(self.device))
            e = _as_tensor(e, "text_embeds")
            e = torch.nn.functional.normalize(e.to(C.head_dtype(self.dtype)), dim=-1)
            for p, row in zip(todo, e):
                self._cache[p] = row
                self._cache.move_to_end(p)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        # cached rows may predate a move of the model to another device/dtype
        return torch.stack([self._cache[p] for p in prompts]).to(device=self.device, dtype=C.head_dtype(self.dtype))

    @torch.inference_mode()
    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        e = _as_tensor(self.model.get_image_features(pixel_values=self.preprocess(images)), "image_embeds")
        return torch.nn.functional.normalize(e.to(C.head_dtype(self.dtype)), dim=-1)

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        C.check_images(images, len(prompts))
        cos = (self.image_embeds(images) * self.text_embeds(prompts)).sum(-1)
        return C.to_output(self._logit_scale() * cos)


def _as_tensor(out, field: str) -> torch.Tensor:
    """transformers 5 returns a ModelOutput from get_*_features in some versions, a tensor in others."""
    if isinstance(out, torch.Tensor):
        return out
    for k in (field, "pooler_output"):
        v = getattr(out, k, None)
        if isinstance(v, torch.Tensor):
            return v
    raise TTSVarError(f"Unexpected output of the CLIP model: {type(out).__name__}")


class AestheticMlp(nn.Module):
    """The LAION improved-aesthetic-predictor head; keys ``layers.{0,2,4,6,7}``."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                    nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x):
        return self.layers(x)


class AestheticReward(C.ModuleBacked):
    """LAION aesthetic score (the prompt is ignored)."""

    name = "aesthetic"
    _weight_attrs = ("vision", "head")

    def __init__(self, vision, head: AestheticMlp, proc: dict, *, device: torch.device, dtype: torch.dtype):
        self.vision = vision.eval().requires_grad_(False)
        self.head = head.eval().requires_grad_(False)
        self.proc, self.input_size = proc, proc["crop"]
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        C.check_images(images, None if prompts is None else len(prompts))
        p = self.proc
        x = C.clip_style_preprocess(images, resize_to=p["resize_to"], crop=p["crop"], mean=p["mean"], std=p["std"],
                                    device=self.device, dtype=self.dtype, rounding="round")
        e = self.vision(pixel_values=x).image_embeds.to(C.head_dtype(self.dtype))
        e = torch.nn.functional.normalize(e, dim=-1)
        return C.to_output(self.head(e)[:, 0])


class ClipImageFeatures(C.ModuleBacked):
    """L2-normalised CLIP ``image_embeds`` ``[B, D]`` (a :class:`FeatureExtractor`)."""

    name = "clip-features"
    _weight_attrs = ("vision",)

    def __init__(self, vision, proc: dict, *, device: torch.device, dtype: torch.dtype):
        self.vision = vision.eval().requires_grad_(False)
        self.proc, self.input_size = proc, proc["crop"]
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        p = self.proc
        x = C.clip_style_preprocess(images, resize_to=p["resize_to"], crop=p["crop"], mean=p["mean"], std=p["std"],
                                    device=self.device, dtype=self.dtype, rounding="floor")
        e = self.vision(pixel_values=x).image_embeds.to(C.head_dtype(self.dtype))
        return C.to_output(torch.nn.functional.normalize(e, dim=-1))


# ---------------------------------------------------------------- loaders

# what a vision-only load leaves unused in a full CLIP folder
_TEXT_TOWER = ("text_model.", "text_projection.", "logit_scale")


def _load_clip_model(folder: Path, dtype: torch.dtype, device: torch.device, what: str, repo: str):
    from transformers import CLIPModel

    return load_pretrained(CLIPModel, folder, what=what, repo=repo, dtype=dtype).to(device)


def _load_vision(folder: Path, dtype: torch.dtype, device: torch.device, what: str, repo: str):
    """Only the vision tower (+ projection) of a CLIP folder; its text tower is left unread. The
    projection width lives in the top-level CLIPConfig, not always in its vision_config, so the
    config is built here."""
    from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

    kind = json.loads((folder / "config.json").read_text()).get("model_type")
    with quiet_transformers():
        if kind == "clip":
            full = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
            vcfg = full.vision_config
            vcfg.projection_dim = full.projection_dim
        else:
            vcfg = CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    model = load_pretrained(CLIPVisionModelWithProjection, folder, what=what, repo=repo, dtype=dtype, config=vcfg,
                            harmless=_TEXT_TOWER)
    return model.to(device)


def load_clip_score(path: str | os.PathLike, *, device: torch.device | str | None = "cpu",
                    dtype: torch.dtype | str | None = torch.float32) -> ClipSimilarityReward:
    """CLIP score ``100·cos`` from a Hugging Face CLIP folder (model, tokenizer and preprocessor)."""
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    folder = _check_hf_folder(path, HINT_CLIP, "CLIP model files")
    tok = load_clip_tokenizer(folder, hint=HINT_CLIP)
    model = _load_clip_model(folder, dtype, device, "CLIP", CLIP_REPO)
    proc = read_image_processing(folder, model.config.vision_config.image_size)
    return ClipSimilarityReward(model, tok, name="clip", scale=100.0, proc=proc, device=device, dtype=dtype)


def load_pickscore(path: str | os.PathLike, *, processor_path: str | os.PathLike | None = None,
                   device: torch.device | str | None = "cpu",
                   dtype: torch.dtype | str | None = torch.float32) -> ClipSimilarityReward:
    """PickScore (``exp(logit_scale)·cos``) from the PickScore_v1 folder; tokenizer and
    preprocessor from ``processor_path`` (the CLIP-ViT-H-14 folder) or the same folder."""
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    folder = _check_hf_folder(path, HINT_PICKSCORE, "PickScore model files")
    proc_dir = Path(processor_path) if processor_path is not None else folder
    tok = load_clip_tokenizer(proc_dir, hint=HINT_PICKSCORE)
    model = _load_clip_model(folder, dtype, device, "PickScore", PICKSCORE_REPO)
    proc = read_image_processing(proc_dir, model.config.vision_config.image_size)
    return ClipSimilarityReward(model, tok, name="pickscore", scale=None, proc=proc, device=device, dtype=dtype)


def load_clip_features(path: str | os.PathLike, *, device: torch.device | str | None = "cpu",
                       dtype: torch.dtype | str | None = torch.float32) -> ClipImageFeatures:
    """CLIP image features (L2-normalised ``image_embeds``) from a Hugging Face CLIP folder; only
    the vision tower is loaded."""
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    folder = _check_hf_folder(path, HINT_CLIP, "CLIP model files")
    vision = _load_vision(folder, dtype, device, "the CLIP vision tower", CLIP_REPO)
    proc = read_image_processing(folder, vision.config.image_size)
    return ClipImageFeatures(vision, proc, device=device, dtype=dtype)


def load_aesthetic(path: str | os.PathLike, *, clip_path: str | os.PathLike | None = None,
                   device: torch.device | str | None = "cpu",
                   dtype: torch.dtype | str | None = torch.float32) -> AestheticReward:
    """LAION aesthetic predictor: ``path`` is ``sac+logos+ava1-l14-linearMSE.pth`` or a folder
    holding it; ``clip_path`` the CLIP ViT-L/14 folder (default: the folder of the head file)."""
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    head_file = C.find_file(path, [AESTHETIC_FILE, "aesthetic.pth", "aesthetic.safetensors"],
                            what="aesthetic predictor head", hint=HINT_AESTHETIC)
    clip_dir = Path(clip_path) if clip_path is not None else head_file.parent
    _check_hf_folder(clip_dir, HINT_AESTHETIC, "CLIP ViT-L/14 files for the aesthetic predictor")
    sd = C.load_state_dict(head_file)
    dim = sd["layers.0.weight"].shape[1] if "layers.0.weight" in sd else 768
    head = AestheticMlp(dim)
    C.load_strict(head, sd, source=str(head_file))
    vision = _load_vision(clip_dir, dtype, device, "the CLIP vision tower", CLIP_REPO)
    if vision.config.projection_dim != dim:
        raise TTSVarError(f"The aesthetic head expects {dim}-d CLIP embeddings but {clip_dir} gives "
                          f"{vision.config.projection_dim}-d ones; use CLIP ViT-L/14 (openai/clip-vit-large-patch14).")
    head.to(device=device, dtype=C.head_dtype(dtype))
    proc = read_image_processing(clip_dir, vision.config.image_size)
    return AestheticReward(vision, head, proc, device=device, dtype=dtype)


# ---------------------------------------------------------------- HPSv2: open_clip checkpoint → CLIPModel

def hpsv2_clip_config():
    """The transformers ``CLIPConfig`` of open_clip's ViT-H-14 (what HPSv2/HPSv2.1 fine-tune)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         max_position_embeddings=77, vocab_size=49408, hidden_act="gelu", layer_norm_eps=1e-5,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=0, projection_dim=1024),
        vision_config=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=1024),
        projection_dim=1024,
    )


def _convert_block(sd: dict, src: str, dst: str, out: dict) -> None:
    w = sd.pop(f"{src}attn.in_proj_weight")
    b = sd.pop(f"{src}attn.in_proj_bias")
    for name, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3, 0), b.chunk(3, 0)):
        out[f"{dst}self_attn.{name}.weight"] = wi
        out[f"{dst}self_attn.{name}.bias"] = bi
    pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for a, bname in pairs.items():
        for p in ("weight", "bias"):
            out[f"{dst}{bname}.{p}"] = sd.pop(f"{src}{a}.{p}")


def openclip_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an open_clip ``CLIP`` (standard text tower) state dict to ``transformers.CLIPModel``
    keys. Keys it does not know are kept as they are, so a strict load reports them."""
    sd = dict(sd)
    out: dict[str, torch.Tensor] = {}
    try:
        # vision tower
        out["vision_model.embeddings.class_embedding"] = sd.pop("visual.class_embedding")
        out["vision_model.embeddings.patch_embedding.weight"] = sd.pop("visual.conv1.weight")
        out["vision_model.embeddings.position_embedding.weight"] = sd.pop("visual.positional_embedding")
        for a, b in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                     ("ln_final", "text_model.final_layer_norm")):
            for p in ("weight", "bias"):
                out[f"{b}.{p}"] = sd.pop(f"{a}.{p}")
        out["visual_projection.weight"] = sd.pop("visual.proj").t().contiguous()
        # text tower
        out["text_model.embeddings.token_embedding.weight"] = sd.pop("token_embedding.weight")
        out["text_model.embeddings.position_embedding.weight"] = sd.pop("positional_embedding")
        out["text_projection.weight"] = sd.pop("text_projection").t().contiguous()
        out["logit_scale"] = sd.pop("logit_scale")
    except KeyError as e:
        raise TTSVarError(f"Not an open_clip CLIP checkpoint: no {e.args[0]}.") from None
    for prefix, dst in (("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                        ("transformer.resblocks.", "text_model.encoder.layers.")):
        idx = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})
        for i in idx:
            _convert_block(sd, f"{prefix}{i}.", f"{dst}{i}.", out)
    sd.pop("attn_mask", None)  # a buffer in older open_clip versions
    out.update(sd)  # leftovers: reported as unexpected by the strict load
    return out


def load_hpsv2(path: str | os.PathLike, *, tokenizer_path: str | os.PathLike | None = None, config=None,
               device: torch.device | str | None = "cpu",
               dtype: torch.dtype | str | None = torch.float32) -> ClipSimilarityReward:
    """HPSv2.1 (or v2.0) from the official open_clip checkpoint, converted to a CLIPModel.

    ``path``: ``HPS_v2.1_compressed.pt`` or a folder holding it (and, unless ``tokenizer_path`` is
    given, the CLIP tokenizer files of laion/CLIP-ViT-H-14-laion2B-s32B-b79K). ``config``: a
    ``CLIPConfig`` for other sizes; default :func:`hpsv2_clip_config` (ViT-H-14). Preprocessing is
    open_clip's: shortest edge 224 bicubic, center crop (torchvision rounding), CLIP mean/std.
    Score = cosine similarity (no ×100, no logit scale), as ``hpsv2.score``.
    """
    from transformers import CLIPModel

    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    ckpt = C.find_file(path, HPS_FILES, what="HPSv2 weights", hint=HINT_HPS)
    tok = load_clip_tokenizer(Path(tokenizer_path) if tokenizer_path is not None else ckpt.parent, hint=HINT_HPS)
    config = config if config is not None else hpsv2_clip_config()
    text_cfg = config.text_config
    if tok.eos_token_id is not None and tok.eos_token_id != text_cfg.eos_token_id:
        raise TTSVarError(f"The tokenizer's end-of-text id ({tok.eos_token_id}) differs from the model's "
                          f"({text_cfg.eos_token_id}); use the CLIP-ViT-H-14 tokenizer files.")
    sd = openclip_to_hf(C.load_state_dict(ckpt))
    with torch.device("meta"):
        model = CLIPModel(config)
    model.to_empty(device="cpu")
    _fill_non_persistent_buffers(model)
    C.load_strict(model, sd, source=str(ckpt))
    model.to(device=device, dtype=dtype)
    size = config.vision_config.image_size
    proc = dict(resize_to=size, crop=size, mean=C.CLIP_MEAN, std=C.CLIP_STD)
    return ClipSimilarityReward(model, tok, name="hpsv2", scale=1.0, proc=proc, device=device, dtype=dtype,
                                crop_rounding="round")


def _fill_non_persistent_buffers(model: nn.Module) -> None:
    """``position_ids`` buffers are not in state dicts; after ``to_empty`` they must be refilled."""
    for name, buf in model.named_buffers():
        if name.endswith("position_ids"):
            buf.copy_(torch.arange(buf.shape[-1]).expand_as(buf))
