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

The search asks the reward about *previews* too: TTS-VAR resamples on the images of the partial
code maps (`judged_scales`: where the paper's plan resamples, and the finished image), so the held
report measures the reward's choice at every judged scale. The tuning itself uses the finished
images: `RewardTuneConfig(previews=True)` shows it every judged scale's preview instead, each
labelled with the checker's verdict on the image the candidate finally became, and measured worse
(README, "The synthetic world").

    python -m ttsvar.world train reward --out DIR    # DIR/verifier and DIR's generator (else the package's) → DIR/reward
    python -m ttsvar.world train reward --out DIR --resume    # after an interruption: candidates cached, tuning checkpointed
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..scoring import world as W
from . import train_verifiers as V
from .files import save_atomically

RUN_DIR = Path("checkpoints") / "reward"
TUNE_CHECKPOINT = "tuning.pt"
REWARD_FOLDER = "reward"
"""The export, beside the contrastive ``verifier`` folder (whose image tower stays the features)."""
HELD_SEED = 20_261_206
"""Seed of the held prompts the tuned reward is measured on (no training stream uses it)."""


@dataclass(frozen=True)
class RewardTuneConfig:
    seed: int = 0
    prompts: int = 400
    candidates: int = 8
    steps: int = 300
    batch_prompts: int = 16
    lr: float = 1e-4
    scale: float = 20.0  # cosine → logit, as CLIP's learned temperature would
    held_prompts: int = 120
    previews: bool = False  # True: train on the previews of every judged scale, not only the finished images
    checkpoint_every: int = 50


def judged_scales(num_scales: int) -> tuple[int, ...]:
    """The scales whose images a world search scores: those after which the paper's tts-var plan
    resamples, and the last (the finished image, which Best-of-N and the final selection judge)."""
    from ..schedule import FILTER_RESAMPLE, BatchSchedule, default_filters

    plan = default_filters(BatchSchedule.tts_var(1, num_scales), num_scales)
    return (*sorted(k for k, kind in plan.items() if kind == FILTER_RESAMPLE), num_scales - 1)


@dataclass
class Candidates:
    """The filter previews [P, V, K, 3, 64, 64] (uint8) of each prompt's candidates at the `scales`
    (V of them, the last the finished image), their prompts, and the checker's labels [P, K] of the
    finished images, which every view of a candidate shares."""

    images: torch.Tensor
    prompts: list[str]
    accepted: torch.Tensor
    scales: tuple[int, ...]

    def view(self, rows: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Images [len(rows), K, 3, H, W] in 0..1: prompt rows[i]'s candidates at view views[i]."""
        return self.images[rows, views].float().div_(255)


@torch.no_grad()
def prompt_candidates(world, meta: dict, candidates: int, seed: int, scales: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """One prompt's `candidates` raw samples (one batch, the library's sampling defaults): their
    filter previews [V, K, 3, 64, 64] (uint8) at `scales`, and the checker's verdicts [K] on the
    finished images (the last of `scales` must be the last scale)."""
    from ..decode import filter_previews
    from ..infinity.grids import resolve_grid
    from ..sampler import sample_scales, start_state
    from ..schedule import BatchSchedule
    from .checker import check
    from .model import PN

    grid = resolve_grid(aspect=1.0, pn=PN)
    views: dict[int, torch.Tensor] = {}

    def keep_preview(scale: int, state) -> None:
        if scale in scales:
            views[scale] = (filter_previews(state) * 255).round().to(torch.uint8)

    schedule = BatchSchedule((candidates,) * grid.num_scales)
    state = start_state(world.model, world.text_encoder.encode(meta["prompt"]), schedule, grid, seed=seed)
    sample_scales(state, on_scale=keep_preview)
    finished = views[scales[-1]].permute(0, 2, 3, 1).numpy()
    return torch.stack([views[k] for k in scales]), torch.tensor([check(p, meta).correct for p in finished])


def generate_candidates(world, metadata: list[dict], candidates: int, seed: int, *, progress: bool = True,
                        cache: Path | None = None, key: str = "", save_every: int = 50,
                        previews: bool = True) -> Candidates:
    """`prompt_candidates` of every prompt (prompt i drawn with seed `seed + i`), viewed at every
    judged scale, or only finished when not `previews` (a third of the decoding). With `cache`, what
    is done is saved there every `save_every` prompts, and a run whose `key` matches the saved one
    continues after it (generation is most of this stage's time)."""
    from tqdm import tqdm

    from ..infinity.grids import resolve_grid
    from .model import PN

    scales = judged_scales(resolve_grid(aspect=1.0, pn=PN).num_scales)
    scales = scales if previews else scales[-1:]
    key = f"{key}/{scales}"
    images: list[torch.Tensor] = []
    accepted: list[torch.Tensor] = []
    if cache is not None and cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            images, accepted = list(stored["images"].unbind(0)), list(stored["accepted"].unbind(0))

    bar = tqdm(total=len(metadata), initial=len(images), desc="generator candidates", disable=not progress,
               dynamic_ncols=True)
    for i in range(len(images), len(metadata)):
        views, verdicts = prompt_candidates(world, metadata[i], candidates, seed + i, scales)
        images.append(views)
        accepted.append(verdicts)
        bar.update(1)
        if cache is not None and (len(images) % save_every == 0 or len(images) == len(metadata)):
            save_atomically({"key": key, "images": torch.stack(images), "accepted": torch.stack(accepted)}, cache)
    bar.close()
    return Candidates(torch.stack(images), [m["prompt"] for m in metadata], torch.stack(accepted), scales)


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
    """Per judged scale, over prompts whose candidates the checker splits: how often the reward's
    argmax among the previews at that scale became an accepted image, against a random pick's rate."""
    p, k = data.accepted.shape
    split = data.accepted.any(1) & ~data.accepted.all(1)
    rows = torch.arange(p)
    report = {"informative_prompts": int(split.sum()), "random_pick": float(data.accepted[split].float().mean()),
              "raw_accepted": float(data.accepted.float().mean()), "argmax_accepted": {}}
    with torch.no_grad():
        for v, scale in enumerate(data.scales):
            images = data.view(rows, torch.full((p,), v)).flatten(0, 1)
            cos = reward.cosine(images, [t for t in data.prompts for _ in range(k)]).view(p, k)
            chosen = data.accepted[rows, cos.argmax(1)]
            report["argmax_accepted"][scale] = float(chosen[split].float().mean())
    return report


def format_quality(report: dict) -> str:
    by_scale = ", ".join(f"scale {s} {a:.2f}" for s, a in report["argmax_accepted"].items())
    return (f"argmax accepted {by_scale} vs random pick {report['random_pick']:.2f} "
            f"({report['informative_prompts']} held prompts the checker splits; raw {report['raw_accepted']:.2f})")


def _files_digest(*paths: Path) -> str:
    """A short digest of files' bytes (a folder: its files, sorted): which weights made a cache."""
    h = hashlib.sha256()
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                h.update(file.name.encode())
                h.update(file.read_bytes())
    return h.hexdigest()[:16]


def tune(verifier_folder: Path, generator_folder: Path, config: RewardTuneConfig, out: Path, *, resume: bool = False,
         progress: bool = True, device: str = "cpu") -> dict:
    """Fine-tune the verifier in `verifier_folder` on the candidates of the world generator in
    `generator_folder` (drawn on `device`; the tuning itself runs on the CPU, a few minutes);
    export to `out/reward`. Candidates are cached in `out/checkpoints/reward` and the tuning is
    checkpointed there every `checkpoint_every` steps; `resume` continues it."""
    from tqdm import tqdm

    from ..errors import TTSVarError
    from .model import load_world_model, world_weight_paths
    from .prompts import prompt_set
    from .scenes import training_sample

    run = out / RUN_DIR
    generator = _files_digest(*world_weight_paths(generator_folder))
    world = load_world_model(generator_folder, device=device)
    held = generate_candidates(world, prompt_set(config.held_prompts, HELD_SEED), config.candidates, HELD_SEED,
                               progress=progress, cache=run / "held_candidates.pt",
                               key=f"{generator}/{HELD_SEED}/{config.held_prompts}/{config.candidates}")
    train_meta = [training_sample(config.seed, i).metadata for i in range(config.prompts)]
    data = generate_candidates(world, train_meta, config.candidates, config.seed, progress=progress,
                               cache=run / "candidates.pt", previews=config.previews,
                               key=f"{generator}/{config.seed}/{config.prompts}/{config.candidates}")
    reward = W.load_world_reward(verifier_folder)
    before = choice_quality(reward, held)
    model = reward.model.float().train().requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    settings = {k: v for k, v in asdict(config).items() if k not in ("steps", "checkpoint_every")}
    identity = json.dumps({"config": settings, "generator": generator,
                           "verifier": _files_digest(verifier_folder)}, sort_keys=True)
    checkpoint, step = run / TUNE_CHECKPOINT, 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("identity") != identity:
            raise TTSVarError(f"checkpoint '{checkpoint}' was written by a run with other settings or weights "
                              f"({state.get('identity')}); resume with the same options, or delete it to start over.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    trained_views = np.arange(len(data.scales))  # the training candidates hold only the views tuned on
    bar = tqdm(range(step, config.steps), initial=step, total=config.steps, desc="reward on generated candidates",
               disable=not progress, dynamic_ncols=True)
    for step in bar:
        rng = np.random.default_rng([config.seed, step, 0x2E3A])  # the step's draws alone: resuming is exact
        rows = torch.from_numpy(rng.choice(len(data.prompts), config.batch_prompts, replace=False))
        views = torch.from_numpy(rng.choice(trained_views, size=config.batch_prompts))
        loss = pairwise_loss(model, reward.tokenizer, data.view(rows, views), [data.prompts[i] for i in rows],
                             data.accepted[rows], config.scale)
        if loss is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                             "identity": identity}, checkpoint)
    model = V.bf16_rounded(model.eval().requires_grad_(False))
    verifier_config = _config_of(verifier_folder)
    tuned = V.reward_from_model(model, verifier_config)
    with torch.no_grad():
        cos = torch.cat([tuned.cosine(data.view(torch.tensor([i]), torch.tensor([v]))[0],
                                      [data.prompts[i]] * config.candidates)
                         for i in range(len(data.prompts)) for v in trained_views]).double()
    calibration = {"mean": float(cos.mean()), "std": float(cos.std()), "pairs": int(cos.numel()),
                   "population": "cosine over the world generator's raw candidates for training-stream prompts, "
                                 f"previews at scales {[data.scales[v] for v in trained_views]}"}
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
    from .model import TRANSFORMER_FILE

    out = Path(args.out)
    verifier = out / "verifier" if (out / "verifier" / "config.json").is_file() else WEIGHTS_DIR / "verifier"
    generator = out if (out / TRANSFORMER_FILE).is_file() else WEIGHTS_DIR
    config = RewardTuneConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    report = tune(verifier, generator, config, out, resume=args.resume, device=args.device)
    print(f"world reward tuned on generated candidates → {out / REWARD_FOLDER}")
    for name in ("held_before", "held_after"):
        print(f"  {name}: {format_quality(report[name])}")
