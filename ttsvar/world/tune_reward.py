"""Teach the world's reward what the world's generator gets wrong: ImageReward's recipe, in small.

ImageReward is a scorer fine-tuned on people's judgements of *generated* images. The world's
verifier, trained contrastively on renders alone, knows colours and counts but ranks shapes and
relations at chance, and on the generator's own candidates its choice was accepted by the checker
less often than a random pick. This stage fine-tunes it the way ImageReward was made: the world
generator draws ``candidates`` images for each of ``prompts`` prompts of the *training* stream, the
checker labels each (it plays the human annotators), and the reward learns to score a prompt's
accepted candidates above its rejected ones (ImageReward's pairwise loss, −log σ(r_good − r_bad),
on the scaled cosine). The result stays a learned proxy: it never sees the held prompts of the
benchmarks and the tests, and it errs where it generalises badly. Its scores are standardised over
the generator's candidates, as ImageReward's are over generated images.

    python -m ttsvar.world train reward --out DIR    # DIR/verifier and DIR's generator (else the package's) → DIR/reward
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..scoring import world as W
from . import train_verifiers as V

RUN_DIR = Path("checkpoints") / "reward"
REWARD_FOLDER = "reward"
"""The export, beside the contrastive ``verifier`` folder (whose image tower stays the features)."""
HELD_SEED = 20_261_206
"""Seed of the held prompts the tuned reward is measured on (no training stream uses it)."""


@dataclass(frozen=True)
class RewardTuneConfig:
    seed: int = 0
    prompts: int = 600
    candidates: int = 8
    steps: int = 300
    batch_prompts: int = 16
    lr: float = 1e-4
    scale: float = 20.0  # cosine → logit, as CLIP's learned temperature would
    held_prompts: int = 120


@dataclass
class Candidates:
    """Generated images [P, K, 3, 64, 64] in 0..1 (8-bit values), their prompts and checker labels [P, K]."""

    images: torch.Tensor
    prompts: list[str]
    accepted: torch.Tensor


@torch.no_grad()
def generate_candidates(world, metadata: list[dict], candidates: int, seed: int, progress: bool = True) -> Candidates:
    """`candidates` raw samples per prompt (one batch each, the library's sampling defaults), judged by the checker."""
    from tqdm import tqdm

    from ..decode import decode_images, quantize_like_official
    from ..infinity.grids import resolve_grid
    from ..sampler import sample_scales, start_state
    from ..schedule import BatchSchedule
    from .checker import check
    from .model import PN

    grid = resolve_grid(aspect=1.0, pn=PN)
    schedule = BatchSchedule((candidates,) * grid.num_scales)
    images, accepted = [], []
    for i, meta in enumerate(tqdm(metadata, desc="generator candidates", disable=not progress, dynamic_ncols=True)):
        state = start_state(world.model, world.text_encoder.encode(meta["prompt"]), schedule, grid, seed=seed + i)
        batch = quantize_like_official(decode_images(sample_scales(state))).cpu()
        pixels = (batch.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        images.append(batch)
        accepted.append(torch.tensor([check(p, meta).correct for p in pixels]))
    return Candidates(torch.stack(images), [m["prompt"] for m in metadata], torch.stack(accepted))


def cosine(model, tokenizer, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """The reward's uncalibrated score with gradients (the scorer's own runs in inference mode):
    images [B, 3, 64, 64] in 0..1, one prompt each."""
    image = F.normalize(W.image_tower(model, V.normalize_pixels(images))[0], dim=-1)
    text = F.normalize(W.text_tower(model, W.tokenize(tokenizer, prompts)), dim=-1)
    return (image * text).sum(-1)


def pairwise_loss(model, tokenizer, images: torch.Tensor, prompts: list[str], accepted: torch.Tensor,
                  scale: float) -> torch.Tensor | None:
    """Mean −log σ(scale·(cos_good − cos_bad)) over every (accepted, rejected) pair of each prompt;
    None when no prompt of the batch has both."""
    p, k = accepted.shape
    cos = cosine(model, tokenizer, images.flatten(0, 1), [t for t in prompts for _ in range(k)]).view(p, k)
    diff = cos.unsqueeze(2) - cos.unsqueeze(1)  # [P, good, bad]
    mask = accepted.unsqueeze(2) & ~accepted.unsqueeze(1)
    if not bool(mask.any()):
        return None
    return F.softplus(-scale * diff[mask]).mean()


def choice_quality(reward: W.WorldReward, data: Candidates) -> dict:
    """Over prompts whose candidates the checker splits: how often the reward's argmax is accepted,
    against a random pick's expected rate."""
    with torch.no_grad():
        p, k = data.accepted.shape
        cos = reward.cosine(data.images.flatten(0, 1), [t for t in data.prompts for _ in range(k)]).view(p, k)
    split = data.accepted.any(1) & ~data.accepted.all(1)
    chosen = data.accepted[torch.arange(p), cos.argmax(1)]
    return {"informative_prompts": int(split.sum()), "argmax_accepted": float(chosen[split].float().mean()),
            "random_pick": float(data.accepted[split].float().mean()), "raw_accepted": float(data.accepted.float().mean())}


def tune(verifier_folder: Path, world, config: RewardTuneConfig, out: Path, progress: bool = True) -> dict:
    """Fine-tune the verifier in `verifier_folder` on the generator's candidates; export to `out/reward`."""
    from tqdm import tqdm

    from .prompts import prompt_set
    from .scenes import training_sample

    train_meta = [training_sample(config.seed, i).metadata for i in range(config.prompts)]
    held = generate_candidates(world, prompt_set(config.held_prompts, HELD_SEED), config.candidates, HELD_SEED, progress)
    data = generate_candidates(world, train_meta, config.candidates, config.seed, progress)
    reward = W.load_world_reward(verifier_folder)
    before = choice_quality(reward, held)
    model = reward.model.float().train().requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    bar = tqdm(range(config.steps), desc="reward on generated candidates", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        rows = torch.from_numpy(rng.choice(len(data.prompts), config.batch_prompts, replace=False))
        loss = pairwise_loss(model, reward.tokenizer, data.images[rows], [data.prompts[i] for i in rows],
                             data.accepted[rows], config.scale)
        if loss is None:
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    model = V.bf16_rounded(model.eval().requires_grad_(False))
    verifier_config = _config_of(verifier_folder)
    tuned = V.reward_from_model(model, verifier_config)
    with torch.no_grad():
        cos = torch.cat([tuned.cosine(data.images[i], [data.prompts[i]] * config.candidates)
                         for i in range(len(data.prompts))]).double()
    calibration = {"mean": float(cos.mean()), "std": float(cos.std()), "pairs": int(cos.numel()),
                   "population": "cosine over the world generator's raw candidates for training-stream prompts"}
    run = out / RUN_DIR
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "config": asdict(verifier_config)}, run / V.CHECKPOINT)
    folder = V.export(run, out / REWARD_FOLDER, calibration=calibration)
    after = choice_quality(W.load_world_reward(folder), held)
    report = {"config": asdict(config), "held_before": before, "held_after": after,
              "train_accepted": float(data.accepted.float().mean())}
    (run / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _config_of(folder: Path) -> V.VerifierConfig:
    """The VerifierConfig a verifier folder was exported with (its CLIP sizes)."""
    clip = json.loads((Path(folder) / "config.json").read_text())
    vision, text = clip["vision_config"], clip["text_config"]
    return V.VerifierConfig(image_size=vision["image_size"], patch_size=vision["patch_size"], width=vision["hidden_size"],
                            vision_layers=vision["num_hidden_layers"], text_layers=text["num_hidden_layers"],
                            heads=vision["num_attention_heads"], mlp_ratio=vision["intermediate_size"] // vision["hidden_size"],
                            projection=clip["projection_dim"], context=text["max_position_embeddings"])


def train_from_args(args: argparse.Namespace) -> None:
    """`python -m ttsvar.world train reward`: tune `--out/verifier` (else the package's) on `--out`'s
    generator (else the package's); the tuned reward goes to `--out/reward`."""
    from .__main__ import WEIGHTS_DIR
    from .model import TRANSFORMER_FILE, load_world_model

    out = Path(args.out)
    verifier = out / "verifier" if (out / "verifier" / "config.json").is_file() else WEIGHTS_DIR / "verifier"
    world = load_world_model(out if (out / TRANSFORMER_FILE).is_file() else WEIGHTS_DIR)
    config = RewardTuneConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    report = tune(verifier, world, config, out)
    print(f"world reward tuned on generated candidates → {out / REWARD_FOLDER}")
    for name in ("held_before", "held_after"):
        r = report[name]
        print(f"  {name}: argmax accepted {r['argmax_accepted']:.2f} vs random pick {r['random_pick']:.2f} "
              f"({r['informative_prompts']} held prompts the checker splits; raw {r['raw_accepted']:.2f})")
