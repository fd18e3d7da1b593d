"""Train the world's BSQ VAE: the project's `BSQVAE` (official layout) on 64×64 renders of the world.

Geometry (fixed for every part of the world model): stride 4 (three levels, two resampling), a
16×16 latent of d = 16 bits, quantised on the seven grids of `pn 0.06M` (1, 2, 4, 6, 8, 12, 16 per
side) with the straight-through multi-scale BSQ of `ttsvar.infinity.bsq`, exactly as `BSQVAE.encode`
quantises at inference. Loss: L1 and squared error on pixels (the squared error weights the
few object pixels, far off while the model draws only the background, above the many background
ones: with L1 alone objects were faint blobs after 200 steps, with it clear blobs after 50), and
L1 on horizontal/vertical differences (keeps the flat shapes' edges sharp, which the checker's
shape test needs).

Data: image `i` of the stream `seed` is drawn on the fly from `(seed, i)` alone, so a run is
deterministic, can resume anywhere and never stores a dataset. Most images are the world's own
training scenes (`training_sample`); the rest are "free" scenes a generator may produce — zero to
five objects of any shape, colour and size anywhere, overlapping or cut by the border, some
blurred — so the decoder is not taught that only well-formed scenes exist.

    python -m ttsvar.world train vae                       # writes ttsvar/world/weights/vae.safetensors
    python -m ttsvar.world train vae --steps 100 --out /tmp/w --resume
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from ..errors import TTSVarError
from ..infinity.bsq import quantize_ste
from ..infinity.grids import resolve_grid
from ..infinity.vae import BSQVAE, VAEConfig
from .files import save_atomically
from .render import render
from .scenes import Scene, SceneObject, sample_background, training_sample
from .vocab import COLORS, SHAPES

IMAGE_SIZE = 64
PN = "0.06M"
WEIGHTS_NAME = "vae.safetensors"
CHECKPOINT_NAME = "checkpoints/vae.pt"
FREE_SCENE_FRACTION = 0.25
"""Share of training images that are free scenes (see the module docstring)."""


@dataclass(frozen=True)
class VAETrainConfig:
    """Everything a run depends on; a checkpoint resumes only under an equal config (steps aside)."""

    seed: int = 0
    steps: int = 1600
    batch: int = 8
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.01
    codebook_dim: int = 16
    base_ch: int = 48
    ch_mult: tuple[int, ...] = (1, 1, 1)
    num_res_blocks: int = 1
    edge_weight: float = 1.0
    mse_weight: float = 4.0
    commit_weight: float = 0.0
    checkpoint_every: int = 50
    grids: tuple[tuple[int, int], ...] = field(default_factory=lambda: resolve_grid(aspect=1.0, pn=PN).scales)

    def model_config(self) -> VAEConfig:
        return VAEConfig.standard(self.codebook_dim, self.base_ch, self.ch_mult, self.num_res_blocks)

    def identity(self) -> str:
        """The config as JSON without the run length, to check a checkpoint belongs to this run."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("steps", "checkpoint_every")}
        return json.dumps(fields, sort_keys=True)


# ---- data -------------------------------------------------------------------------------------


def _free_scene(rng: np.random.Generator) -> Scene:
    objects = tuple(
        SceneObject(
            shape=SHAPES[int(rng.integers(len(SHAPES)))],
            color=list(COLORS)[int(rng.integers(len(COLORS)))],
            center=(float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95))),
            size=float(rng.uniform(0.08, 0.4)),
        )
        for _ in range(int(rng.integers(0, 6)))
    )
    return Scene(sample_background(rng), objects)


def training_image(seed: int, index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Image `index` of the VAE's training stream `seed`: uint8 [size, size, 3]."""
    rng = np.random.default_rng([seed, index, 0x5AE])
    if rng.random() >= FREE_SCENE_FRACTION:
        return render(training_sample(seed, index).scene, size)
    image = render(_free_scene(rng), size)
    if rng.random() < 0.4:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2)))))
    return image


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] → float32 [B, 3, H, W] in [−1, 1] (the VAE's image range)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def training_batch(seed: int, step: int, batch: int) -> torch.Tensor:
    """The batch of `step`: images `step·batch … step·batch + batch − 1` of the stream."""
    return to_tensor(np.stack([training_image(seed, step * batch + k) for k in range(batch)]))


# ---- model and loss ---------------------------------------------------------------------------


def new_vae(config: VAETrainConfig) -> BSQVAE:
    """A freshly initialised VAE in training mode, identical for equal seeds (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = BSQVAE(config.model_config())
    return model.train()


def reconstruction_loss(model: BSQVAE, images: torch.Tensor, config: VAETrainConfig) -> tuple[torch.Tensor, dict]:
    """(total loss, its parts as floats) for one batch: pixel L1 + squared error + edge L1 (+ BSQ commitment if weighted).

    The commitment term is off by default: with weight 0.25 (with or without a term pulling the
    features to their summed codes) the codes collapsed within 200 steps to one pattern for every
    image (zero variance of every bit over a batch) and the decoder drew the mean background.
    """
    summed, _, commit = quantize_ste(model.encode_features(images), config.grids)
    recon = model.decoder(summed)
    pixel = (recon - images).abs().mean()
    squared = (recon - images).pow(2).mean()
    edge = ((recon.diff(dim=-1) - images.diff(dim=-1)).abs().mean()
            + (recon.diff(dim=-2) - images.diff(dim=-2)).abs().mean())
    total = pixel + config.mse_weight * squared + config.edge_weight * edge + config.commit_weight * commit
    return total, {"pixel": float(pixel.detach()), "squared": float(squared.detach()), "edge": float(edge.detach()), "commit": float(commit.detach())}


def learning_rate(config: VAETrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth (a function of the step alone, so resuming is exact)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(config.steps - config.warmup, 1)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


# ---- checkpoints and export -------------------------------------------------------------------


def _save_checkpoint(path: Path, model: BSQVAE, optimizer: torch.optim.Optimizer, step: int,
                     config: VAETrainConfig) -> None:
    save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "config": config.identity()}, path)


def _load_checkpoint(path: Path, model: BSQVAE, optimizer: torch.optim.Optimizer, config: VAETrainConfig) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config") != config.identity():
        raise TTSVarError(
            f"checkpoint '{path}' was written by a run with other settings ({state.get('config')}); "
            "resume with the same options, or delete it to start over."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def export_weights(model: BSQVAE, path: str | Path) -> Path:
    """Write the VAE as bf16 safetensors in the official key layout (`load_vae` opens it)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        key: (value.detach().to(torch.bfloat16) if value.is_floating_point() else value.detach().clone()).contiguous()
        for key, value in model.state_dict().items()
    }
    save_file(state, str(path), metadata={"format": "pt", "what": "ttsvar world BSQ VAE"})
    return path


# ---- training ---------------------------------------------------------------------------------


def train_vae(config: VAETrainConfig, out_dir: str | Path, *, resume: bool = False, device: str = "cpu",
              progress: bool = True, export: bool = True) -> BSQVAE:
    """Train to `config.steps` (continuing a checkpoint in `out_dir` when `resume`), write
    `out_dir/vae.safetensors` when `export`, and return the model (float32, eval mode)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    checkpoint = out_dir / CHECKPOINT_NAME
    model = new_vae(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    if resume and checkpoint.exists():
        start = _load_checkpoint(checkpoint, model, optimizer, config)
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="world VAE",
               disable=not progress, dynamic_ncols=True)
    step = start
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss, parts = reconstruction_loss(model, training_batch(config.seed, step, config.batch).to(device), config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", l1=f"{parts['pixel']:.4f}")
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save_checkpoint(checkpoint, model, optimizer, done, config)
    model.eval().requires_grad_(False)
    if export:
        export_weights(model, out_dir / WEIGHTS_NAME)
    return model


# ---- evaluation -------------------------------------------------------------------------------


EVAL_SEED = 20261125
"""Held-out prompts and scenes: a seed no training stream uses (training draws from `training_sample`)."""
REPORT_PROMPTS = 200
"""Held-out prompts the train command reports on (the benchmark `bench_world_vae.py` takes more)."""


@torch.no_grad()
def evaluate_reconstruction(model: BSQVAE, n: int = 200, seed: int = EVAL_SEED, batch: int = 50) -> dict:
    """PSNR (dB, on 0..255) and the checker's pass rate on VAE reconstructions of `n` held-out
    renders (encode → multi-scale BSQ on all 7 scales → decode), with the pass rate on the renders."""
    from .checker import check
    from .prompts import prompt_set
    from .scenes import sample_scene

    grids = resolve_grid(aspect=1.0, pn=PN).scales
    rng = np.random.default_rng(seed)
    prompts = prompt_set(n, seed=seed)
    renders = np.stack([render(sample_scene(rng, m), IMAGE_SIZE) for m in prompts])
    recons = []
    for start in range(0, n, batch):
        _, summed = model.encode(to_tensor(renders[start:start + batch]), grids)
        recons.append(model.decode(summed).cpu())
    recon = ((torch.cat(recons).permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    mse = ((recon.astype(np.float64) - renders.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    psnr = float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))
    passed = [check(image, m).correct for image, m in zip(recon, prompts)]
    baseline = [check(image, m).correct for image, m in zip(renders, prompts)]
    return {"n": n, "psnr": psnr, "pass_rate": float(np.mean(passed)), "render_pass_rate": float(np.mean(baseline))}


# ---- command line -----------------------------------------------------------------------------


def train_from_args(args: argparse.Namespace) -> None:
    """`python -m ttsvar.world train vae`: train, export to `--out`, report on held-out renders."""
    from ..infinity.vae import load_vae

    config = VAETrainConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    out = Path(args.out)
    train_vae(config, out, resume=args.resume, device=args.device)
    vae = load_vae(out / WEIGHTS_NAME)  # the bf16 file, upcast, as users get it
    report = evaluate_reconstruction(vae, n=REPORT_PROMPTS)
    print(f"world VAE → {out / WEIGHTS_NAME}: PSNR {report['psnr']:.2f} dB, checker passes "
          f"{100 * report['pass_rate']:.1f}% of {report['n']} held-out reconstructions "
          f"({100 * report['render_pass_rate']:.1f}% of the renders)")
