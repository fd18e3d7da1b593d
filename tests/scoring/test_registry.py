"""Cheap import, the family registry, loading through it."""

import subprocess
import sys

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.scoring import LOADERS, load


def test_import_is_cheap():
    code = ("import sys, ttsvar.scoring as s; s.LOADERS; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_registry_names_and_metadata():
    assert set(LOADERS) == {"imagereward", "hpsv2", "clip", "aesthetic", "pickscore", "dinov2", "clip-features",
                            "world-reward", "world-features"}
    for name, spec in LOADERS.items():
        assert spec.name == name and spec.kind in ("reward", "features") and spec.sources
        assert callable(spec.load)


def test_load_through_registry(tiny_dirs, images):
    r = LOADERS["clip"](tiny_dirs["clip"])
    assert r.score(images, ["a cat"] * 4).shape == (4,)
    f = load("dinov2", tiny_dirs["dinov2"], mode="pool", image_size=32)
    assert f.features(images).shape == (4, 32)
    ir = load("imagereward", tiny_dirs["imagereward"], dtype=torch.float32)
    assert ir.score(images[:1], ["a cat"]).shape == (1,)
    with pytest.raises(TTSVarError, match="Unknown scoring model family"):
        load("siglip", tiny_dirs["clip"])
