"""Checkpoint and cache files of the world's trainers."""

from __future__ import annotations

from pathlib import Path

import torch


def save_atomically(obj: object, path: Path) -> None:
    """`torch.save` to a temporary file beside `path`, then rename: an interrupted save never leaves
    a torn checkpoint or cache for `--resume` to trip on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
