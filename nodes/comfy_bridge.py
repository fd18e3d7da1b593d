"""The only module of the pack that imports ComfyUI (comfy, folder_paths, server, ...).

Everything here degrades gracefully when ComfyUI is absent (tests, plain Python):

* progress      -> a no-op progress bar;
* interrupt     -> a no-op check;
* model folders -> ``$TTSVAR_MODELS_DIR/<folder>`` if that variable is set, else nothing is
                   listed (only the built-in "(tiny random demo)" entries are offered);
* devices       -> the model's own device (the CPU for the tiny models); load_models is a no-op;
* previews      -> skipped.

Nothing heavy is imported at module level: ``folder_paths`` is a light module that ComfyUI has
already imported when it loads the pack; ``comfy.*`` is imported inside the functions (already
loaded under ComfyUI, absent elsewhere).
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any, Callable, Iterable

log = logging.getLogger("ttsvar.nodes")

try:  # ComfyUI is present: use its model folders.
    import folder_paths as _folder_paths  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any failure means "not inside ComfyUI"
    _folder_paths = None

#: Model folders the pack registers, by folder_paths key -> sub-folder of ComfyUI's models/.
#: ``text_encoders`` is ComfyUI's own key (models/text_encoders); the Flan-T5-XL folder goes there.
MODEL_FOLDERS = {
    "infinity": "infinity",  # Infinity transformers and their VAEs (.pth / .safetensors / sharded folders)
    "ttsvar_rewards": "ttsvar_rewards",  # reward models (ImageReward.pt + med_config.json, HPS_v2.1, ...)
    "ttsvar_features": "ttsvar_features",  # feature extractors for the cluster filter (dinov2-with-registers-large/)
}
MODEL_EXTENSIONS = {".pth", ".pt", ".bin", ".safetensors", ".ckpt"}


def comfy_available() -> bool:
    """True when the pack runs inside ComfyUI (folder_paths importable)."""
    return _folder_paths is not None


def register_model_folders() -> None:
    """Register our folder keys with folder_paths (idempotent); no-op without ComfyUI."""
    if _folder_paths is None:
        return
    for key, sub in MODEL_FOLDERS.items():
        path = os.path.join(_folder_paths.models_dir, sub)
        known = _folder_paths.folder_names_and_paths.get(key)
        if known is None:
            _folder_paths.folder_names_and_paths[key] = ([path], set(MODEL_EXTENSIONS))
        elif path not in known[0]:
            _folder_paths.add_model_folder_path(key, path)


def folder_dirs(key: str) -> list[str]:
    """The directories of a model folder key (ComfyUI's, or the $TTSVAR_MODELS_DIR fallback)."""
    if _folder_paths is not None:
        try:
            return list(_folder_paths.get_folder_paths(key))
        except Exception:  # noqa: BLE001 - unknown key
            return []
    root = os.environ.get("TTSVAR_MODELS_DIR")
    return [os.path.join(root, key)] if root else []


def list_entries(key: str, *, files: bool = True, dirs: bool = True) -> list[str]:
    """Names directly inside the folders of ``key``: model files and/or sub-folders (sharded
    checkpoints, Hugging Face folders). Cheap: one ``os.scandir`` per folder, no recursion."""
    names: set[str] = set()
    for d in folder_dirs(key):
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    if dirs and e.is_dir():
                        names.add(e.name + "/")
                    elif files and e.is_file() and os.path.splitext(e.name)[1].lower() in MODEL_EXTENSIONS:
                        names.add(e.name)
        except OSError:
            continue
    return sorted(names)


def full_path(key: str, name: str) -> str | None:
    """Absolute path of an entry listed by :func:`list_entries`, or None if it is not there."""
    name = name.rstrip("/")
    for d in folder_dirs(key):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def searched(key: str) -> str:
    """Human-readable list of the folders searched for ``key`` (for error messages)."""
    dirs = folder_dirs(key)
    if dirs:
        return ", ".join(dirs)
    return f"no folder (outside ComfyUI set TTSVAR_MODELS_DIR; files go in $TTSVAR_MODELS_DIR/{key})"


# --------------------------------------------------------------------------- graph
#: ComfyUI's built-in output nodes, for when its node registry is not importable (tests).
BUILTIN_OUTPUT_NODES = frozenset({"PreviewImage", "SaveImage"})


def is_output_node(class_type: str) -> bool:
    """True when ComfyUI treats ``class_type`` as an output node (``OUTPUT_NODE``): what it runs
    a submitted graph for. Outside ComfyUI: its built-in image outputs."""
    # ComfyUI's nodes.py is loaded before any pack; looked up, never imported (a folder named
    # "nodes" elsewhere on sys.path, such as this pack's own, must not be mistaken for it).
    comfy_nodes = sys.modules.get("nodes")
    mappings = getattr(comfy_nodes, "NODE_CLASS_MAPPINGS", None)
    if not hasattr(comfy_nodes, "load_custom_node") or not isinstance(mappings, dict):
        return class_type in BUILTIN_OUTPUT_NODES
    return bool(getattr(mappings.get(class_type), "OUTPUT_NODE", False))


# --------------------------------------------------------------------------- devices / memory
def torch_device():
    """ComfyUI's main device, or None outside ComfyUI (the library then keeps its own device)."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return None
    return mm.get_torch_device()


def offload_device():
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return None
    return mm.unet_offload_device()


_PATCHERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _weight_modules(obj: Any) -> list:
    """The nn.Modules holding all of ``obj``'s weights: the library's ``torch_modules()`` (Infinity
    models, T5 encoder, scorers; weightless ones return none), else an Infinity-like object's
    ``transformer`` and ``vae``."""
    import torch

    tm = getattr(obj, "torch_modules", None)
    mods = list(tm()) if callable(tm) else [getattr(obj, n, None) for n in ("transformer", "vae")]
    return [m for m in mods if isinstance(m, torch.nn.Module)]


def _units(obj: Any) -> Iterable[Any]:
    """The objects to manage for ``obj``: a combined reward (its ``rewards`` list) is managed as its
    members, so a reward used both alone and in a combination has one ModelPatcher, not two that
    would move the same weights behind each other's back."""
    members = getattr(obj, "rewards", None)
    if isinstance(members, (list, tuple)):
        for m in members:
            yield from _units(m)
    elif obj is not None:
        yield obj


def _holder_for(obj: Any):
    """A plain nn.Module whose children are the modules holding ``obj``'s weights (None if it has
    none): ComfyUI's ModelPatcher sets bookkeeping attributes on the module it wraps (``device``,
    ``model_loaded_weight_memory``...), so it wraps this holder rather than the library's own
    modules (whose ``device`` may be read-only). Its class is named after ``obj``, because ComfyUI
    logs "Requested to load <class name>" (not "Module")."""
    import torch

    mods = _weight_modules(obj)
    if not mods:
        return None
    label = f"TTS-VAR {getattr(obj, 'name', None) or type(obj).__name__}"
    holder = type(label, (torch.nn.Module,), {"__module__": __name__})()
    for i, m in enumerate(mods):
        holder.add_module(f"m{i}", m)
    return holder


def patcher_for(obj: Any):
    """The ModelPatcher registered for ``obj`` (created on first use), or None for an object without
    weights or outside ComfyUI. One patcher per object, kept while the object lives."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
        import comfy.model_patcher  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return None
    p = _PATCHERS.get(obj)
    if p is None:
        holder = _holder_for(obj)
        if holder is None:
            return None
        p = comfy.model_patcher.ModelPatcher(holder, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
        _PATCHERS[obj] = p
    return p


def load_models(objs: Iterable[Any], memory_required: int = 0) -> None:
    """Put the weights of ``objs`` (Infinity models, text encoders, reward models and feature
    extractors, combined rewards; None and weightless ones are skipped) on ComfyUI's device through
    its model management: a ModelPatcher per object over its ``torch_modules()``, loaded with
    ``load_models_gpu`` right before a node uses them. So the "Unload models" button, OOM recovery
    and other nodes' ``free_memory`` see them and can move them back to the offload device; the
    library reads each object's device from its weights at call time, so such moves are safe.
    Loader nodes load onto the offload device. Outside ComfyUI: a no-op."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return
    patchers, seen = [], set()
    for obj in objs:
        for unit in _units(obj):
            p = patcher_for(unit)
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                patchers.append(p)
    if patchers:
        # Plain nn.Modules cannot be partially loaded (no comfy.ops casts): load fully.
        mm.load_models_gpu(patchers, memory_required=memory_required, force_full_load=True)


def free_after_oom() -> None:
    """After an out-of-memory error: unload what ComfyUI manages and empty the caches."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]

        mm.unload_all_models()
        mm.soft_empty_cache()
        return
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # noqa: BLE001
        pass
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def is_interrupt(exc: BaseException) -> bool:
    """True for ComfyUI's interrupt exception (it must pass through untouched)."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]

        return isinstance(exc, mm.InterruptProcessingException)
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- progress / interrupt
def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel (/interrupt); no-op outside."""
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return
    mm.throw_exception_if_processing_interrupted()


class _NoProgress:
    def __init__(self, total: int):
        self.total = total
        self.current = 0

    def update_absolute(self, value, total=None, preview=None):
        self.current = value

    def update(self, value):
        self.current += value


def progress_bar(total: int):
    """ComfyUI's ProgressBar (each update also checks for interrupt), or a no-op."""
    try:
        import comfy.utils  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return _NoProgress(total)
    return comfy.utils.ProgressBar(total)


def previews_enabled() -> bool:
    """True when ComfyUI was started with a preview method other than none."""
    try:
        from comfy.cli_args import args, LatentPreviewMethod  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return False
    return args.preview_method != LatentPreviewMethod.NoPreviews


def intermediate_device():
    try:
        import comfy.model_management as mm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001
        return None
    return mm.intermediate_device()


def scale_callback(total: int, first: int, preview: Callable[[Any], Any] | None = None):
    """An ``on_scale(scale_index, state)`` callback for the library's sampler: one progress step
    per scale (absolute: scale_index+1 of ``total``), an interrupt check, and an optional preview
    (``preview(state)`` returns a PIL image, only called when ComfyUI shows previews)."""
    bar = progress_bar(total)
    bar.update_absolute(first, total)
    show = preview is not None and previews_enabled()

    def on_scale(scale_index: int, state: Any) -> None:
        check_interrupt()
        pv = None
        if show:
            try:
                img = preview(state)
                if img is not None:
                    pv = ("JPEG", img, 512)
            except Exception:  # noqa: BLE001 - a preview must never break a run
                log.debug("preview failed", exc_info=True)
        bar.update_absolute(scale_index + 1, total, pv)

    return on_scale
