"""Shared pieces of the node classes: type names, error handling, IMAGE layout.

Kept free of torch at import time (the pack must import in well under a second).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

from ttsvar.errors import TTSVarError

from . import comfy_bridge as bridge

# --------------------------------------------------------------------------- custom types (an API)
MODEL = "INFINITY_MODEL"
TEXT_ENCODER = "TTSVAR_TEXT_ENCODER"
CONDITION = "TTSVAR_CONDITION"
SCHEDULE = "TTSVAR_SCHEDULE"
STATE = "VAR_STATE"
FEATURES = "TTSVAR_FEATURE_EXTRACTOR"
REWARD = "TTSVAR_REWARD_MODEL"

CATEGORY = "TTS-VAR"

#: Mirrors of library constants that the node declarations need at import time, without importing
#: torch-heavy library modules (tests check they equal the library's).
STRATEGIES = ("tts-var", "best-of-n", "importance-sampling", "raw")
POTENTIALS = ("value", "diff", "max", "sum")


class InputError(TTSVarError):
    """A bad value for one node input; the wrapper prefixes the node and the input name."""

    def __init__(self, input_name: str, message: str):
        super().__init__(message)
        self.input_name = input_name
        self.message = message


@contextlib.contextmanager
def blame(input_name: str):
    """Library errors raised inside are reported as errors of ``input_name``."""
    try:
        yield
    except InputError:
        raise
    except TTSVarError as exc:
        raise InputError(input_name, str(exc)) from None


#: What to do after running out of memory, in terms of the node-by-node graph's inputs (the
#: all-in-one Sampler passes its own: it has no schedule).
OOM_ADVICE = (
    "ran out of memory. Lower N in TTS-VAR Batch Schedule or use its tts-var preset instead of best-of-n "
    "at the same N (fewer candidates at the costly scales), a smaller width/height (with the schedule's pn "
    "to match), or free other models (Unload models) and try again."
)


def guarded(title: str, oom_advice: str = OOM_ADVICE) -> Callable:
    """Decorator for a node's FUNCTION: user-fixable errors become one clear message naming the
    node and the input, OOM becomes advice that can be followed in this graph, ComfyUI's interrupt
    passes through untouched."""

    def deco(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except InputError as exc:
                raise TTSVarError(f"[{title}] input '{exc.input_name}': {exc.message}") from None
            except TTSVarError as exc:
                raise TTSVarError(f"[{title}] {exc}") from None
            except BaseException as exc:  # noqa: BLE001
                if bridge.is_interrupt(exc) or not isinstance(exc, Exception):
                    raise
                if bridge.is_oom(exc):
                    bridge.free_after_oom()
                    raise TTSVarError(f"[{title}] {oom_advice}") from None
                raise

        return wrapper

    return deco


def tip(text: str, **opts: Any) -> dict:
    opts["tooltip"] = text
    return opts


def to_comfy_image(images) -> Any:
    """Library images [B,3,H,W] 0..1 -> ComfyUI IMAGE [B,H,W,3] float32 on the intermediate device."""
    import torch

    out = images.detach().to(torch.float32).clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu()
    dev = bridge.intermediate_device()
    return out if dev is None else out.to(dev)
