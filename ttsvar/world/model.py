"""The world's trained model as everyone gets it: the committed weights, through the ordinary loaders.

`ttsvar/world/weights/` holds an Infinity checkpoint in the official layout (``transformer.safetensors``,
``vae.safetensors``, bf16) and a Hugging Face text-encoder folder (``text_encoder/``); this module
opens them with `load_infinity` and `load_text_encoder`, exactly as a user's own Infinity
files are opened, so the demo and the loaders' demo entries exercise the real code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MissingWeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TRANSFORMER_FILE = "transformer.safetensors"
VAE_FILE = "vae.safetensors"
TEXT_ENCODER_FOLDER = "text_encoder"
PN = "0.06M"
"""The world's resolution preset: 64×64 images on 7 scales (1…16 tokens per side)."""
RETRAIN_HINT = (
    "They ship with the package (a fresh clone has them); to make them again: "
    "python -m ttsvar.world train all --out FOLDER"
)


@dataclass
class WorldModel:
    """The world's Infinity model (transformer + VAE) and its text encoder."""

    model: object  # ttsvar.infinity.model.InfinityModel
    text_encoder: object  # ttsvar.infinity.text.T5TextEncoder


def world_weight_paths(folder: str | Path = WEIGHTS_DIR) -> tuple[Path, Path, Path]:
    """(transformer file, VAE file, text-encoder folder) of `folder`, each checked to exist."""
    folder = Path(folder)
    transformer, vae, text = folder / TRANSFORMER_FILE, folder / VAE_FILE, folder / TEXT_ENCODER_FOLDER
    for path, what in ((transformer, "the world's transformer"), (vae, "the world's VAE")):
        if not path.is_file():
            raise MissingWeightsError(f"{what} ({path.name})", str(folder), RETRAIN_HINT)
    if not (text / "config.json").is_file():
        raise MissingWeightsError(f"the world's text encoder ({TEXT_ENCODER_FOLDER}/config.json)", str(folder),
                                  RETRAIN_HINT)
    return transformer, vae, text


def load_world_infinity(folder: str | Path = WEIGHTS_DIR, *, device: torch.device | str = "cpu",
                        dtype: torch.dtype | None = None):
    """The world's Infinity model (transformer + VAE) alone, as `load_infinity` opens any checkpoint;
    `dtype` is the transformer blocks' compute dtype (default: float32 on CPU)."""
    from ..infinity.model import load_infinity

    transformer, vae, _ = world_weight_paths(folder)
    model = load_infinity(transformer, vae, device=device, dtype=dtype)
    model.name = "ttsvar-world"
    return model


def load_world_text_encoder(folder: str | Path = WEIGHTS_DIR, *, device: torch.device | str = "cpu"):
    """The world's text encoder alone, as `load_text_encoder` opens Flan-T5."""
    from ..infinity.text import load_text_encoder

    return load_text_encoder(world_weight_paths(folder)[2], device=device)


def load_world_model(folder: str | Path = WEIGHTS_DIR, *, device: torch.device | str = "cpu",
                     dtype: torch.dtype | None = None) -> WorldModel:
    """Load the committed world model (or the one in `folder`) on `device`; `dtype` as for
    :func:`load_world_infinity`."""
    return WorldModel(load_world_infinity(folder, device=device, dtype=dtype),
                      load_world_text_encoder(folder, device=device))
