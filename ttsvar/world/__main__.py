"""`python -m ttsvar.world train {part|all}`: train the world's model from scratch, deterministically.

Each part is one entry of `TRAINERS`: its name, the `module:function` that trains it from the
parsed options, and a line of help. `all` trains every part in the table's order (later parts
read the weights earlier ones wrote to `--out`).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

TRAINERS: dict[str, tuple[str, str]] = {
    "vae": ("ttsvar.world.train_vae:train_from_args", "the BSQ VAE (64×64 images, stride 4, 16 bits)"),
    "t2i": ("ttsvar.world.train_t2i:train_from_args", "the text-to-image transformer and its text encoder"),
    "verifiers": ("ttsvar.world.train_verifiers:train_from_args", "the reward model and feature extractor (a small CLIP)"),
    "reward": ("ttsvar.world.tune_reward:train_from_args",
               "the reward tuned on the generator's own candidates, labelled by the checker (after t2i and verifiers)"),
}


def _run(part: str, args: argparse.Namespace) -> None:
    module, function = TRAINERS[part][0].split(":")
    getattr(importlib.import_module(module), function)(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ttsvar.world", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the world's model (or one part of it)")
    train.add_argument("part", choices=[*TRAINERS, "all"],
                       help="; ".join(f"{name}: {text}" for name, (_, text) in TRAINERS.items()) + "; all: every part in order")
    train.add_argument("--out", default=str(WEIGHTS_DIR),
                       help="weights folder (default: the package's own, %(default)s); checkpoints go to OUT/checkpoints")
    train.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data (default 0)")
    train.add_argument("--steps", type=int, default=None, help="training steps of each part (default: the part's own)")
    train.add_argument("--device", default="cpu", help="torch device (default cpu)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints where a run stopped")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for part in (TRAINERS if args.part == "all" else [args.part]):
        _run(part, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
