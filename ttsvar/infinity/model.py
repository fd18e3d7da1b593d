"""An Infinity model as users handle it: transformer + BSQ VAE, checked to belong together."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.grids import ScaleGrid, resolve_grid
from ttsvar.infinity.transformer import InfinityTransformer


class InfinityModel:
    def __init__(self, transformer: InfinityTransformer, vae, *, name: str | None = None):
        bits, d = transformer.arch.token_bits, vae.codebook_dim
        if bits not in (d, 4 * d):
            raise TTSVarError(
                f"the transformer predicts {bits}-bit tokens but the VAE has {d}-bit codes: they do not belong "
                "together (Infinity-2B uses infinity_vae_d32reg.pth, Infinity-8B infinity_vae_d56_f8_14_patchify.pth)."
            )
        self.transformer, self.vae = transformer, vae
        self.patchify = bits == 4 * d  # 8B: each token packs a 2x2 cell of VAE codes
        self.name = name or transformer.arch.name

    @property
    def device(self) -> torch.device:
        return self.transformer.pos_start.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.block_dtype

    def torch_modules(self) -> list[torch.nn.Module]:
        """The modules holding all the weights (a host moves these to change the device)."""
        return [self.transformer, self.vae]

    @property
    def text_channels(self) -> int:
        return self.transformer.arch.text_channels

    def latent_size(self, grid: ScaleGrid) -> tuple[int, int]:
        """The VAE latent grid of the final scale (twice the token grid with spatial patchify)."""
        h, w = grid.final_grid
        return (2 * h, 2 * w) if self.patchify else (h, w)

    def pixel_size(self, grid: ScaleGrid) -> tuple[int, int]:
        h, w = self.latent_size(grid)
        return h * self.vae.stride, w * self.vae.stride

    def num_scales(self, pn: str = "1M") -> int:
        return resolve_grid(pn=pn).num_scales

    def to(self, device: torch.device | str) -> "InfinityModel":
        self.transformer.to(device)
        self.vae.to(device)
        return self

    def describe(self) -> str:
        params = sum(p.numel() for p in self.transformer.parameters()) / 1e9
        return f"{self.name} ({params:.2f}B parameters, {self.transformer.arch.token_bits}-bit tokens, on {self.device})"


def default_block_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 blocks on CUDA (as the official inference), float32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_infinity(
    transformer_path: str | Path, vae_path: str | Path, *, device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> InfinityModel:
    """Load an official transformer checkpoint and its VAE from local files (architecture detected).

    `dtype` is the transformer blocks' compute dtype (default: bf16 on CUDA, float32 on CPU); the
    residual stream, text conditioning and head stay float32. A :class:`TTSVarError` about one of
    the files carries ``part`` = ``"transformer"`` or ``"vae"``.
    """
    from ttsvar.infinity.vae import load_vae
    from ttsvar.infinity.weights import load_transformer

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TTSVarError("device 'cuda' was requested but this PyTorch build sees no CUDA GPU; use device 'cpu'.")
    dtype = dtype or default_block_dtype(device)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TTSVarError(f"dtype must be float32, bfloat16 or float16, got {dtype}.")
    with _file_part("transformer"):
        transformer = load_transformer(transformer_path, device=device, block_dtype=dtype)
    with _file_part("vae"):  # a VAE that does not fit the transformer is the VAE slot's mistake too
        vae = load_vae(vae_path, device=device, dtype=torch.float32 if device.type == "cpu" else dtype)
        return InfinityModel(transformer, vae)


@contextlib.contextmanager
def _file_part(part: str):
    """Errors raised inside say which of the two files they are about (``exc.part``), so a caller
    with one input per file (a ComfyUI loader) blames the right one."""
    try:
        yield
    except TTSVarError as exc:
        exc.part = part
        raise
