"""TTS-VAR for ComfyUI: test-time scaling for the Infinity text-to-image models.

ComfyUI imports this folder as a module and reads NODE_CLASS_MAPPINGS,
NODE_DISPLAY_NAME_MAPPINGS and WEB_DIRECTORY. The library ``ttsvar`` (no ComfyUI import) lives
next to this file; if it is not installed as a package, this folder is appended to sys.path
(appended, not prepended, so nothing of ComfyUI's is shadowed). Nothing heavy is imported here:
torch and the models load when a node runs.
"""

import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

if importlib.util.find_spec("ttsvar") is None:
    sys.path.append(_HERE)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
