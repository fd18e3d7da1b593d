"""Family name → loader, for UIs that list what can be loaded (the ComfyUI loader nodes).

Importing this module imports no torch or transformers: each entry resolves its loader on call.
Every loader takes the local path as first argument and ``device=``/``dtype=`` keywords.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoaderSpec:
    name: str
    kind: str  # "reward" or "features"
    target: str  # "module:function" inside ttsvar.scoring
    files: str  # what the path must hold, for help texts
    sources: tuple[str, ...]  # where users get the files (Hugging Face repo names)
    options: tuple[str, ...] = field(default=())  # extra keyword arguments of the loader

    @property
    def load(self):
        module, func = self.target.split(":")
        return getattr(importlib.import_module(f"ttsvar.scoring.{module}"), func)

    def __call__(self, path, **kwargs):
        return self.load(path, **kwargs)


_WORLD_FILES = ("the synthetic world's verifier folder (config.json, model.safetensors, tokenizer.json, "
                "preprocessor_config.json, calibration.json); an empty path means the one shipped with the package")
_WORLD_SOURCE = ("ttsvar/world/weights/verifier (in this package; retrain: python -m ttsvar.world train verifiers)",)

LOADERS: dict[str, LoaderSpec] = {s.name: s for s in (
    LoaderSpec("imagereward", "reward", "imagereward:load_imagereward",
               "folder with ImageReward.pt, med_config.json and bert-base-uncased vocab.txt",
               ("THUDM/ImageReward", "google-bert/bert-base-uncased"), ("tokenizer_path",)),
    LoaderSpec("hpsv2", "reward", "clip:load_hpsv2",
               "HPS_v2.1_compressed.pt, with the CLIP-ViT-H-14 tokenizer files (vocab.json, merges.txt)",
               ("xswu/HPSv2", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"), ("tokenizer_path", "config")),
    LoaderSpec("clip", "reward", "clip:load_clip_score",
               "Hugging Face CLIP folder (config.json, model.safetensors, tokenizer, preprocessor_config.json)",
               ("openai/clip-vit-large-patch14",)),
    LoaderSpec("aesthetic", "reward", "clip:load_aesthetic",
               "sac+logos+ava1-l14-linearMSE.pth, with a CLIP ViT-L/14 folder",
               ("christophschuhmann/improved-aesthetic-predictor", "openai/clip-vit-large-patch14"), ("clip_path",)),
    LoaderSpec("pickscore", "reward", "clip:load_pickscore",
               "PickScore_v1 folder, with the CLIP-ViT-H-14 tokenizer and preprocessor files",
               ("yuvalkirstain/PickScore_v1", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"), ("processor_path",)),
    LoaderSpec("dinov2", "features", "dinov2:load_dinov2",
               "Hugging Face DINOv2 folder (config.json, model.safetensors)",
               ("facebook/dinov2-with-registers-large", "facebook/dinov2-large"), ("mode", "image_size")),
    LoaderSpec("clip-features", "features", "clip:load_clip_features",
               "Hugging Face CLIP folder (config.json, model.safetensors, preprocessor_config.json)",
               ("openai/clip-vit-large-patch14",)),
    LoaderSpec("world-reward", "reward", "world:load_world_reward", _WORLD_FILES, _WORLD_SOURCE),
    LoaderSpec("world-features", "features", "world:load_world_features", _WORLD_FILES, _WORLD_SOURCE, ("mode",)),
)}


def load(name: str, path, **kwargs):
    """``LOADERS[name](path, **kwargs)`` with a clear error for an unknown name."""
    from ttsvar.errors import TTSVarError

    if name not in LOADERS:
        raise TTSVarError(f"Unknown scoring model family {name!r}; known: {', '.join(LOADERS)}.")
    return LOADERS[name](path, **kwargs)
