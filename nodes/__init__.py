"""ComfyUI node classes of the TTS-VAR pack (thin wrappers around the ``ttsvar`` library)."""

from __future__ import annotations

from . import comfy_bridge
from .loaders import NODES as _LOADER_NODES
from .pipeline import NODES as _PIPELINE_NODES

comfy_bridge.register_model_folders()

_ALL = {**_LOADER_NODES, **_PIPELINE_NODES}

NODE_CLASS_MAPPINGS = {node_id: cls for node_id, (cls, _) in _ALL.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_, name) in _ALL.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
