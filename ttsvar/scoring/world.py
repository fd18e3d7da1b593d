"""The synthetic world's verifiers: a small CLIP trained here (``python -m ttsvar.world
train verifiers``), playing the roles ImageReward and DINOv2 play in the paper.

The model is a ``transformers.CLIPModel`` with tiny towers: a ViT on 64×64 images and a text
transformer over a word-level tokenizer of the world's vocabulary (``tokenizer.json``, built with
the ``tokenizers`` library). Its folder holds ``config.json``, ``model.safetensors``,
``tokenizer.json``, ``preprocessor_config.json`` (image mean/std) and ``calibration.json``. The
package ships two, and an empty path means them: ``ttsvar/world/weights/verifier``
(:data:`DEFAULT_DIR`, trained contrastively on renders: the features) and
``ttsvar/world/weights/reward`` (:data:`REWARD_DIR`, the same model then tuned on the world
generator's own candidates as ImageReward was on generated images, ``ttsvar.world.tune_reward``:
the reward).

* ``world-reward`` — image/prompt agreement, an imperfect learned proxy of the world's checker:
  ``(cos(image, text) − mean) / std``, with mean/std from ``calibration.json`` (measured on
  generator-like images, see ``ttsvar.world.train_verifiers.calibrate``): scores are standardised
  as ImageReward's are, so the paper's λ=10 weighs them as it weighs ImageReward's.
* ``world-features`` — the image tower's final patch tokens (after its post layer norm, as
  DINOv2's ``x_norm_patchtokens``), per image reduced by PCA to the first component (``pca``,
  one value per patch: an 8×8 map) as the paper does with DINOv2, or averaged (``pool``).

Images are resized (bicubic, antialias) to the model's side without cropping, as the DINOv2
convention of TTS-VAR; the world draws square images, so nothing is lost.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch

from ttsvar.errors import TTSVarError
from ttsvar.scoring import _common as C

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "world" / "weights" / "verifier"
REWARD_DIR = DEFAULT_DIR.parent / "reward"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "calibration.json")
HINT_WORLD = (f"The world's verifier folder ships with the package ({DEFAULT_DIR}); make a new one with "
              "`python -m ttsvar.world train verifiers --out DIR`.")
MODES = ("pca", "pool")


# ---------------------------------------------------------------- the towers (shared with training)

def image_tower(model, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image embeddings ``[B, P]`` (not normalised) and final patch tokens ``[B, N, D]``."""
    vision = model.vision_model
    hidden = vision(pixel_values=pixels).last_hidden_state
    normed = vision.post_layernorm(hidden)
    return model.visual_projection(normed[:, 0]), normed[:, 1:]


def text_tower(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Text embeddings ``[B, P]`` (not normalised), pooled at the end-of-text token. The text
    transformer is causal, so the padding after that token never changes the result."""
    pooled = model.text_model(input_ids=input_ids).pooler_output
    return model.text_projection(pooled)


def tokenize(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Token ids ``[B, context]`` (the tokenizer pads and truncates to the model's context)."""
    return torch.tensor([e.ids for e in tokenizer.encode_batch(list(texts))], dtype=torch.long)


# ---------------------------------------------------------------- scorers

class _WorldModel(C.ModuleBacked):
    _weight_attrs = ("model",)

    def __init__(self, model, image_mean, image_std, *, device: torch.device, dtype: torch.dtype):
        self.model = model.eval().requires_grad_(False)
        self.input_size = model.config.vision_config.image_size
        self.mean, self.std = tuple(image_mean), tuple(image_std)
        self.device, self.dtype = device, dtype

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return C.square_preprocess(images, size=self.input_size, mean=self.mean, std=self.std, device=self.device,
                                   dtype=self.dtype)


class WorldReward(_WorldModel):
    """``score(images, prompts)`` → calibrated agreement, float32 ``[B]`` on the CPU."""

    name = "world-reward"

    def __init__(self, model, tokenizer, image_mean, image_std, calibration: dict, *, device: torch.device,
                 dtype: torch.dtype, cache_size: int = 256):
        super().__init__(model, image_mean, image_std, device=device, dtype=dtype)
        self.tokenizer = tokenizer
        self.offset, self.scale = float(calibration["mean"]), float(calibration["std"])
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    @torch.inference_mode()
    def text_embeds(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings in the head dtype on the model's device (cached per prompt)."""
        rows = {p: self._cache[p] for p in dict.fromkeys(prompts) if p in self._cache}
        todo = [p for p in dict.fromkeys(prompts) if p not in rows]
        if todo:
            e = text_tower(self.model, tokenize(self.tokenizer, todo).to(self.device))
            rows.update(zip(todo, torch.nn.functional.normalize(e.to(C.head_dtype(self.dtype)), dim=-1)))
        for p in rows:  # most recently used last; a call with more prompts than the cache keeps its last ones
            self._cache[p] = rows[p]
            self._cache.move_to_end(p)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return torch.stack([rows[p] for p in prompts]).to(device=self.device, dtype=C.head_dtype(self.dtype))

    @torch.inference_mode()
    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        e, _ = image_tower(self.model, self.preprocess(images))
        return torch.nn.functional.normalize(e.to(C.head_dtype(self.dtype)), dim=-1)

    @torch.inference_mode()
    def cosine(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """The uncalibrated score: cosine similarity of the two embeddings."""
        C.check_images(images, len(prompts))
        return (self.image_embeds(images) * self.text_embeds(prompts)).sum(-1)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return C.to_output((self.cosine(images, prompts) - self.offset) / self.scale)


class WorldFeatures(_WorldModel):
    """``features(images)`` → float32 ``[B, N]`` (pca, N patches) or ``[B, D]`` (pool) on the CPU."""

    def __init__(self, model, image_mean, image_std, *, mode: str, device: torch.device, dtype: torch.dtype):
        _check_mode(mode)
        super().__init__(model, image_mean, image_std, device=device, dtype=dtype)
        self.mode = mode
        self.name = f"world-features-{mode}"

    @torch.inference_mode()
    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        _, tokens = image_tower(self.model, self.preprocess(images))
        return tokens.to(C.head_dtype(self.dtype))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        from ttsvar.scoring.dinov2 import pca_first_component

        tokens = self.patch_tokens(images)
        return C.to_output(pca_first_component(tokens) if self.mode == "pca" else tokens.mean(dim=1))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise TTSVarError(f"Unknown world feature mode {mode!r}; choose one of {', '.join(MODES)}.")


# ---------------------------------------------------------------- loading

def resolve_folder(path: str | os.PathLike | None, default: Path = DEFAULT_DIR) -> Path:
    """The verifier folder, checked to hold every file (None or "" → the shipped `default`)."""
    folder = default if path is None or str(path) == "" else Path(os.path.expanduser(str(path)))
    return C.require_files(folder, [[f] for f in FILES], what="world verifier files", hint=HINT_WORLD)


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise TTSVarError(f"Could not read {file}: {e}. {HINT_WORLD}") from e
    if not isinstance(data, dict):
        raise TTSVarError(f"{file} is not a JSON object. {HINT_WORLD}")
    return data


def load_model(folder: Path):
    """The CLIPModel of a verifier folder (float32, CPU), loaded strictly and quietly: every weight
    required with its shape (``ttsvar.hf_folder``)."""
    from transformers import CLIPModel

    from ttsvar.hf_folder import load_pretrained

    config = _read_json(folder / "config.json")
    if config.get("model_type") != "clip":
        raise TTSVarError(f"{folder / 'config.json'} describes a {config.get('model_type')!r} model, not the world's "
                          f"CLIP verifier. {HINT_WORLD}")
    return load_pretrained(CLIPModel, folder, what="the world's verifier", repo="", dtype=torch.float32,
                           remedy=HINT_WORLD)


def load_tokenizer(folder: Path, context: int):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as e:  # the tokenizers library raises its own Exception types
        raise TTSVarError(f"Could not read {folder / 'tokenizer.json'}: {e}. {HINT_WORLD}") from e
    padding, truncation = tokenizer.padding, tokenizer.truncation
    if not padding or padding.get("length") != context or not truncation or truncation.get("max_length") != context:
        raise TTSVarError(f"{folder / 'tokenizer.json'} must pad and truncate to the model's context ({context} "
                          f"tokens). {HINT_WORLD}")
    return tokenizer


def _load_common(path, device, dtype, default: Path = DEFAULT_DIR):
    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    folder = resolve_folder(path, default)
    model = load_model(folder).to(device=device, dtype=dtype)
    proc = _read_json(folder / "preprocessor_config.json")
    mean, std = proc.get("image_mean"), proc.get("image_std")
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
        raise TTSVarError(f"{folder / 'preprocessor_config.json'} needs image_mean and image_std (3 values each). "
                          f"{HINT_WORLD}")
    return folder, model, mean, std, device, dtype


def load_world_reward(path: str | os.PathLike | None = None, *, device: torch.device | str | None = "cpu",
                      dtype: torch.dtype | str | None = torch.float32) -> WorldReward:
    """The world's reward model from a verifier folder (None or "" → the shipped :data:`REWARD_DIR`)."""
    folder, model, mean, std, device, dtype = _load_common(path, device, dtype, REWARD_DIR)
    tokenizer = load_tokenizer(folder, model.config.text_config.max_position_embeddings)
    calibration = _read_json(folder / "calibration.json")
    if not all(isinstance(calibration.get(k), (int, float)) for k in ("mean", "std")) or calibration["std"] <= 0:
        raise TTSVarError(f"{folder / 'calibration.json'} needs numbers 'mean' and 'std' > 0. {HINT_WORLD}")
    return WorldReward(model, tokenizer, mean, std, calibration, device=device, dtype=dtype)


def load_world_features(path: str | os.PathLike | None = None, *, mode: str = "pca",
                        device: torch.device | str | None = "cpu",
                        dtype: torch.dtype | str | None = torch.float32) -> WorldFeatures:
    """The world's feature extractor (``mode`` "pca" or "pool") from a verifier folder."""
    _check_mode(mode)
    _, model, mean, std, device, dtype = _load_common(path, device, dtype)
    return WorldFeatures(model, mean, std, mode=mode, device=device, dtype=dtype)
