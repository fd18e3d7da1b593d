"""Train the world's text-to-image transformer and its text encoder together.

The transformer is the project's `InfinityTransformer` (official layout, so `load_transformer`,
the CLI, the nodes and the workflows open the result as any Infinity checkpoint); the text encoder
is the tiny T5 of `text_encoder.py`. Both learn from one loss, Infinity's bitwise cross-entropy on
every scale (`ttsvar.infinity.training`), trained the way the official code trains:

* **Pre-encoded latents.** `images` renders of the world's training stream (balanced over GenEval's
  six categories, half the captions fully descriptive; see `training_sample`) are encoded once by
  the world's VAE; a step reads encoder features from memory.
* **Bitwise Self-Correction** (`self_correcting_targets`): some bits of each scale are flipped
  before the next scale's input is made, and the targets re-quantise what is left, so the model
  learns to repair its own sampling errors.
* **CFG dropout**: a row's caption is replaced by the model's learned null text `cfg_uncond`
  (cut to the caption's length, as `uncond_text` does at inference) with probability `cfg_drop`.
* **Coarse rows.** Besides `batch` whole sequences, each step trains `coarse_batch` more images on
  their first `coarse_scales` scales only (121 of 521 tokens). With the block-causal mask these
  tokens are computed exactly as in the whole sequence; they carry the layout, the colours and the
  counts, which decide most of the checker's verdicts, at a quarter of a whole row's cost.
* AdamW, linear warm-up then cosine decay; every random choice of step `s` comes from `(seed, s)`
  alone, so a run is deterministic and `--resume` continues exactly where it stopped.

    python -m ttsvar.world train t2i            # reads weights/vae.safetensors, writes transformer + text_encoder/
    python -m ttsvar.world train t2i --steps 20 --out /tmp/w --resume
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingWeightsError, TTSVarError
from ..infinity.bsq import self_correcting_targets
from ..infinity.grids import resolve_grid
from ..infinity.training import SequenceLayout, bitwise_loss, encode_text_batch, forward_sequence
from ..infinity.transformer import InfinityArch, InfinityTransformer
from .files import save_atomically
from .text_encoder import TextEncoderConfig, build_tokenizer, encode_captions, new_text_encoder, save_text_encoder

PN = "0.06M"
TRANSFORMER_NAME = "transformer.safetensors"
TEXT_ENCODER_DIR = "text_encoder"
VAE_NAME = "vae.safetensors"
CHECKPOINT_NAME = "checkpoints/t2i.pt"
LATENTS_NAME = "checkpoints/t2i_latents.pt"
EVAL_SEED = 20261125
"""Held-out scenes: `prompt_set(n, EVAL_SEED)` drawn with a seed no training stream uses."""


@dataclass(frozen=True)
class T2ITrainConfig:
    """Everything a run depends on; a checkpoint resumes only under an equal config (steps aside)."""

    seed: int = 0
    steps: int = 3000
    batch: int = 8
    coarse_batch: int = 24
    coarse_scales: int = 5
    coarse_weight: float = 0.5
    images: int = 16000
    lr: float = 2.5e-3
    warmup: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 2.0
    cfg_drop: float = 0.1
    max_flip: float = 0.1
    depth: int = 4
    width: int = 192
    heads: int = 3
    ffn: int = 384
    pool_heads: int = 2
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    checkpoint_every: int = 25

    def arch(self, token_bits: int) -> InfinityArch:
        return InfinityArch(depth=self.depth, embed_dim=self.width, num_heads=self.heads,
                            text_channels=self.text.channels, pool_heads=self.pool_heads, token_bits=token_bits,
                            ffn_hidden=self.ffn)

    def identity(self) -> str:
        """The config as JSON without the run length, to check a checkpoint belongs to this run."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("steps", "checkpoint_every")}
        return json.dumps(fields, sort_keys=True)


# ---- data -------------------------------------------------------------------------------------


@dataclass
class LatentDataset:
    """Encoder features [N, d, 16, 16] (float32) of the training renders and their captions."""

    features: torch.Tensor
    captions: list[str]


def _vae_digest(vae) -> str:
    h = hashlib.sha256()
    for key, value in sorted(vae.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_dataset(vae, config: T2ITrainConfig, *, cache: Path | None = None, progress: bool = True,
                   chunk: int = 64) -> LatentDataset:
    """Render and encode the first `config.images` examples of the training stream `config.seed`
    (re-read from `cache` when it was written for the same VAE, seed and size)."""
    from tqdm import tqdm

    from .render import render
    from .scenes import training_sample
    from .train_vae import IMAGE_SIZE, to_tensor

    key = f"{config.seed}/{config.images}/{_vae_digest(vae)}"
    if cache is not None and cache.exists():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            return LatentDataset(stored["features"], list(stored["captions"]))
    features, captions = [], []
    for start in tqdm(range(0, config.images, chunk), desc="encoding the world's renders", disable=not progress,
                      dynamic_ncols=True):
        samples = [training_sample(config.seed, i) for i in range(start, min(start + chunk, config.images))]
        images = np.stack([render(s.scene, IMAGE_SIZE) for s in samples])
        features.append(vae.encode_features(to_tensor(images)).cpu())
        captions += [s.caption for s in samples]
    data = LatentDataset(torch.cat(features), captions)
    if cache is not None:
        save_atomically({"key": key, "features": data.features, "captions": data.captions}, cache)
    return data


@dataclass
class StepPlan:
    """The random choices of one step: which images, which captions are dropped, the flip seed."""

    indices: np.ndarray
    dropped: np.ndarray
    flip_seed: int


def step_plan(config: T2ITrainConfig, step: int, dataset_size: int) -> StepPlan:
    rng = np.random.default_rng([config.seed, step, 0x7215])
    rows = config.batch + config.coarse_batch
    indices = rng.choice(dataset_size, rows, replace=False)
    return StepPlan(indices, rng.random(rows) < config.cfg_drop, int(rng.integers(2**62)))


# ---- model and loss ---------------------------------------------------------------------------


def _initialise(model: InfinityTransformer) -> None:
    """A trainable start (the official recipe in spirit): small normal weights, zero biases, the
    residual branches' gates (`ada_gss` + shared AdaLN) at zero so every block starts as the identity."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale_mul_1H11"):
                p.fill_(math.log(4.0))
            elif name.endswith(("norm.weight", "ca_norm.weight")):
                p.fill_(1.0)
            elif name.endswith("ada_gss") or name.startswith("shared_ada_lin.1"):
                p.zero_()
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)


def new_models(config: T2ITrainConfig, token_bits: int) -> tuple[InfinityTransformer, torch.nn.Module]:
    """Freshly initialised transformer and text encoder (float32, training mode), identical for equal seeds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        transformer = InfinityTransformer(config.arch(token_bits))
        _initialise(transformer)
    return transformer.train(), new_text_encoder(config.text, config.seed + 1)


def _parameter_groups(*modules: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the matrices of linear layers only (not on embeddings, norms, biases, gates)."""
    decay, plain = [], []
    for module in modules:
        for name, p in module.named_parameters():
            is_matrix = p.ndim == 2 and not any(k in name for k in ("embed", "shared", "cfg_uncond"))
            (decay if is_matrix else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def learning_rate(config: T2ITrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth (a function of the step alone, so resuming is exact)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(config.steps - config.warmup, 1)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


class Trainer:
    """The models, the optimiser and the data of one run; `step(s)` trains step s."""

    def __init__(self, config: T2ITrainConfig, data: LatentDataset, device: str = "cpu"):
        self.config, self.data, self.device = config, data, torch.device(device)
        self.grid = resolve_grid(aspect=1.0, pn=PN)
        d = data.features.shape[1]
        self.transformer, self.text_encoder = new_models(config, d)
        self.transformer.to(self.device)
        self.text_encoder.to(self.device)
        self.tokenizer = build_tokenizer()
        self.layout = SequenceLayout.build(self.grid, self.transformer.arch.head_dim, self.device)
        self.coarse = self.layout.prefix(self.grid.token_offset(config.coarse_scales))
        self.optimizer = torch.optim.AdamW(_parameter_groups(self.transformer, self.text_encoder,
                                                             weight_decay=config.weight_decay),
                                           lr=config.lr, betas=(0.9, 0.97))

    def _texts(self, plan: StepPlan) -> list[torch.Tensor]:
        captions = [self.data.captions[i] for i in plan.indices]
        features = encode_captions(self.text_encoder, self.tokenizer, captions)
        return [self.transformer.uncond_text(f.shape[0]) if drop else f for f, drop in zip(features, plan.dropped)]

    def loss(self, step: int) -> torch.Tensor:
        """The loss of step `step`: whole rows + `coarse_weight` × coarse rows."""
        c = self.config
        plan = step_plan(c, step, len(self.data.captions))
        features = self.data.features[torch.from_numpy(plan.indices)].to(self.device)
        inputs, targets = self_correcting_targets(features, self.grid.scales, c.max_flip,
                                                  torch.Generator().manual_seed(plan.flip_seed))
        texts = self._texts(plan)
        t, b, n = self.transformer, c.batch, self.coarse.scale_of_token.numel()
        whole = forward_sequence(t, encode_text_batch(t, texts[:b]), inputs[:b], self.layout)
        loss = bitwise_loss(whole, targets[:b], self.layout)
        if c.coarse_batch:
            coarse = forward_sequence(t, encode_text_batch(t, texts[b:]), inputs[b:, : n - 1], self.coarse)
            loss = loss + c.coarse_weight * bitwise_loss(coarse, targets[b:, :n], self.coarse)
        return loss

    def step(self, step: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, step)
        loss = self.loss(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    # ---- checkpoints ----

    def save_checkpoint(self, path: Path, step: int) -> None:
        save_atomically({"transformer": self.transformer.state_dict(), "text_encoder": self.text_encoder.state_dict(),
                         "optimizer": self.optimizer.state_dict(), "step": step, "config": self.config.identity()}, path)

    def load_checkpoint(self, path: Path) -> int:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("config") != self.config.identity():
            raise TTSVarError(
                f"checkpoint '{path}' was written by a run with other settings ({state.get('config')}); "
                "resume with the same options, or delete it to start over."
            )
        self.transformer.load_state_dict(state["transformer"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])

    def export(self, out_dir: Path) -> None:
        """bf16 `transformer.safetensors` (official layout) and the `text_encoder/` HF folder."""
        from safetensors.torch import save_file

        from ..infinity.weights import official_state

        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(torch.bfloat16).contiguous() for k, v in official_state(self.transformer).items()}
        save_file(state, str(out_dir / TRANSFORMER_NAME), metadata={"format": "pt", "what": "ttsvar world transformer"})
        save_text_encoder(self.text_encoder, self.tokenizer, out_dir / TEXT_ENCODER_DIR)


def train_t2i(config: T2ITrainConfig, vae, out_dir: str | Path, *, resume: bool = False, device: str = "cpu",
              progress: bool = True, export: bool = True) -> Trainer:
    """Train to `config.steps` (continuing a checkpoint in `out_dir` when `resume`), write the
    weights to `out_dir` when `export`; `vae` is the world's VAE (with its encoder)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    data = encode_dataset(vae, config, cache=out_dir / LATENTS_NAME, progress=progress)
    trainer = Trainer(config, data, device)
    checkpoint = out_dir / CHECKPOINT_NAME
    start = trainer.load_checkpoint(checkpoint) if resume and checkpoint.exists() else 0
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="world transformer",
               disable=not progress, dynamic_ncols=True)
    for step in bar:
        loss = trainer.step(step)
        bar.set_postfix(loss=f"{loss:.4f}")
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            trainer.save_checkpoint(checkpoint, done)
    trainer.transformer.eval().requires_grad_(False)
    trainer.text_encoder.eval().requires_grad_(False)
    if export:
        trainer.export(out_dir)
    return trainer


# ---- evaluation -------------------------------------------------------------------------------


def evaluate_raw(model, text_encoder, n: int = 960, seed: int = EVAL_SEED, *, cfg: float = 3.0,
                 progress: bool = True) -> dict:
    """The checker's accuracy of one raw sample per prompt (library defaults but `cfg`) on the held
    prompt set `prompt_set(n, seed)`: overall and per category, with the counts. The default 960
    prompts (about 2 min on 2 CPU cores) put the standard error near 1.3 points, so two runs of the
    training can be compared to within a few points; 240 prompts would leave 2.7."""
    from tqdm import tqdm

    from ..pipelines import run_strategy
    from .checker import check
    from .prompts import prompt_set

    grid = resolve_grid(aspect=1.0, pn=PN)
    solved: dict[str, list[bool]] = defaultdict(list)
    for i, metadata in enumerate(tqdm(prompt_set(n, seed=seed), desc="raw accuracy", disable=not progress,
                                      dynamic_ncols=True)):
        condition = text_encoder.encode(metadata["prompt"])
        image = run_strategy(model, condition, strategy="raw", n=1, grid=grid, cfg=cfg, seed=i).images[0]
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        solved[metadata["tag"]].append(check(pixels, metadata).correct)
    every = [v for values in solved.values() for v in values]
    return {"n": len(every), "accuracy": float(np.mean(every)),
            "per_tag": {tag: {"accuracy": float(np.mean(v)), "n": len(v)} for tag, v in solved.items()}}


def format_accuracy(report: dict) -> str:
    lines = [f"raw accuracy {100 * report['accuracy']:.1f}% of {report['n']} held prompts"]
    lines += [f"  {tag:14s} {100 * r['accuracy']:5.1f}% of {r['n']}" for tag, r in report["per_tag"].items()]
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------


def find_vae(out_dir: Path) -> Path:
    """The VAE to encode with: `out_dir`'s (as `train all` writes it), else the package's own."""
    from .__main__ import WEIGHTS_DIR

    for candidate in (out_dir / VAE_NAME, WEIGHTS_DIR / VAE_NAME):
        if candidate.is_file():
            return candidate
    raise MissingWeightsError("the world's VAE (vae.safetensors)", str(out_dir),
                              "Train it first: python -m ttsvar.world train vae --out " + str(out_dir))


def train_from_args(args: argparse.Namespace) -> None:
    """`python -m ttsvar.world train t2i`: train, export to `--out`, report the raw accuracy."""
    from ..infinity.model import load_infinity
    from ..infinity.text import load_text_encoder
    from ..infinity.vae import load_vae

    out = Path(args.out)
    vae_path = find_vae(out)
    config = T2ITrainConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    train_t2i(config, load_vae(vae_path), out, resume=args.resume, device=args.device)
    model = load_infinity(out / TRANSFORMER_NAME, vae_path, device="cpu")  # the bf16 files, upcast, as users get them
    encoder = load_text_encoder(out / TEXT_ENCODER_DIR)
    print(f"world transformer → {out / TRANSFORMER_NAME}, text encoder → {out / TEXT_ENCODER_DIR}")
    print(format_accuracy(evaluate_raw(model, encoder)))
