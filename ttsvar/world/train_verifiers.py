"""Train the world's verifiers: a small CLIP (``transformers.CLIPModel``) learnt contrastively on
rendered scenes, with hard negatives, on images degraded like a generator's output.

Each step draws ``pairs`` examples of the world's training stream (``scenes.training_sample``:
GenEval prompts and full scene descriptions) and, for each, a **near-miss twin**: a scene drawn
for a caption one edit away (``near_miss``), with that caption. Every image also gets
``negatives`` near-miss captions of its own. All images go through ``degrade``. The loss is
CLIP's symmetric InfoNCE over the whole batch (image → every caption in it, caption → every
image), where a caption that is also true of another image (by GenEval's rules on the ground
truth: "a photo of a circle" is true of many scenes) is left out of that image's denominator
instead of being pushed away. The twins make each caption's nearest wrong image part of its
softmax, the extra captions each image's nearest wrong captions.

Deterministic from the seed: the data of step ``s`` is a function of (seed, s) alone, the model
starts from a seeded initialisation, and the learning rate is a function of the step. A
checkpoint holds the model, the optimiser state and the step, so a resumed run continues
exactly where it stopped (``--resume``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TTSVarError
from ..scoring import world as W
from . import near_miss as NM
from .degrade import degrade
from .files import save_atomically
from .render import render
from .scenes import training_sample
from .vocab import SHAPES, VOCABULARY

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
"""Ids 0..3. The end-of-text id must not be 2: CLIPTextModel treats eos_token_id == 2 as an old
config and pools at the largest token id instead of at the first end-of-text token."""
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.25, 0.25, 0.25)
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class VerifierConfig:
    """Architecture and training settings (stored in the checkpoint; a resumed run must match)."""

    image_size: int = 64
    patch_size: int = 8
    width: int = 128
    vision_layers: int = 4
    text_layers: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    projection: int = 128
    context: int = 24
    pairs: int = 32
    negatives: int = 2
    steps: int = 300
    lr: float = 1e-3
    warmup: int = 30
    weight_decay: float = 0.05
    checkpoint_every: int = 25

    def clip_config(self) -> dict:
        """The ``CLIPConfig`` keyword arguments of this architecture."""
        vocab = len(SPECIAL_TOKENS) + len(VOCABULARY)
        common = dict(hidden_size=self.width, intermediate_size=self.width * self.mlp_ratio,
                      num_attention_heads=self.heads, projection_dim=self.projection)
        return dict(
            text_config=dict(common, vocab_size=vocab, num_hidden_layers=self.text_layers,
                             max_position_embeddings=self.context, pad_token_id=0, bos_token_id=2, eos_token_id=3),
            vision_config=dict(common, num_hidden_layers=self.vision_layers, image_size=self.image_size,
                               patch_size=self.patch_size, num_channels=3),
            projection_dim=self.projection,
        )


def build_tokenizer(context: int):
    """A word-level tokenizer of the world's vocabulary: lower case, split on whitespace and
    punctuation, ``<bos> … <eos>``, padded and truncated to ``context`` ids; unknown words → ``<unk>``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + VOCABULARY)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    tokenizer.enable_truncation(max_length=context)
    tokenizer.enable_padding(pad_id=vocab["<pad>"], pad_token="<pad>", length=context)
    return tokenizer


def new_model(config: VerifierConfig, seed: int):
    """A freshly initialised CLIPModel (transformers' init under a seeded, forked RNG)."""
    from transformers import CLIPConfig, CLIPModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(CLIPConfig(**config.clip_config()))


# ---------------------------------------------------------------- data

@dataclass
class Batch:
    images: torch.Tensor  # [N, 3, H, W] in 0..1, degraded
    captions: list[str]  # N own captions, then the extra negatives
    holds: torch.Tensor  # bool [N, len(captions)]: caption true of image (ground truth)
    scenes: list  # the N scenes drawn

    @property
    def n_images(self) -> int:
        return len(self.scenes)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.images.to(device), self.captions, self.holds.to(device), self.scenes)


def _example(seed: int, index: int, negatives: int):
    """(scene, caption) of stream example ``index`` and of its near-miss twin, each with its
    near-miss captions."""
    sample = training_sample(seed, index)
    rng = np.random.default_rng([seed, index, 0x7E4])  # a stream of its own, apart from the world's
    caption = NM.parse_caption(sample.caption)
    items = [(sample.scene, caption)]
    twin = NM.near_miss_scene(rng, sample.scene, caption)
    if twin is not None:
        items.append((twin[0], twin[1]))
    out = []
    for scene, cap in items:
        negs = [NM.near_miss_caption(rng, scene, cap) for _ in range(negatives)]
        out.append((scene, cap, [n[0] for n in negs if n is not None]))
    return out


def truth_matrix(scenes: list, captions: list) -> torch.Tensor:
    """``holds[i, j]``: caption j is true of scene i. Shape counts rule out most pairs before
    GenEval's rules run on the rest."""
    have = np.array([[sum(o.shape == s for o in sc.objects) for s in SHAPES] for sc in scenes])
    need = np.zeros((len(captions), len(SHAPES)), dtype=int)
    for j, cap in enumerate(captions):
        for p in cap.phrases:
            need[j, SHAPES.index(p.shape)] += p.count
    possible = (have[:, None, :] >= need[None, :, :]).all(-1)
    holds = np.zeros_like(possible)
    for i, j in zip(*np.nonzero(possible)):
        holds[i, j] = NM.caption_holds(scenes[i], captions[j])
    return torch.from_numpy(holds)


def make_batch(config: VerifierConfig, seed: int, step: int) -> Batch:
    """The batch of training step ``step`` (a function of seed and step only)."""
    own, extra = [], []
    for k in range(config.pairs):
        for scene, cap, negs in _example(seed, step * config.pairs + k, config.negatives):
            own.append((scene, cap))
            extra += negs
    scenes = [s for s, _ in own]
    captions = [c for _, c in own] + extra
    images = torch.from_numpy(np.stack([render(s, config.image_size) for s in scenes])).permute(0, 3, 1, 2)
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    images = degrade(images.float() / 255, g)
    holds = truth_matrix(scenes, captions)
    return Batch(images, [c.text() for c in captions], holds, scenes)


# ---------------------------------------------------------------- loss and schedule

def normalize_pixels(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGE_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def contrastive_loss(model, tokenizer, batch: Batch) -> torch.Tensor:
    """Symmetric InfoNCE with every other true caption/image masked out of the denominators."""
    n, device = batch.n_images, batch.images.device
    img, _ = W.image_tower(model, normalize_pixels(batch.images))
    unique = list(dict.fromkeys(batch.captions))
    txt = W.text_tower(model, W.tokenize(tokenizer, unique).to(device))
    txt = txt[torch.tensor([unique.index(c) for c in batch.captions], device=device)]
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # [N, M]
    own = torch.eye(n, batch.holds.shape[1], dtype=torch.bool, device=device)
    others_true = batch.holds & ~own
    target = torch.arange(n, device=device)
    i2t = F.cross_entropy(logits.masked_fill(others_true, float("-inf")), target)
    t2i = F.cross_entropy(logits[:, :n].T.masked_fill(others_true[:, :n].T, float("-inf")), target)
    return (i2t + t2i) / 2


def learning_rate(config: VerifierConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def make_optimizer(model, config: VerifierConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases, embeddings' position tables and the logit scale."""
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "embedding" not in name else rest).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98), eps=1e-6)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, model, optimizer, step: int, seed: int, config: VerifierConfig, seconds: float) -> None:
    save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "seed": seed,
                     "config": asdict(config), "seconds": seconds}, path)


def load_checkpoint(path: Path, model, optimizer, seed: int, config: VerifierConfig,
                    device: torch.device = torch.device("cpu")) -> tuple[int, float]:
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("seed") != seed or state.get("config") != asdict(config):
        raise TTSVarError(f"{path} was written by a run with other settings (seed {state.get('seed')}, config "
                          f"{state.get('config')}); resume with the same --seed and options, or use another --out.")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state.get("seconds", 0.0))


# ---------------------------------------------------------------- the run

@dataclass
class RunResult:
    step: int  # steps done
    finished: bool  # all config.steps done
    seconds: float  # training time over all sessions
    losses: list[float]  # loss of each step run in this session


def matmul_gflops(size: int = 1024, repeats: int = 8) -> float:
    """A same-moment speed reference: GFLOP/s of a float32 size² matmul on the current threads."""
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0))
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - t) / 1e9


def train(out: str | Path, *, seed: int = 0, config: VerifierConfig = VerifierConfig(), resume: bool = False,
          minutes: float | None = None, stop_at: int | None = None, progress: bool = True,
          device: str | torch.device = "cpu") -> RunResult:
    """Train up to ``config.steps`` (or ``stop_at``) steps, checkpointing into ``out``; stop early
    (with a checkpoint) after ``minutes`` of wall time. Returns what was done. The data is made on
    the CPU whatever ``device`` the model trains on."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    tokenizer = build_tokenizer(config.context)
    device = torch.device(device)
    model = new_model(config, seed).to(device).train()
    optimizer = make_optimizer(model, config)
    step, seconds = 0, 0.0
    if ckpt.is_file():
        if not resume:
            raise TTSVarError(f"{ckpt} exists: pass --resume to continue that run, or choose another --out.")
        step, seconds = load_checkpoint(ckpt, model, optimizer, seed, config, device)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    losses: list[float] = []
    from tqdm import tqdm

    bar = tqdm(total=config.steps, initial=step, desc="verifier", unit="step", disable=not progress)
    started = time.perf_counter()
    while step < end:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = contrastive_loss(model, tokenizer, make_batch(config, seed, step).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        timed_out = deadline is not None and time.monotonic() > deadline
        if step % config.checkpoint_every == 0 or step == end or timed_out:
            save_checkpoint(ckpt, model, optimizer, step, seed, config, seconds + time.perf_counter() - started)
        if timed_out:
            break
    bar.close()
    seconds += time.perf_counter() - started
    return RunResult(step, step >= config.steps, seconds, losses)


def export(out: str | Path, folder: str | Path, *, storage: torch.dtype = torch.bfloat16,
           calibration: dict | None = None) -> Path:
    """Write the verifier folder (``scoring.world.FILES``) from the checkpoint in ``out``."""
    from safetensors.torch import save_file

    state = torch.load(Path(out) / CHECKPOINT, map_location="cpu", weights_only=True)
    config = VerifierConfig(**state["config"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(storage).contiguous() for k, v in state["model"].items() if not k.endswith("position_ids")}
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "clip", **config.clip_config()}, indent=2) + "\n")
    build_tokenizer(config.context).save(str(folder / "tokenizer.json"))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD), "size": config.image_size}, indent=2) + "\n")
    if calibration is not None:
        (folder / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    return folder


def reward_from_model(model, config: VerifierConfig, calibration: dict | None = None) -> W.WorldReward:
    """The reward scorer around an in-memory model (uncalibrated cosine without ``calibration``)."""
    return W.WorldReward(model, build_tokenizer(config.context), IMAGE_MEAN, IMAGE_STD,
                         calibration or {"mean": 0.0, "std": 1.0}, device=torch.device("cpu"), dtype=torch.float32)


CALIBRATION_SEED = 7_070_707


def calibrate(model, config: VerifierConfig, n_prompts: int = 300, seed: int = CALIBRATION_SEED) -> dict:
    """Mean and standard deviation of the cosine over generator-like pairs, the offset and scale
    of the calibrated score.

    ImageReward standardises its output with the mean and std of its raw scores over generated
    images for their prompts (good and bad ones), so its scores are ≈ N(0, 1) over what a
    generator makes, and λ in exp(λ·r) is in units of that spread. The same is done here over
    what a small generator makes in this world: for held prompts, as many images of matching
    scenes as of near-miss scenes (one attribute wrong), all degraded like generated images.
    """
    from .prompts import prompt_set
    from .scenes import sample_scene

    images, texts = [], []
    for k, meta in enumerate(prompt_set(n_prompts, seed)):
        rng = np.random.default_rng([seed, k])
        scene = sample_scene(rng, meta)
        miss = NM.near_miss_scene(rng, scene, NM.parse_caption(meta["prompt"]))
        for s in [scene] + ([miss[0]] if miss is not None else []):
            images.append(render(s, config.image_size))
            texts.append(meta["prompt"])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = degrade(x, torch.Generator().manual_seed(seed), clean=0.0)
    reward = reward_from_model(model, config)
    cos = torch.cat([reward.cosine(x[i:i + 256], texts[i:i + 256]) for i in range(0, len(texts), 256)]).double()
    return {"mean": float(cos.mean()), "std": float(cos.std()), "pairs": len(texts),
            "population": "cosine over held prompts x (a matching scene, a near-miss scene), generator-like degraded"}


# ---------------------------------------------------------------- command line

def evaluate(folder: str | Path, n_prompts: int = 300) -> tuple[dict, str]:
    """Ranking, checker agreement and layout separation of an exported verifier folder."""
    from ..scoring.classic import ThumbnailFeatures
    from . import verifier_eval as E

    reward = W.load_world_reward(folder)
    extractors = {"world-features (pca)": W.load_world_features(folder, mode="pca"),
                  "world-features (pool)": W.load_world_features(folder, mode="pool"),
                  "thumbnail-16 (pixels)": ThumbnailFeatures(16)}
    results = {"ranking": E.ranking(reward, n_prompts), "agreement": E.agreement(reward, n_prompts),
               "layouts": E.layout_separation(extractors), "layouts_early": E.layout_separation(extractors, early=8)}
    text = [E.format_ranking(results["ranking"]), "\nargmax over 8 generator-like candidates vs the checker",
            E.format_agreement(results["agreement"]), "\nlayout separation (K-Means, 4 planted layouts x 6 images)",
            "| features | ARI | layouts covered | ARI, 8x8-blurred (early scale) | covered, 8x8-blurred |",
            "|---|---|---|---|---|"]
    for name in extractors:
        a, b = results["layouts"][name], results["layouts_early"][name]
        text.append(f"| {name} | {a['ari']:.2f} | {a['coverage']:.2f} | {b['ari']:.2f} | {b['coverage']:.2f} |")
    return results, "\n".join(text)


RUN_DIR = Path("checkpoints") / "verifier"
"""Where, under ``--out``, the run keeps its checkpoint and report (``--out/verifier`` is the export)."""


def bf16_rounded(model):
    """The model with every weight rounded to bfloat16 and back: what users load from the export."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


def train_from_args(args) -> None:
    """``python -m ttsvar.world train verifiers``: train (or resume), then calibrate and export the
    bf16 folder to ``--out/verifier``, and measure the exported folder."""
    config = VerifierConfig(**({"steps": args.steps} if args.steps else {}))
    out = Path(args.out)
    run = out / RUN_DIR
    reference = [matmul_gflops()]
    result = train(run, seed=args.seed, config=config, resume=args.resume, device=args.device)
    reference.append(matmul_gflops())
    state = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    model = new_model(config, args.seed)
    model.load_state_dict(state["model"])
    model = bf16_rounded(model.eval())
    folder = export(run, out / "verifier", storage=torch.bfloat16, calibration=calibrate(model, config))
    timing = {"train_seconds": round(result.seconds, 1), "threads": torch.get_num_threads(),
              "matmul_gflops_before_after": [round(r, 1) for r in reference]}
    results, tables = evaluate(folder)
    (run / "report.json").write_text(json.dumps({"seed": args.seed, "config": asdict(config), "timing": timing,
                                                 "eval": results}, indent=1) + "\n")
    text = f"world verifiers → {folder}\ntiming: {json.dumps(timing)}\n{tables}"
    (run / "report.md").write_text(text + "\n")
    print(text)
