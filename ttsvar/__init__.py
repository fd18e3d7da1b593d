"""TTS-VAR: test-time scaling for visual auto-regressive (Infinity) image models.

The package is importable without torch-heavy side effects: submodules load models only
when their functions are called.
"""

__version__ = "0.1.0"
