"""Shared plumbing of the scorers: device/dtype handling, tensor preprocessing, file lookup and
strict checkpoint loading.

Only torch is imported here; transformers is imported by the loaders that need it.

Conventions every scorer in this package follows:

* Images come in as float [B, 3, H, W] in 0..1 on any device. They are moved to the model's
  device and preprocessed there, in float32 (float64 when the model runs in float64), then cast
  to the model's dtype at the model input. No PIL round trip.
* Resizing, by default, is ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``,
  which follows PIL's bicubic filter (what the reference processors use); the result is clamped
  to 0..1 as a uint8 PIL image would be. Differences to the PIL path are then the uint8 rounding
  PIL does (at most about 1/255 before normalisation).
* The scorers the official TTS-VAR code feeds with uint8 PIL images resize exactly as Pillow
  does instead (:mod:`ttsvar.scoring.pil_resize`: the image rounded to uint8, Pillow's
  fixed-point filter, uint8 result, then ``/255``): DINOv2 (bilinear, :func:`square_preprocess`),
  ImageReward and HPSv2 (bicubic, ``clip_style_preprocess(pil_uint8=True)``).
* ``dtype`` may be float32 (default), float64, bfloat16 or float16. With a half type only the
  backbone runs in it; small heads (MLPs, cosine similarities, PCA) run in float32.
* Outputs are float32 on the CPU.
* Scorers with weights subclass :class:`ModuleBacked`: ``torch_modules()`` lists the modules that
  hold all their weights, and ``device``/``dtype`` are read from those modules' parameters at call
  time, so a host application (ComfyUI's model management) may move the modules between devices
  (or cast them) between calls and the scorer follows.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ttsvar.errors import MissingWeightsError, TTSVarError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device | None = None) -> torch.dtype:
    """torch dtype from a dtype or a name ("float32", "bf16", …); None means float32; "auto" means
    bfloat16 on a CUDA device that supports it, float32 elsewhere."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower() == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.lower().removeprefix("torch.")]
    raise TTSVarError(f"Unsupported dtype {dtype!r}: use float32, float64, bfloat16 or float16.")


class ModuleBacked:
    """Mixin for scorers whose weights live in ``torch.nn.Module`` attributes.

    ``_weight_attrs`` names those attributes, backbone first. ``torch_modules()`` returns the
    modules (everything a host needs to move to put the scorer on a device). ``device`` and
    ``dtype`` are those of the backbone's first parameter, read at call time; a value assigned to
    them is only kept as the answer for modules without parameters.
    """

    _weight_attrs: tuple[str, ...] = ()

    def torch_modules(self) -> list[torch.nn.Module]:
        mods = (getattr(self, a, None) for a in self._weight_attrs)
        return [m for m in mods if isinstance(m, torch.nn.Module)]

    def _first_parameter(self) -> torch.Tensor | None:
        for m in self.torch_modules():
            for p in m.parameters():
                return p
        return None

    @property
    def device(self) -> torch.device:
        p = self._first_parameter()
        return p.device if p is not None else self.__dict__.get("_device_fallback", torch.device("cpu"))

    @device.setter
    def device(self, value: torch.device | str) -> None:
        self._device_fallback = torch.device(value)

    @property
    def dtype(self) -> torch.dtype:
        p = self._first_parameter()
        if p is not None and p.is_floating_point():
            return p.dtype
        return self.__dict__.get("_dtype_fallback", torch.float32)

    @dtype.setter
    def dtype(self, value: torch.dtype) -> None:
        self._dtype_fallback = value


def resolve_device(device: torch.device | str | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def head_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype small heads run in: float64 stays float64, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_images(images: torch.Tensor, n_prompts: int | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise TTSVarError(f"Images must be a float tensor [B, 3, H, W] in 0..1; got {shape}.")
    if not images.is_floating_point():
        raise TTSVarError(f"Images must be floating point in 0..1; got {images.dtype}.")
    if n_prompts is not None and n_prompts != images.shape[0]:
        raise TTSVarError(f"Got {images.shape[0]} images but {n_prompts} prompts; give one prompt per image.")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic, antialiased resize to (h, w), clamped to 0..1 (a no-op when the size matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)


def shortest_edge_size(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision ``Resize(int)`` and HF ``shortest_edge`` rule: short side → size, long side
    → int(size · long / short) (truncated)."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


def center_crop(x: torch.Tensor, crop: int, rounding: str = "round") -> torch.Tensor:
    """Center crop to crop×crop. ``rounding="round"`` places the window like torchvision's
    CenterCrop (round((H−c)/2)); ``"floor"`` like Hugging Face image processors ((H−c)//2)."""
    h, w = x.shape[-2:]
    if h < crop or w < crop:  # never happens after a shortest-edge resize to >= crop
        x = F.pad(x, (max(0, (crop - w) // 2), max(0, crop - w - (crop - w) // 2),
                      max(0, (crop - h) // 2), max(0, crop - h - (crop - h) // 2)))
        h, w = x.shape[-2:]
    if rounding == "round":
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    else:
        top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top:top + crop, left:left + crop]


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def pil_style_resize(images: torch.Tensor, size: tuple[int, int], filter: str, dtype: torch.dtype) -> torch.Tensor:
    """What torchvision's ``Resize`` + ``ToTensor`` give for a uint8 PIL image: the image as uint8
    (rounded), Pillow's resize (exact, :func:`ttsvar.scoring.pil_resize.pil_resize`), ``/255``."""
    from ttsvar.scoring.pil_resize import pil_resize, to_uint8

    resized = pil_resize(to_uint8(images), size, filter)
    return resized.to(_work_dtype(dtype)).div_(255)


def clip_style_preprocess(images: torch.Tensor, *, resize_to: int, crop: int, mean, std, device: torch.device,
                          dtype: torch.dtype, rounding: str = "round", pil_uint8: bool = False) -> torch.Tensor:
    """Shortest edge → ``resize_to`` (bicubic, antialias), center crop ``crop``, normalise.
    ``pil_uint8``: resize the uint8 image exactly as Pillow's bicubic does (the path of a scorer
    that receives PIL images). Returns the model input on ``device`` in ``dtype``."""
    check_images(images)
    x = images.to(device=device, dtype=_work_dtype(dtype))
    h, w = x.shape[-2:]
    size = shortest_edge_size(h, w, resize_to)
    x = pil_style_resize(x, size, "bicubic", dtype) if pil_uint8 else resize(x, size)
    x = center_crop(x, crop, rounding)
    return normalize(x, mean, std).to(dtype)


def square_preprocess(images: torch.Tensor, *, size: int, mean, std, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
    """The official TTS-VAR DINOv2 input (``extract_k_ids``: ``transforms.Resize((224, 224))`` on the
    uint8 PIL image, ``ToTensor``, ``Normalize``): size×size with Pillow's bilinear filter on the
    uint8 image (exact), aspect not kept, no crop, then ``/255`` and normalised."""
    check_images(images)
    x = pil_style_resize(images.to(device=device), (size, size), "bilinear", dtype)
    return normalize(x, mean, std).to(dtype)


def to_output(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


# ---------------------------------------------------------------- files and checkpoints

def find_file(path: str | os.PathLike, names: Iterable[str], *, what: str, hint: str) -> Path:
    """``path`` is the file itself or a folder holding one of ``names`` (first match wins)."""
    names = list(names)
    p = Path(os.path.expanduser(str(path)))
    if p.is_file():
        return p
    if p.is_dir():
        for n in names:
            if (p / n).is_file():
                return p / n
    raise MissingWeightsError(f"{what} ({' or '.join(names)})", str(p), hint)


def require_files(folder: str | os.PathLike, groups: Sequence[Sequence[str]], *, what: str, hint: str) -> Path:
    """``folder`` must be a directory holding, for every group, at least one of its file names."""
    p = Path(os.path.expanduser(str(folder)))
    missing = []
    for group in groups:
        if not p.is_dir() or not any((p / n).is_file() for n in group):
            missing.append(" or ".join(group))
    if missing:
        raise MissingWeightsError(f"{what}: {', '.join(missing)}", str(p), hint)
    return p


def load_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or torch pickle (``weights_only``) file on the CPU. A dict
    wrapping the tensors under ``state_dict`` or ``model`` is unwrapped, and a DataParallel
    ``module.`` prefix is removed."""
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(file), device="cpu")
        else:
            sd = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt / truncated / not a checkpoint
        raise TTSVarError(f"Could not read the checkpoint {file}: {type(e).__name__}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TTSVarError(f"{file} is not a state dict of tensors.")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _short_list(keys: Sequence[str], n: int = 12) -> str:
    keys = sorted(keys)
    more = f", … ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_strict(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], *, source: str,
                ignore: Iterable[str] = ()) -> None:
    """Load ``sd`` into ``module`` requiring exactly its keys and shapes. Keys in ``sd`` that start
    with one of ``ignore`` (known unused parts of official checkpoints) are dropped first."""
    ignore = tuple(ignore)
    sd = {k: v for k, v in sd.items() if not (ignore and k.startswith(ignore))}
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)}≠{tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_short_list(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes ({len(wrong)}): {_short_list(wrong)}")
        raise TTSVarError(f"{source} does not match the expected architecture: " + "; ".join(parts))
    module.load_state_dict(sd, strict=True)


def is_square(n: int) -> bool:
    r = math.isqrt(n)
    return r * r == n
