"""Reading official checkpoints safely and loading them strictly.

Every file is opened with safetensors or `torch.load(weights_only=True, mmap=True)`: a user's
model folder can never run code. Loading is strict: the official loader silently ignores
missing and unexpected keys, which hides a wrong file; we list them instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from ttsvar.errors import MissingWeightsError, TTSVarError

SHARD_INDEX = "model.safetensors.index.json"
WRAPPER_KEYS = ("vae", "state_dict", "model", "module")


def read_state_dict(path: str | Path, *, what: str = "checkpoint", hint: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a `.pth`/`.pt`/`.bin`, a `.safetensors` file, or a folder of safetensors shards.

    A `.pth` that wraps its weights (`{'vae': …}` like `infinity_vae_d32reg.pth`) is unwrapped.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_sharded(path, what, hint)
    if not path.is_file():
        raise MissingWeightsError(f"{what} file '{path.name}'", str(path.parent), hint)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # mmap needs the zipfile format; old-style files are read whole
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: never retry unsafely
        raise TTSVarError(
            f"{what} '{path}' could not be read as plain tensors ({type(exc).__name__}: {exc}). "
            "Only weight files (state dicts) are accepted; convert other files with "
            "`python -m ttsvar convert`."
        ) from exc
    return _unwrap(obj, path, what)


def _unwrap(obj: object, path: Path, what: str) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj), None)
        if inner is None:
            raise TTSVarError(f"{what} '{path}' holds no tensors (top-level keys: {sorted(obj)[:8]}).")
        obj = inner
    if not isinstance(obj, Mapping):
        raise TTSVarError(f"{what} '{path}' is not a state dict (found {type(obj).__name__}).")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _read_sharded(folder: Path, what: str, hint: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = folder / SHARD_INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise MissingWeightsError(f"{what} shards {missing}", str(folder), hint)
    else:
        shards = sorted(p.name for p in folder.glob("*.safetensors"))
        if not shards:
            raise MissingWeightsError(f"{what} ({SHARD_INDEX} or *.safetensors)", str(folder), hint)
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(str(folder / shard)))
    return state


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, *, assign: bool = False) -> None:
    """Copy `state` into `module`, or raise one readable error listing every mismatch.

    `assign` adopts the tensors instead of copying (for a module built on the meta device).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or wrong:
        raise TTSVarError(
            f"{what} does not match the detected architecture.\n"
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", wrong)
            + "Check that the file is the right one for this model (a transformer file in the VAE "
            "slot, or a truncated download, gives this error)."
        )
    module.load_state_dict(state, strict=True, assign=assign)


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    if not items:
        return ""
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}): {', '.join(items[:limit])}{more}\n"


def convert_to_safetensors(source: str | Path, target: str | Path | None = None) -> Path:
    """Write a `.pth` checkpoint's tensors as `.safetensors` (contiguous, shared storage split)."""
    from safetensors.torch import save_file

    source = Path(source)
    target = Path(target) if target else source.with_suffix(".safetensors")
    if target.exists():
        raise TTSVarError(f"'{target}' exists already; remove it or choose another output path.")
    state = read_state_dict(source)
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(target))
    return target

