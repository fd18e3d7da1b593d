"""Shared fixtures: the official reference outputs (inside the repository), the official checkpoint
layouts written from them, a tiny random model, simple verifiers.

Thread count: `TTSVAR_TEST_THREADS=<n>` sets torch's intra-op threads for the whole run (default:
at most 2), so that the suite can be checked under other thread counts the way another machine
would run it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

REFERENCE = Path(__file__).resolve().parent / "data" / "infinity_tiny"
THREADS_ENV = "TTSVAR_TEST_THREADS"


def pytest_configure(config) -> None:
    wanted = os.environ.get(THREADS_ENV)
    if wanted is None:
        torch.set_num_threads(min(2, torch.get_num_threads()))
        return
    if not wanted.isdigit() or int(wanted) < 1:
        raise pytest.UsageError(f"{THREADS_ENV} must be a positive integer, got {wanted!r}")
    torch.set_num_threads(int(wanted))


def pytest_report_header(config) -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"


# ---- official reference outputs (tests/data/infinity_tiny, see its README) ----------------------


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Read-only: `transformer.safetensors`, `vae.safetensors` (bf16), `config.json`, `case_*.safetensors`."""
    return REFERENCE


@pytest.fixture(scope="session")
def reference_cases(reference_dir) -> dict:
    return json.loads((reference_dir / "config.json").read_text())["cases"]


def write_plain_pth(state: dict[str, torch.Tensor], path: Path) -> Path:
    """A plain state dict, like `infinity_2b_reg.pth`."""
    torch.save(state, path)
    return path


def write_wrapped_pth(state: dict[str, torch.Tensor], path: Path, key: str = "vae") -> Path:
    """A state dict nested under one key, like `{"vae": sd}` in `infinity_vae_d32reg.pth`."""
    torch.save({key: state}, path)
    return path


def write_sharded(state: dict[str, torch.Tensor], folder: Path, shards: int = 2) -> Path:
    """Safetensors shards plus `model.safetensors.index.json`, like `infinity_8b_weights/`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    per = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i * per : (i + 1) * per]
        save_file({k: state[k].contiguous() for k in part}, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


@dataclass(frozen=True)
class ReferenceFiles:
    """The reference weights in every layout the loaders accept (bf16, as stored in the release)."""

    transformer_safetensors: Path
    vae_safetensors: Path
    transformer_pth: Path  # plain state dict
    vae_pth: Path  # {"vae": state_dict}
    transformer_sharded: Path  # folder: two shards + index


@pytest.fixture(scope="session")
def reference_files(reference_dir, tmp_path_factory) -> ReferenceFiles:
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("reference_layouts")
    transformer = load_file(str(reference_dir / "transformer.safetensors"))
    vae = load_file(str(reference_dir / "vae.safetensors"))
    return ReferenceFiles(
        transformer_safetensors=reference_dir / "transformer.safetensors",
        vae_safetensors=reference_dir / "vae.safetensors",
        transformer_pth=write_plain_pth(transformer, folder / "transformer.pth"),
        vae_pth=write_wrapped_pth(vae, folder / "vae.pth"),
        transformer_sharded=write_sharded(transformer, folder / "transformer_sharded"),
    )


@pytest.fixture(scope="session")
def sharded_writer() -> Callable[[dict[str, torch.Tensor], Path], Path]:
    """`write_sharded` for tests that shard a modified state dict themselves."""
    return write_sharded


def load_reference_case(reference_dir: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(reference_dir / f"case_{name}.safetensors"))


@pytest.fixture(scope="session")
def reference_case(reference_dir) -> Callable[[str], dict[str, torch.Tensor]]:
    """`reference_case("square")`: the tensors of one case (fresh copies on every call)."""
    return lambda name: load_reference_case(reference_dir, name)


# ---- tiny random model and instant verifiers --------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model():
    from ttsvar.infinity.tiny import tiny_random_model

    return tiny_random_model(seed=0)


@pytest.fixture(scope="session")
def tiny_condition(tiny_model):
    from ttsvar.infinity.tiny import tiny_text_encoder

    return tiny_text_encoder(tiny_model).encode("a red fox in the snow")


@pytest.fixture(scope="session")
def grid():
    from ttsvar.infinity.grids import resolve_grid

    return resolve_grid(pn="0.06M")


class MeanReward:
    """Reward = mean brightness (+ a per-candidate bias when given): deterministic, instant."""

    name = "mean-brightness"
    input_size = 32

    def score(self, images, prompts):
        assert len(prompts) == images.shape[0]
        return images.float().mean(dim=(1, 2, 3))


@pytest.fixture
def reward():
    return MeanReward()


@pytest.fixture
def extractor():
    from ttsvar.scoring.classic import ThumbnailFeatures

    return ThumbnailFeatures(side=4)
