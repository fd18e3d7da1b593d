"""The Infinity BSQ VAE: a FLUX/LDM-style conv autoencoder with a multi-scale binary quantiser.

Re-implemented from the architecture facts of the official `bsq_vae/flux_vqgan.py` (see
`shared/notes/official-infinity.md` §4). The architecture is detected from the tensor shapes of
the weight file, so one loader serves the tiny reference model, the 2B tokenizer
(`infinity_vae_d32reg.pth`: d = 32, base 128, mult [1,2,4,4,4], stride 16) and the 8B one
(`infinity_vae_d56_f8_14_patchify.pth`: d = 14, mult [1,2,4,4], stride 8).

Parameter names are the official ones (`decoder.conv_in.conv.weight`,
`decoder.up.{i}.block.{j}.norm1.norm.weight`, …), so a file loads strictly with no renaming;
un-wrapped names (`X.weight` for `X.conv.weight` / `X.norm.weight`, accepted by the official
`load_cnn`) are mapped by `canonical_vae_keys`.

Decoder (official order): conv_in → mid.block_1 → mid.block_2 (no mid attention) → up levels
from the deepest to level 0, each `num_res_blocks + 1` ResnetBlocks then, where present,
Upsample (nearest ×2 + 3×3 conv) → norm_out → swish → conv_out; `decode` clamps to [−1, 1].
ResnetBlock: norm1 → swish → conv1 → norm2 → swish → conv2, plus a 1×1 `nin_shortcut` when the
width changes. Norms are GroupNorm(32 groups, or 24 when the width is not a multiple of 32,
eps 1e-6, affine). The encoder mirrors it (Downsample = right/bottom zero pad + 3×3 stride-2
conv) and is built whenever the file holds `encoder.*` weights, so loading stays strict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ttsvar.errors import TTSVarError
from ttsvar.infinity.checkpoint import load_strict, read_state_dict
from ttsvar.infinity.codes import bits_to_codes, resize_codes, summed_codes_from_bits

__all__ = [
    "VAEConfig",
    "EncoderConfig",
    "BSQVAE",
    "load_vae",
    "random_bsq_vae",
    "detect_vae_config",
    "canonical_vae_keys",
    "VAE_HINT",
]

VAE_HINT = (
    "Download the VAE of your Infinity model from the Hugging Face repo FoundationVision/Infinity: "
    "'infinity_vae_d32reg.pth' for Infinity-2B, 'infinity_vae_d56_f8_14_patchify.pth' for Infinity-8B, "
    "and put it in ComfyUI's models/infinity/ (or models/vae/) folder."
)

GN_EPS = 1e-6


# ---- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderConfig:
    base_ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    down_levels: tuple[int, ...]  # levels that end in a stride-2 Downsample
    out_channels: int  # conv_out width: codebook_dim (BSQ) or 2·codebook_dim (use_vae)
    in_channels: int = 3


@dataclass(frozen=True)
class VAEConfig:
    codebook_dim: int
    base_ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    up_levels: tuple[int, ...]  # decoder levels that end in an Upsample
    out_channels: int = 3
    encoder: EncoderConfig | None = None
    quantizer_names: tuple[str, ...] = ("quantizer", "quantize")  # official aliases of one module

    @property
    def stride(self) -> int:
        return 2 ** len(self.up_levels)

    @staticmethod
    def standard(
        codebook_dim: int = 32,
        base_ch: int = 128,
        ch_mult: Sequence[int] = (1, 2, 4, 4, 4),
        num_res_blocks: int = 2,
        *,
        with_encoder: bool = True,
    ) -> "VAEConfig":
        """The official layout: every level but level 0 resamples (patch size 2^(levels−1))."""
        ch_mult = tuple(int(m) for m in ch_mult)
        n = len(ch_mult)
        enc = None
        if with_encoder:
            enc = EncoderConfig(base_ch, ch_mult, num_res_blocks, tuple(range(n - 1)), codebook_dim)
        return VAEConfig(codebook_dim, base_ch, ch_mult, num_res_blocks, tuple(range(1, n)), encoder=enc)


# ---- building blocks (official parameter names) ---------------------------------------------


def _groups(channels: int) -> int:
    if channels % 32 == 0:
        return 32
    if channels % 24 == 0:
        return 24
    raise TTSVarError(f"VAE width {channels} is not a multiple of 32 or 24 (GroupNorm groups).")


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class _Conv(nn.Module):
    """Wrapper so names end in `.conv.weight`, like the official `Conv`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Norm(nn.Module):
    """Wrapper so names end in `.norm.weight`, like the official `Normalize`."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, eps=GN_EPS, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.norm1 = _Norm(cin)
        self.conv1 = _Conv(cin, cout, 3, padding=1)
        self.norm2 = _Norm(cout)
        self.conv2 = _Conv(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = _Conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(_swish(self.norm2(h)))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = _Conv(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = _Conv(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class _Level(nn.Module):
    """One resolution level: `block` (ModuleList) and an optional `upsample`/`downsample`."""


class _Mid(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.block_1(x))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        block_in = ch * mult[-1]
        self.conv_in = _Conv(cfg.codebook_dim, block_in, 3, padding=1)
        self.mid = _Mid(block_in)
        levels: list[nn.Module] = [None] * len(mult)  # type: ignore[list-item]
        for i in reversed(range(len(mult))):
            level = _Level()
            block_out = ch * mult[i]
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            level.block = nn.ModuleList(blocks)
            if i in cfg.up_levels:
                level.upsample = Upsample(block_in)
            levels[i] = level
        self.up = nn.ModuleList(levels)
        self.norm_out = _Norm(block_in)
        self.conv_out = _Conv(block_in, cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        self.conv_in = _Conv(cfg.in_channels, ch, 3, padding=1)
        in_mult = (1,) + tuple(mult)
        levels = []
        block_in = ch
        for i in range(len(mult)):
            level = _Level()
            block_in = ch * in_mult[i]
            block_out = ch * mult[i]
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            level.block = nn.ModuleList(blocks)
            if i in cfg.down_levels:
                level.downsample = Downsample(block_in)
            levels.append(level)
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(block_in)
        self.norm_out = _Norm(block_in)
        self.conv_out = _Conv(block_in, cfg.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(_swish(self.norm_out(h)))


class _LFQ(nn.Module):
    def __init__(self, codebook_dim: int):
        super().__init__()
        # Official buffer: bit weights 2^(d−1) … 2^0, only used for integer labels.
        self.register_buffer("mask", 2 ** torch.arange(codebook_dim - 1, -1, -1, dtype=torch.int64))


class _Quantizer(nn.Module):
    """Holds the official `quantizer.lfq.mask` buffer (no parameters: projections are Identity)."""

    def __init__(self, codebook_dim: int):
        super().__init__()
        self.lfq = _LFQ(codebook_dim)


# ---- the model --------------------------------------------------------------------------------


class BSQVAE(nn.Module):
    """Infinity's BSQ VAE. `decode` maps summed codes `[B, d, h, w]` to images in [−1, 1]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.encoder is not None:
            self.encoder = Encoder(cfg.encoder)
        self.decoder = Decoder(cfg)
        quantizer = _Quantizer(cfg.codebook_dim)
        # The official AutoEncoder sets `self.quantize = self.quantizer`, so its state dict holds
        # the same buffer under both names; register the one module under each name the file has.
        for name in cfg.quantizer_names:
            setattr(self, name, quantizer)

    # -- facts --
    @property
    def stride(self) -> int:
        """Pixels per latent cell along each side (16 for the 2B VAE, 8 for the 8B one)."""
        return self.cfg.stride

    @property
    def codebook_dim(self) -> int:
        return self.cfg.codebook_dim

    @property
    def has_encoder(self) -> bool:
        return self.cfg.encoder is not None

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_in.conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.decoder.conv_in.conv.weight.device

    @property
    def bit_mask(self) -> torch.Tensor:
        """The official `quantizer.lfq.mask` buffer: 2^(d−1) … 2^0 (int64)."""
        return getattr(self, self.cfg.quantizer_names[0]).lfq.mask

    # -- decoding --
    def decode(self, summed_codes: torch.Tensor, *, max_batch: int | None = None) -> torch.Tensor:
        """Summed codes `[B, d, h, w]` (or `[B, d, 1, h, w]`) → images `[B, 3, h·s, w·s]` in [−1, 1].

        Computes in the model's dtype/device and returns float32 on the model's device.
        `max_batch` decodes at most that many images at a time (peak memory ∝ max_batch).
        The input is never modified; call under `torch.inference_mode()` or `no_grad()` as you like.
        """
        z = summed_codes
        if z.ndim == 5 and z.shape[2] == 1:
            z = z[:, :, 0]
        if z.ndim != 4 or z.shape[1] != self.codebook_dim:
            raise TTSVarError(
                f"VAE decode expects codes [B, {self.codebook_dim}, h, w], got {tuple(summed_codes.shape)}."
            )
        if max_batch is not None and max_batch < 1:
            raise TTSVarError(f"max_batch must be ≥ 1, got {max_batch}.")
        step = z.shape[0] if not max_batch else max_batch
        outs = []
        for start in range(0, z.shape[0], max(step, 1)):
            chunk = z[start : start + step].to(device=self.device, dtype=self.dtype)
            img = self.decoder(chunk)
            outs.append(img.clamp(-1.0, 1.0).float())
        if not outs:
            h, w = z.shape[-2:]
            return torch.zeros(0, 3, h * self.stride, w * self.stride, device=self.device)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def decode_chunked(self, summed_codes: torch.Tensor, chunk: int) -> torch.Tensor:
        """`decode` with at most `chunk` images per decoder pass."""
        return self.decode(summed_codes, max_batch=chunk)

    def decode_bits(self, bits_per_scale: list[torch.Tensor], **kw) -> torch.Tensor:
        """Decode from each scale's bits (convenience for tests and demos): VAE cells
        `[B, h_k, w_k, d]`, or 8B transformer tokens `[B, h_k, w_k, 4d]` (told apart by the width)."""
        d = self.codebook_dim
        widths = {int(b.shape[-1]) for b in bits_per_scale}
        if widths not in ({d}, {4 * d}):
            raise TTSVarError(
                f"VAE decode_bits expects bits [B, h, w, {d}] (or 8B tokens [B, h, w, {4 * d}]) at every scale, "
                f"got {[tuple(b.shape) for b in bits_per_scale]}."
            )
        return self.decode(summed_codes_from_bits(bits_per_scale, patchify=widths == {4 * d}), **kw)

    # -- encoding (reconstruction / editing; not needed for text-to-image) --
    def encode_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images `[B, 3, H, W]` in [−1, 1] → raw encoder features `[B, d, H/s, W/s]` (float32)."""
        if self.cfg.encoder is None:
            raise TTSVarError("this VAE file holds no encoder weights, so it cannot encode images.")
        if images.ndim != 4 or images.shape[1] != self.cfg.encoder.in_channels:
            raise TTSVarError(f"VAE encode expects images [B, 3, H, W], got {tuple(images.shape)}.")
        h = self.encoder(images.to(device=self.device, dtype=self.dtype))
        return h.float()

    def encode(
        self, images: torch.Tensor, grids: Sequence[tuple[int, int]]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Multi-scale BSQ encoding on the VAE grids `grids` (last = full latent grid).

        Returns (bits per scale `[B, h_k, w_k, d]` int64, summed codes `[B, d, H, W]`), following
        the official `MultiScaleBSQ.forward`: the residual is area-downsampled to each grid,
        each token is L2-normalised and sign-quantised to ±1/√d, the quantised map is
        trilinearly upsampled and subtracted from the residual.
        [Not checked against official encoder outputs: the reference has decode outputs only.]
        """
        feats = self.encode_features(images)
        final = tuple(feats.shape[-2:])
        if tuple(grids[-1]) != final:
            raise TTSVarError(f"the last grid {tuple(grids[-1])} must be the latent grid {final}.")
        residual = feats
        summed = torch.zeros_like(feats)
        all_bits: list[torch.Tensor] = []
        for gh, gw in grids:
            if (gh, gw) != final:
                r = F.adaptive_avg_pool2d(residual, (gh, gw))  # 'area' with t = 1
            else:
                r = residual
            bits = (F.normalize(r, dim=1) > 0).to(torch.int64).permute(0, 2, 3, 1).contiguous()
            q = bits_to_codes(bits, dtype=feats.dtype).to(feats.device)
            q = resize_codes(q, final)
            residual = residual - q
            summed = summed + q
            all_bits.append(bits)
        return all_bits, summed


# ---- checkpoint handling ----------------------------------------------------------------------

# Modules that the official code wraps (`Conv` → `.conv`, `Normalize` → `.norm`).
_CONV_OWNERS = frozenset({"conv_in", "conv_out", "conv1", "conv2", "nin_shortcut", "conv"})
_NORM_OWNERS = frozenset({"norm1", "norm2", "norm_out"})


def canonical_vae_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official wrapped names for every key; returns a new dict (tensors are shared).

    * A conv or norm saved without the wrapper level (accepted by the official `load_cnn`):
      `….conv_in.weight` → `….conv_in.conv.weight`, `….norm1.bias` → `….norm1.norm.bias`,
      `….upsample.conv.weight` → `….upsample.conv.conv.weight`. A key counts as wrapped when
      its owner module (conv_in, conv_out, conv1, conv2, nin_shortcut, the resampler's conv;
      norm1, norm2, norm_out) is followed by `conv`/`norm`; anything else is left as is, so
      unknown keys still fail strict loading.
    * If only one of the official aliases `quantizer.lfq.mask` / `quantize.lfq.mask` is present,
      the other is filled in with it (the official model registers one buffer under both names).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        new = key
        if len(parts) >= 2 and parts[-1] in ("weight", "bias") and parts[0] in ("encoder", "decoder"):
            owner, inner = (parts[-3] if len(parts) >= 3 else ""), parts[-2]
            wrapped = (inner == "conv" and owner in _CONV_OWNERS) or (inner == "norm" and owner in _NORM_OWNERS)
            if not wrapped:
                if (inner in _CONV_OWNERS and inner != "conv") or (
                    inner == "conv" and owner in ("upsample", "downsample")
                ):
                    new = ".".join(parts[:-1] + ["conv", parts[-1]])
                elif inner in _NORM_OWNERS:
                    new = ".".join(parts[:-1] + ["norm", parts[-1]])
        if new in out:
            raise TTSVarError(f"VAE file holds both '{key}' and '{new}' (the same weight twice).")
        out[new] = value
    for a, b in (("quantizer.lfq.mask", "quantize.lfq.mask"), ("quantize.lfq.mask", "quantizer.lfq.mask")):
        if a in out and b not in out:
            out[b] = out[a]
    return out


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in state for m in [rx.match(k)] if m}
    return sorted(found)


def _out_width(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Output width of a ResnetBlock from whichever of its tensors the file has."""
    for name in ("conv2.conv.weight", "conv1.conv.weight", "norm2.norm.weight", "conv2.conv.bias"):
        t = state.get(f"{prefix}.{name}")
        if t is not None:
            return int(t.shape[0])
    raise TTSVarError(f"VAE file lacks the weights of '{prefix}' (e.g. '{prefix}.conv2.conv.weight').")


def _level_config(state: Mapping[str, torch.Tensor], part: str, levels_name: str, resample: str):
    levels = _indices(state, rf"{part}\.{levels_name}\.(\d+)\.")
    if not levels or levels != list(range(len(levels))):
        raise TTSVarError(f"VAE file has no consecutive '{part}.{levels_name}.N' levels (found {levels}).")
    widths, counts = [], []
    for i in levels:
        blocks = _indices(state, rf"{part}\.{levels_name}\.{i}\.block\.(\d+)\.")
        if not blocks:
            raise TTSVarError(f"VAE file has no blocks under '{part}.{levels_name}.{i}.block'.")
        counts.append(max(blocks) + 1)
        widths.append(_out_width(state, f"{part}.{levels_name}.{i}.block.0"))
    if len(set(counts)) != 1:
        raise TTSVarError(f"VAE levels of '{part}' have different block counts {counts}.")
    base = widths[0]
    if any(w % base for w in widths):
        raise TTSVarError(f"VAE widths {widths} of '{part}' are not multiples of the first level's.")
    mult = tuple(w // base for w in widths)
    resampled = tuple(i for i in levels if any(k.startswith(f"{part}.{levels_name}.{i}.{resample}.") for k in state))
    return base, mult, counts[0], resampled


def detect_vae_config(state: Mapping[str, torch.Tensor]) -> VAEConfig:
    """The architecture implied by a (canonical-key) state dict; raises TTSVarError if it is not a VAE."""
    w_in = state.get("decoder.conv_in.conv.weight")
    if w_in is None or w_in.ndim != 4:
        some = ", ".join(sorted(state)[:5])
        raise TTSVarError(
            "this file is not an Infinity BSQ VAE: it has no 'decoder.conv_in.conv.weight' "
            f"(first keys: {some}). {VAE_HINT}"
        )
    d = int(w_in.shape[1])
    base, mult, nblocks, up = _level_config(state, "decoder", "up", "upsample")
    out_w = state.get("decoder.conv_out.conv.weight")
    out_ch = int(out_w.shape[0]) if out_w is not None else 3
    enc = None
    if any(k.startswith("encoder.") for k in state):
        ebase, emult, enblocks, down = _level_config(state, "encoder", "down", "downsample")
        eout = state.get("encoder.conv_out.conv.weight")
        ein = state.get("encoder.conv_in.conv.weight")
        enc = EncoderConfig(
            base_ch=ebase,
            ch_mult=emult,
            num_res_blocks=enblocks,
            down_levels=down,
            out_channels=int(eout.shape[0]) if eout is not None else d,
            in_channels=int(ein.shape[1]) if ein is not None else 3,
        )
    qnames = tuple(n for n in ("quantizer", "quantize") if any(k.startswith(n + ".") for k in state))
    return VAEConfig(
        codebook_dim=d,
        base_ch=base,
        ch_mult=mult,
        num_res_blocks=nblocks - 1,
        up_levels=up,
        out_channels=out_ch,
        encoder=enc,
        quantizer_names=qnames or ("quantizer", "quantize"),
    )


def load_vae(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> BSQVAE:
    """Read an official VAE file (`.pth` with `{'vae': …}`, or `.safetensors`), detect, build, load strictly.

    Returns the model in eval mode without gradients, on `device` in `dtype` (use bfloat16 on
    GPU, float32 on CPU). The `mask` buffer keeps its integer dtype.
    """
    state = read_state_dict(path, what="Infinity VAE", hint=VAE_HINT)
    state = canonical_vae_keys(state)
    cfg = detect_vae_config(state)
    expected = 2 ** torch.arange(cfg.codebook_dim - 1, -1, -1, dtype=torch.int64)
    if not any(k.startswith(("quantizer.", "quantize.")) for k in state):
        # A decoder/encoder-only export: the mask is a constant of d, so supply it.
        state = {**state, **{f"{n}.lfq.mask": expected for n in cfg.quantizer_names}}
    with torch.device("meta"):
        model = BSQVAE(cfg)
    model = model.to_empty(device="cpu")
    load_strict(model, state, f"Infinity VAE '{Path(path).name}'")
    if not torch.equal(model.bit_mask.to(torch.int64), expected):
        raise TTSVarError(
            f"Infinity VAE '{Path(path).name}': quantizer mask is not the powers of two 2^{cfg.codebook_dim - 1}…1; "
            "the file is damaged or not an Infinity BSQ VAE."
        )
    model = model.to(device=device, dtype=dtype)
    model.eval().requires_grad_(False)
    return model


def random_bsq_vae(
    seed: int,
    codebook_dim: int = 32,
    base_ch: int = 32,
    ch_mult: Sequence[int] = (1, 2, 4, 4, 4),
    num_res_blocks: int = 2,
    *,
    with_encoder: bool = True,
) -> BSQVAE:
    """A randomly initialised VAE (float32, CPU, eval, no grad), identical for equal arguments.

    The global RNG is left untouched. GroupNorm affine parameters are randomised too, so tests
    exercise them.
    """
    cfg = VAEConfig.standard(codebook_dim, base_ch, ch_mult, num_res_blocks, with_encoder=with_encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = BSQVAE(cfg)
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                with torch.no_grad():
                    m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))
                    m.bias.copy_(0.1 * torch.randn_like(m.bias))
    model.eval().requires_grad_(False)
    return model
