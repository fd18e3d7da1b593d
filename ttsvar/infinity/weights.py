"""Official transformer checkpoints → our module: architecture from tensor shapes, strict load.

Handles `infinity_2b_reg.pth` (plain state dict), the 8B sharded safetensors folder, and
safetensors copies of either; blocks are stored as `block_chunks.{c}.module.{j}.*` and are
flattened in order; `scale_mul_1H11` is accepted in both the (1,H,1,1) and (1,1,H,1) layouts.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.checkpoint import load_strict, read_state_dict
from ttsvar.infinity.transformer import InfinityArch, InfinityTransformer

TRANSFORMER_HINT = (
    "Download infinity_2b_reg.pth (Infinity-2B) or the infinity_8b_weights/ folder (Infinity-8B) from the "
    "Hugging Face repo FoundationVision/Infinity and put it in ComfyUI's models/infinity/ folder "
    "(or pass its path with --transformer)."
)
_CHUNKED = re.compile(r"^block_chunks\.(\d+)\.module\.(\d+)\.(.+)$")
_FLAT = re.compile(r"^blocks\.(\d+)\.(.+)$")
# Buffers the official class registers but never needs from a file (it pops them on load too).
_IGNORED_BUFFERS = ("lvl_1L", "attn_bias_for_masking", "Infinity_visible_kvlen", "Infinity_invisible_qlen")


def detect_arch(state: dict[str, torch.Tensor]) -> InfinityArch:
    """Read every size from tensor shapes; a file that is not an Infinity transformer gets a clear error."""
    needed = ("pos_start", "cfg_uncond", "word_embed.weight", "text_proj_for_sos.ca.mat_q", "head.weight", "lvl_embed.weight")
    absent = [k for k in needed if k not in state]
    if absent:
        raise TTSVarError(
            f"this file is not an Infinity transformer checkpoint: keys {absent} are missing "
            f"(found e.g. {sorted(state)[:5]}). A VAE or text-encoder file in the transformer slot gives this error."
        )
    blocks = _block_keys(state)
    first = blocks[0] if blocks else None
    if first is None:
        raise TTSVarError("the transformer checkpoint holds no blocks (no 'block_chunks.*' or 'blocks.*' keys).")
    arch = InfinityArch(
        depth=len(blocks),
        embed_dim=state["pos_start"].shape[-1],
        num_heads=state[f"{first}.sa.scale_mul_1H11"].numel(),
        text_channels=state["cfg_uncond"].shape[1],
        pool_heads=state["text_proj_for_sos.ca.mat_q"].shape[1],
        token_bits=state["word_embed.weight"].shape[1],
        ffn_hidden=state[f"{first}.ffn.fc1.weight"].shape[0],
        text_maxlen=state["cfg_uncond"].shape[0],
        num_levels=state["lvl_embed.weight"].shape[0],
    )
    if state["head.weight"].shape[0] != 2 * arch.token_bits:
        raise TTSVarError(
            f"head width {state['head.weight'].shape[0]} is not 2 × {arch.token_bits} token bits: only the "
            "bitwise-label Infinity models (use_bit_label=1, as released) are supported."
        )
    return arch


def _block_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Each block's key prefix, in execution order."""
    chunked = sorted({(int(m[1]), int(m[2])) for m in map(_CHUNKED.match, state) if m})
    if chunked:
        return [f"block_chunks.{c}.module.{j}" for c, j in chunked]
    flat = sorted({int(m[1]) for m in map(_FLAT.match, state) if m})
    return [f"blocks.{i}" for i in flat]


def to_module_state(state: dict[str, torch.Tensor], arch: InfinityArch) -> dict[str, torch.Tensor]:
    """Official names and layouts → this module's (flat block index, (1,H,1,1) head scales)."""
    order = {prefix: i for i, prefix in enumerate(_block_keys(state))}
    out = {}
    for key, value in state.items():
        if key.endswith("zero_k_bias"):
            if value.abs().max() != 0:
                raise TTSVarError(f"'{key}' should be all zeros in an Infinity checkpoint; this file is not one.")
            continue
        if key in _IGNORED_BUFFERS:
            continue
        m = _CHUNKED.match(key) or _FLAT.match(key)
        if m:
            prefix = key[: len(key) - len(m.groups()[-1]) - 1]
            key = f"blocks.{order[prefix]}.{m.groups()[-1]}"
            if key.endswith("sa.scale_mul_1H11"):
                value = value.reshape(1, arch.num_heads, 1, 1)
        out[key] = value
    return out


def load_transformer_state(
    state: dict[str, torch.Tensor], *, device: torch.device | str = "cpu", block_dtype: torch.dtype = torch.float32
) -> InfinityTransformer:
    """Build the detected architecture without allocating, adopt the tensors, then place them."""
    arch = detect_arch(state)
    with torch.device("meta"):
        model = InfinityTransformer(arch)
    load_strict(model, to_module_state(state, arch), f"transformer checkpoint ({arch.name})", assign=True)
    model = model.to(device=device, dtype=torch.float32)
    model.blocks.to(block_dtype)
    return model.eval().requires_grad_(False)


def load_transformer(
    path: str | Path, *, device: torch.device | str = "cpu", block_dtype: torch.dtype = torch.float32
) -> InfinityTransformer:
    state = read_state_dict(path, what="Infinity transformer", hint=TRANSFORMER_HINT)
    return load_transformer_state(state, device=device, block_dtype=block_dtype)


def official_state(model: InfinityTransformer, block_chunks: int = 1) -> dict[str, torch.Tensor]:
    """This module's weights under the official names (for converting or sharing files)."""
    depth = model.arch.depth
    if depth % block_chunks:
        raise TTSVarError(f"depth {depth} does not split into {block_chunks} chunks.")
    per = depth // block_chunks
    out = {}
    for key, value in model.state_dict().items():
        m = _FLAT.match(key)
        if m:
            i = int(m[1])
            key = f"block_chunks.{i // per}.module.{i % per}.{m[2]}"
            if key.endswith(("sa.mat_qkv.weight",)):
                prefix = key[: -len("mat_qkv.weight")]
                out[prefix + "zero_k_bias"] = torch.zeros(model.arch.embed_dim)
            elif key.endswith("ca.mat_kv.weight"):
                out[key[: -len("mat_kv.weight")] + "zero_k_bias"] = torch.zeros(model.arch.embed_dim)
        out[key] = value.detach().float().contiguous().cpu()
    out["text_proj_for_sos.ca.zero_k_bias"] = torch.zeros(model.arch.embed_dim)
    return out
