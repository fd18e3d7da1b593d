"""Random-weight Infinity models of any size, for demos, tests and benchmarks.

They run the exact code path of the real models (built, saved and re-loaded through the same
loader when asked), so everything but image quality can be checked without the 10 GB of
official weights. Their images are noise: say so wherever they are shown.
"""

from __future__ import annotations

import math

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.model import InfinityModel, default_block_dtype
from ttsvar.infinity.text import HashTextEncoder
from ttsvar.infinity.transformer import InfinityArch, InfinityTransformer

RANDOM_WEIGHTS_NOTICE = "random weights: the images are noise, this only exercises the pipeline"

PRESETS: dict[str, dict] = {
    # the shape of the official reference model in tests/data/infinity_tiny
    "tiny": dict(arch=InfinityArch(4, 128, 2, 256, 2, 32, 512), vae=dict(base_ch=24, ch_mult=(1, 1, 2, 2, 4))),
    # the 8B layout in miniature: 56-bit tokens = 2x2 cells of a 14-bit, stride-8 VAE
    "tiny-patchify": dict(arch=InfinityArch(4, 128, 2, 256, 2, 56, 512), vae=dict(base_ch=32, codebook_dim=14, ch_mult=(1, 2, 4, 4))),
    "small": dict(arch=InfinityArch(8, 512, 8, 512, 4, 32, 2048), vae=dict(base_ch=32)),
    "medium": dict(arch=InfinityArch(16, 1024, 8, 1024, 8, 32, 4096), vae=dict(base_ch=64)),
    "2b": dict(arch=InfinityArch(32, 2048, 16, 2048, 16, 32, 8192), vae=dict(base_ch=128)),
}


def _randomise(model: InfinityTransformer, seed: int) -> None:
    """Initialise like a trained model's scale (small residual gates, unit-ish norms), seeded."""
    g = torch.Generator().manual_seed(seed)
    c = model.arch.embed_dim
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale_mul_1H11"):
                p.fill_(math.log(4.0))
            elif name.endswith(("norm.weight", "text_norm.weight")):
                p.fill_(1.0)
            elif name.endswith("ada_gss"):
                p.copy_(torch.randn(p.shape, generator=g) / c**0.5)
            elif p.ndim >= 2 or name.endswith(("pos_start", "mat_q")):
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def random_model(
    preset: str = "tiny", *, seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> InfinityModel:
    """A random-weight model of a named size (see `PRESETS`), deterministic for a seed."""
    from ttsvar.infinity.vae import random_bsq_vae

    if preset not in PRESETS:
        raise TTSVarError(f"random model size must be one of {', '.join(PRESETS)}, got '{preset}'.")
    spec = PRESETS[preset]
    transformer = InfinityTransformer(spec["arch"])
    _randomise(transformer, seed)
    transformer = transformer.to(device).eval().requires_grad_(False)
    transformer.blocks.to(dtype or default_block_dtype(device))
    vae_spec = {"codebook_dim": spec["arch"].token_bits, **spec["vae"]}
    vae = random_bsq_vae(seed, with_encoder=False, **vae_spec).to(device)
    return InfinityModel(transformer, vae, name=f"random-{preset}")


def tiny_random_model(seed: int = 0) -> InfinityModel:
    return random_model("tiny", seed=seed)


def tiny_text_encoder(model: InfinityModel, seed: int = 0) -> HashTextEncoder:
    """A word-hash text encoder whose width fits `model` (stands in for Flan-T5-XL)."""
    return HashTextEncoder(model.text_channels, seed=seed)
