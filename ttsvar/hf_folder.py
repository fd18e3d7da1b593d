"""Hugging Face model folders, loaded strictly and quietly.

``from_pretrained`` re-initialises every weight a folder lacks (or holds with the wrong shape) at
random and only logs a table about it: a half-downloaded folder then gives a model that silently
computes noise. :func:`load_pretrained` turns every such problem into one :class:`TTSVarError`
that lists the weights, names the folder and the repository to download again.

Loads are also quiet: transformers' log, progress bars and Python warnings are kept off the
console while a folder loads (a ComfyUI console should not show a table of the text-tower weights
a vision-only load skips). Nothing is lost by that: what would matter is raised as an error, with
transformers' collected log when a load fails inside it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ttsvar.errors import MissingWeightsError, TTSVarError

# Buffers that older transformers versions saved and newer ones recompute.
ALWAYS_HARMLESS = ("position_ids",)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_ANSI.sub("", record.getMessage()))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[list[str]]:
    """Keep transformers' log, its progress bars and Python warnings off the console for the
    duration; yields the list its warnings are collected in instead (for an error message).
    The previous settings are restored afterwards."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    root = logging.getLogger("transformers")  # the library's root logger, which owns its handler
    handlers, level, propagate = root.handlers[:], root.level, root.propagate
    collect = _Collect()
    root.handlers, root.propagate = [collect], False
    root.setLevel(logging.WARNING)
    bars = hf_logging.is_progress_bar_enabled()
    hub_bars_off = hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield collect.messages
    finally:
        root.handlers, root.propagate = handlers, propagate
        root.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()
        if hub_bars_off:
            hub_utils.disable_progress_bars()


def load_pretrained(cls, folder: str | Path, *, what: str, repo: str, dtype: torch.dtype | None = None, config=None,
                    harmless: Sequence[str] = (), remedy: str | None = None):
    """``cls.from_pretrained(folder)`` from local files only, refusing an incomplete folder.

    Every weight of the model must be in the folder with its shape. Weights the folder has and
    the model does not are refused too, except those starting with one of ``harmless`` (e.g. the
    text tower when only the vision tower is built) and old ``position_ids`` buffers. ``what``
    names the model in messages; ``repo`` is the Hugging Face repository to download it from;
    ``remedy`` replaces that advice for folders that come from elsewhere (e.g. made by this project).
    """
    remedy = remedy or f"Download the complete folder from the Hugging Face repository {repo}."
    folder = Path(folder)
    kwargs = {"config": config} if config is not None else {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    log: list[str] = []
    try:
        with quiet_transformers() as log:
            model, info = cls.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                              ignore_mismatched_sizes=True, **kwargs)
    except OSError as e:
        raise MissingWeightsError(f"{what} files", str(folder), f"{remedy} ({e})") from e
    except Exception as e:  # a truncated or corrupt weight file, a config the class cannot read, …
        details = "".join(f"\n{m}" for m in log)  # e.g. the table an error message refers to
        raise TTSVarError(f"Could not load {what} from {folder}: {type(e).__name__}: {e}{details}\n{remedy}") from e
    _check_loading_info(model, info, folder=folder, what=what, remedy=remedy, harmless=harmless)
    return model


def _check_loading_info(model: torch.nn.Module, info: dict, *, folder: Path, what: str, remedy: str,
                       harmless: Sequence[str] = ()) -> None:
    """Raise one error listing what ``from_pretrained``'s loading info says is wrong."""
    harmless = tuple(harmless)
    missing = sorted(info.get("missing_keys", ()))
    wrong = sorted(_wrong_shape(entry, model) for entry in info.get("mismatched_keys", ()))
    unexpected = sorted(k for k in info.get("unexpected_keys", ())
                        if not k.startswith(harmless) and not k.endswith(ALWAYS_HARMLESS))
    errors = list(info.get("error_msgs", ()))
    if not (missing or wrong or unexpected or errors):
        return
    raise TTSVarError(
        f"{what} in {folder} does not hold the weights its config.json describes (an incomplete download, or "
        "files of different models in one folder):\n"
        + _listing("missing weights", missing)
        + _listing("wrong shapes", wrong)
        + _listing("unexpected weights", unexpected)
        + _listing("errors", errors)
        + remedy
    )


def _wrong_shape(entry, model: torch.nn.Module) -> str:
    if isinstance(entry, str):  # transformers 4 names the weight only
        return f"{entry}: model {tuple(model.state_dict()[entry].shape)}, the file's differs"
    key, got, want = entry
    return f"{key}: file {tuple(got)} vs model {tuple(want)}"


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    if not items:
        return ""
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}): {', '.join(items[:limit])}{more}\n"
