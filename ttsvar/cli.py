"""`python -m ttsvar …`: generate with a search strategy, evaluate one on a prompt set, run the demo,
convert checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ttsvar.errors import TTSVarError

DEMO_PROMPT = "a photo of a blue wedge"
"""The demo's default prompt: a colour and a shape (the world's own wedge, a triangle pointing down),
a category the world model solves three times in four with one sample (two objects with their
colours it rarely gets right)."""
VERIFIER_HELP = (
    "'colorfulness' / 'thumbnail' (built in, no weights), or FAMILY:PATH for a model from local files, "
    "e.g. imagereward:/models/ImageReward or dinov2:/models/dinov2-with-registers-large"
)


def _add_sampling_args(p: argparse.ArgumentParser, *, single_prompt: bool = True) -> None:
    if single_prompt:
        p.add_argument("--prompt", required=True, help="what the image should show")
    p.add_argument("--negative", default="", help="negative prompt (default: the model's learned null text)")
    p.add_argument("--width", type=int, help="image width in pixels (snaps to the nearest Infinity template)")
    p.add_argument("--height", type=int, help="image height in pixels")
    p.add_argument("--aspect", type=float, help="height/width ratio instead of width and height")
    p.add_argument("--pn", choices=["0.06M", "0.25M", "0.60M", "1M"], help="pixel budget (default: from the size, or 1M)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--tau", type=float, default=0.5, help="sampling temperature")
    p.add_argument("--top-p", type=float, default=0.97, help="top-p on each bit's two classes (0 disables)")
    p.add_argument("--strategy", choices=["raw", "best-of-n", "importance-sampling", "tts-var"], default="raw")
    p.add_argument("--n", "--num-candidates", dest="n", type=int, default=1,
                   help="N: the schedule is multiplied by it (under torchrun write --num-candidates: torchrun reads --n as its own)")
    p.add_argument("--schedule", default="", help="custom batch schedule, e.g. '8,8,6,6,6,4,2,2,2,1,1,1,1' (×N)")
    p.add_argument("--reward", default="colorfulness", help=f"reward model: {VERIFIER_HELP}")
    p.add_argument("--features", default="thumbnail", help=f"feature extractor for clustering: {VERIFIER_HELP}")
    p.add_argument("--potential", choices=["value", "diff", "max", "sum"], default="value")
    p.add_argument("--lam", type=float, default=10.0, help="resampling temperature λ")
    p.add_argument("--fast-filters", action="store_true",
                   help="decode filter previews at the filter model's input size (much faster, slightly different "
                        "previews) instead of in full and 8-bit as the official code")
    p.add_argument("--score-from", type=int, default=None, metavar="S",
                   help="also score every scale from S on, so --potential diff/max/sum run over every scale as the "
                        "paper defines them (S=0); default: only the scales a filter scores, as the official code")
    if single_prompt:
        p.add_argument("--keep", type=int, default=1, help="how many finished images to write (best first)")
        p.add_argument("--out", default="ttsvar.png", help="output PNG (more images get _1, _2 … suffixes)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ttsvar", description="Test-time scaling for Infinity (TTS-VAR).")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text-to-image from local weights, with a search strategy")
    _add_model_args(gen)
    _add_sampling_args(gen)

    ev = sub.add_parser("eval", help="run a strategy over a prompt file in GenEval's layout (resumable; torchrun shards it)")
    ev.add_argument("--prompts", required=True, help="JSON-lines prompt file (GenEval's evaluation_metadata.jsonl format)")
    ev.add_argument("--out", required=True, help="output folder: <index>/samples/<k>.png + metadata.jsonl, summary.json")
    ev.add_argument("--samples-per-prompt", type=int, default=1, help="independent searches (images) per prompt")
    ev.add_argument("--checker", choices=["auto", "world", "none"], default="auto",
                    help="score samples with the world's checker ('auto': when every prompt is a world prompt)")
    ev.add_argument("--ablate", action="append", choices=["no-clustering", "no-resampling"], default=[],
                    help="replace the cluster (or resampling) steps by a uniform random choice of as many candidates")
    ev.add_argument("--check-candidates", action="store_true",
                    help="also check every finished candidate (its reward and verdict go into result.json): "
                         "best-of-n's record then holds best-of-n at every smaller N, and raw")
    ev.add_argument("--features-mode", choices=["pca", "pool"],
                    help="feature mode of a FAMILY:PATH extractor that has modes (e.g. dinov2)")
    _add_model_args(ev)
    _add_sampling_args(ev, single_prompt=False)

    demo = sub.add_parser("demo", help="the whole TTS-VAR search on the world model that ships with the package "
                                       "(trained here, no downloads), its own reward and features")
    demo.add_argument("--prompt", default=DEMO_PROMPT,
                      help="a prompt in the world's grammar, e.g. 'a photo of three green triangles' (default: %(default)r)")
    demo.add_argument("--n", type=int, default=1, help="N: the TTS-VAR schedule is multiplied by it (default 1)")
    demo.add_argument("--out", default="ttsvar_demo.png")
    demo.add_argument("--seed", type=int, default=0)

    info = sub.add_parser("info", help="show what a checkpoint is: the detected transformer or VAE architecture")
    info.add_argument("path", help="a .pth / .safetensors file or a sharded folder")

    conv = sub.add_parser("convert", help="convert an official .pth checkpoint to .safetensors")
    conv.add_argument("source")
    conv.add_argument("target", nargs="?")
    return parser


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transformer", help="infinity_2b_reg.pth, a .safetensors copy, or the 8B shard folder")
    p.add_argument("--vae", help="infinity_vae_d32reg.pth (2B) or infinity_vae_d56_f8_14_patchify.pth (8B)")
    p.add_argument("--text-encoder", help="the flan-t5-xl folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--world", action="store_true",
                   help="the world model that ships in ttsvar/world/weights (instead of --transformer/--vae/--text-encoder)")
    which.add_argument("--random-model", choices=["tiny", "tiny-64", "tiny-patchify", "small", "medium", "2b"],
                   help="use a random-weight model of this size instead of files (images are noise)")


def load_verifier(spec: str, kind: str, device, **options):
    """'colorfulness' / 'thumbnail', or FAMILY:PATH through the scoring registry (with loader `options`)."""
    from ttsvar.scoring.classic import ColorfulnessReward, ThumbnailFeatures

    builtin = {"colorfulness": ColorfulnessReward, "thumbnail": ThumbnailFeatures}
    if spec in builtin:
        if options:
            raise TTSVarError(f"--{kind} '{spec}' has no options ({', '.join(options)}); give a FAMILY:PATH model that has them.")
        return builtin[spec]()
    family, sep, path = spec.partition(":")
    if not sep:
        raise TTSVarError(f"--{kind} '{spec}': expected {VERIFIER_HELP}.")
    from ttsvar.scoring import LOADERS, load

    spec_options = LOADERS[family].options if family in LOADERS else ()
    missing = [name for name in options if name not in spec_options]
    if missing:
        raise TTSVarError(f"--{kind} family '{family}' takes no option {', '.join(missing)}.")
    return load(family, path, device=device, **options)


def image_path(text: str) -> Path:
    """`--out` as an image file PIL can write, checked before any work is done."""
    from PIL import Image

    path = Path(text)
    if path.suffix.lower() not in Image.registered_extensions():
        raise TTSVarError(f"--out '{text}' must name an image file with a known extension, "
                          f"e.g. '{path.with_suffix('.png')}' (.png, .jpg, .webp, ...).")
    return path


def _write_images(images, out: Path) -> list[Path]:
    """Save the images as `out` (then `out`'s stem with _1, _2 …), making its folder if need be."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = out if i == 0 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        array = (img.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def _progress(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc="scales", unit="scale", file=sys.stderr)

    def on_scale(k, state):
        bar.set_postfix(batch=state.num_candidates)
        bar.update(1)

    return bar, on_scale


def run_search(model, encoder, args) -> int:
    search_and_write(model, encoder, args)
    return 0


def search_and_write(model, encoder, args) -> tuple[list[Path], dict]:
    """Run the search `args` describe, write its images and `<out>.json`; return (paths, record)."""
    from ttsvar.infinity.grids import resolve_grid
    from ttsvar.pipelines import plan, run_strategy
    from ttsvar.schedule import BatchSchedule

    out = image_path(args.out)
    grid = resolve_grid(width=args.width, height=args.height, aspect=args.aspect, pn=args.pn)
    condition = encoder.encode(args.prompt, args.negative)
    schedule = BatchSchedule.parse(args.schedule, grid.num_scales, args.n) if args.schedule else None
    _, filters = plan(args.strategy, args.n, grid.num_scales, schedule)
    ranks = args.strategy != "raw" or args.score_from is not None
    reward = load_verifier(args.reward, "reward", model.device) if ranks else None
    extractor = load_verifier(args.features, "features", model.device) if "cluster" in filters.values() else None
    bar, on_scale = _progress(grid.num_scales)
    start = time.perf_counter()
    result = run_strategy(
        model, condition, strategy=args.strategy, n=args.n, grid=grid, reward=reward, extractor=extractor,
        cfg=args.cfg, tau=args.tau, top_p=args.top_p, seed=args.seed, potential=args.potential, lam=args.lam,
        schedule=schedule, keep=args.keep, on_scale=on_scale, fast_filters=args.fast_filters,
        score_from=args.score_from,
    )
    bar.close()
    paths = _write_images(result.images, out)
    record = {**result.record, "strategy": args.strategy, "n": args.n, "fast_filters": args.fast_filters,
              "score_from": args.score_from, "seconds": round(time.perf_counter() - start, 3),
              "images": [str(p) for p in paths]}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    height, width = result.images.shape[-2:]
    print(f"wrote {', '.join(map(str, paths))} and {out.with_suffix('.json')} ({width}x{height}, "
          f"{args.strategy}, N={args.n}, {record['seconds']} s)")
    return paths, record


def describe_search(record: dict) -> str:
    """The record's filters, one line each: what ran after which scale and what it kept."""
    lines = []
    for event in record["events"]:
        kept, before = event["labels_after"], event["batch_before"]
        line = f"  after scale {event['after_scale']}: {event['kind']}, kept {len(kept)} of {before}"
        if "rewards" in event:
            best = max(range(len(event["rewards"])), key=event["rewards"].__getitem__)
            line += f" (best reward {event['rewards'][best]:+.2f}, #{event['labels_before'][best]})"
        lines.append(line + f": {' '.join('#' + k for k in kept)}")
    return "\n".join(lines)


def describe_verdict(path: Path, prompt: str) -> str:
    """What the world's checker sees in the image at `path` and whether it satisfies `prompt`
    (a prompt outside the world's grammar gets the objects only)."""
    import numpy as np
    from PIL import Image

    from ttsvar.world.checker import check, detect
    from ttsvar.world.near_miss import parse_caption

    pixels = np.asarray(Image.open(path).convert("RGB"))
    try:
        metadata = parse_caption(prompt).metadata()
    except TTSVarError:
        return f"the checker sees: {_seen(detect(pixels))} (the prompt is outside the world's grammar, so no verdict)"
    verdict = check(pixels, metadata)
    if verdict.correct:
        return f"the checker sees: {_seen(verdict.detected)} — it matches the prompt"
    reason = verdict.reason.replace("\n", "; ")
    return f"the checker sees: {_seen(verdict.detected)} — it does not match the prompt ({reason})"


def _seen(objects) -> str:
    return ", ".join(_object_words(o) for o in objects) or "no object"


def _object_words(obj) -> str:
    x = (obj.bbox[0] + obj.bbox[2]) / 2
    y = (obj.bbox[1] + obj.bbox[3]) / 2
    where = f"{'top' if y < 1 / 3 else 'bottom' if y > 2 / 3 else 'middle'} {'left' if x < 1 / 3 else 'right' if x > 2 / 3 else 'centre'}"
    return f"{obj.color or 'unclear-coloured'} {obj.shape or 'blob'} ({where})"


def load_model(args, device):
    """(model, text encoder) from --transformer/--vae/--text-encoder, or a --random-model."""
    from ttsvar.infinity.model import load_infinity
    from ttsvar.infinity.text import load_text_encoder
    from ttsvar.infinity.tiny import RANDOM_WEIGHTS_NOTICE, random_model, tiny_text_encoder

    if args.world:
        return load_world_model(device)
    if args.random_model:
        model = random_model(args.random_model, seed=0, device=device)
        print(f"{model.name}: {RANDOM_WEIGHTS_NOTICE}")
        return model, tiny_text_encoder(model)
    missing = [f"--{n}" for n, v in (("transformer", args.transformer), ("vae", args.vae), ("text-encoder", args.text_encoder)) if not v]
    if missing:
        raise TTSVarError(f"missing {', '.join(missing)}: give the weight files (or --random-model tiny to try the pipeline).")
    return load_infinity(args.transformer, args.vae, device=device), load_text_encoder(args.text_encoder, device=device)


def load_world_model(device):
    """The world's trained model from the package's weights folder (:mod:`ttsvar.world.model`)."""
    from ttsvar.world.model import load_world_model as load

    world = load(device=device)
    return world.model, world.text_encoder


def cmd_generate(args) -> int:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, encoder = load_model(args, device)
    return run_search(model, encoder, args)


def cmd_eval(args) -> int:
    from ttsvar.evaluate import Distributed, EvalSettings, evaluate_prompts, format_summary, read_prompt_file, search_plan, summarize
    from ttsvar.infinity.grids import resolve_grid

    prompts = read_prompt_file(args.prompts)
    settings = EvalSettings(
        strategy=args.strategy, n=args.n, samples_per_prompt=args.samples_per_prompt, seed=args.seed, cfg=args.cfg,
        tau=args.tau, top_p=args.top_p, potential=args.potential, lam=args.lam, schedule=args.schedule,
        fast_filters=args.fast_filters, negative=args.negative, ablations=tuple(args.ablate),
        check_candidates=args.check_candidates,
    )
    grid = resolve_grid(width=args.width, height=args.height, aspect=args.aspect, pn=args.pn)
    _, filters = search_plan(settings, grid.num_scales)
    options = {"mode": args.features_mode} if args.features_mode else {}
    with Distributed(args.device) as job:
        model, encoder = load_model(args, job.device)
        reward = load_verifier(args.reward, "reward", job.device) if args.strategy != "raw" else None
        extractor = load_verifier(args.features, "features", job.device, **options) if "cluster" in filters.values() else None
        try:
            evaluate_prompts(model, encoder, prompts, args.out, settings, grid, reward=reward, extractor=extractor,
                             checker=args.checker, rank=job.rank, world_size=job.world_size)
        except KeyboardInterrupt:
            print(f"\ninterrupted: the finished prompts are kept in {args.out}; run the same command again to go on "
                  "where it stopped.", file=sys.stderr)
            return 130
        job.barrier()
        if job.rank == 0:
            print(format_summary(summarize(args.out, prompts)))
    return 0


def cmd_demo(args) -> int:
    from ttsvar.world.model import PN, load_world_model as load

    print("TTS-VAR demo on the world model that ships with the package (a small Infinity trained here on simple "
          "scenes; see README, 'The synthetic world'), with the world's own reward and features.")
    world = load(device="cpu")
    demo_args = build_parser().parse_args([
        "generate", "--prompt", args.prompt, "--pn", PN, "--strategy", "tts-var", "--n", str(args.n),
        "--seed", str(args.seed), "--out", args.out, "--device", "cpu",
        "--reward", "world-reward:", "--features", "world-features:",
    ])
    paths, record = search_and_write(world.model, world.text_encoder, demo_args)
    print(f"prompt: {args.prompt!r}; the search, filter by filter (the record is {Path(args.out).with_suffix('.json')}):")
    print(describe_search(record))
    print(describe_verdict(paths[0], args.prompt))
    return 0


def cmd_info(args) -> int:
    from ttsvar.infinity.checkpoint import read_state_dict

    state = read_state_dict(args.path)
    count = sum(t.numel() for t in state.values())
    if "pos_start" in state:
        from ttsvar.infinity.weights import detect_arch

        arch = detect_arch(state)
        print(f"Infinity transformer '{arch.name}': depth {arch.depth}, width {arch.embed_dim}, {arch.num_heads} heads, "
              f"{arch.token_bits}-bit tokens, text {arch.text_channels} channels, {count / 1e6:,.1f}M values")
        return 0
    from ttsvar.infinity.vae import canonical_vae_keys, detect_vae_config

    cfg = detect_vae_config(canonical_vae_keys(state))
    print(f"BSQ VAE: {cfg.codebook_dim}-bit codes, stride {cfg.stride}, base width {cfg.base_ch}, "
          f"multipliers {list(cfg.ch_mult)}, encoder {'yes' if cfg.encoder else 'no'}, {count / 1e6:.1f}M values")
    return 0


def cmd_convert(args) -> int:
    from ttsvar.infinity.checkpoint import convert_to_safetensors

    print(f"wrote {convert_to_safetensors(args.source, args.target)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"generate": cmd_generate, "eval": cmd_eval, "demo": cmd_demo, "info": cmd_info, "convert": cmd_convert}
    try:
        return commands[args.command](args)
    except TTSVarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
