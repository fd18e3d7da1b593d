"""Where the world's generator goes wrong, shape by shape: at which scale each shape is decided.

For each of the world's shapes, `--scenes` held single-object scenes are rendered and encoded by the
model's own VAE (`BSQVAE.encode`). For each k of `--prefixes` the first k scales are those codes
(teacher forcing, `teacher_force`) and the model samples the rest with the library defaults; the
checker judges the decoded image against the scene's prompt. k = 0 is one raw sample. A shape the
model completes from the codes of its first k scales but not from its first k − 1 is decided at
scale k: the model fails to *make* that scale's codes for it, not to finish the picture.

With `--swap`, the same runs follow another shape's prompt (each shape's scenes under the next
shape's prompt): whether the later scales draw what the prompt says or what the forced codes hold.

    python benchmarks/bench_world_shapes.py                       # shipped weights, 24 scenes a shape
    python benchmarks/bench_world_shapes.py --weights DIR --scenes 48 --prefixes 0 3 4 5 --swap
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttsvar.infinity.generate import SamplingSettings, candidate_seed, sample_bits, teacher_force  # noqa: E402
from ttsvar.infinity.grids import resolve_grid  # noqa: E402
from ttsvar.world import SHAPES, check, render, sample_scene  # noqa: E402
from ttsvar.world.model import PN, WEIGHTS_DIR, load_world_model  # noqa: E402
from ttsvar.world.prompts import single_object  # noqa: E402
from ttsvar.world.train_vae import IMAGE_SIZE, to_tensor  # noqa: E402

SCENE_SEED = 20261206
"""Held scenes: a seed no training stream uses."""


@torch.inference_mode()
def complete(world, grid, settings: SamplingSettings, prompt: str, forced: list[torch.Tensor],
             batch: int) -> np.ndarray:
    """`batch` images [B, H, W, 3] in 0..1 (what `check` reads) of `prompt`: the forced scales' bits
    (each [B, h, w, d]), then the model's own samples to the last scale (candidate i draws with seed
    `candidate_seed(i, scale, 0)`)."""
    model = world.model
    text = world.text_encoder.encode(prompt).features
    _, run = teacher_force(model, grid, settings, [text] * batch, forced)
    while run.next_scale < grid.num_scales:
        scale = run.next_scale
        bits = sample_bits(run.forward(), settings.top_p, [candidate_seed(i, scale, 0) for i in range(batch)])
        run.commit(bits.view(batch, *grid.scales[scale], -1))
    images = model.vae.decode(run.summed)
    return ((images.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--weights", default=str(WEIGHTS_DIR), help="a world weights folder (default: the shipped one)")
    parser.add_argument("--scenes", type=int, default=24, help="held scenes per shape")
    parser.add_argument("--prefixes", type=int, nargs="+", default=[0, 3, 4, 5, 6],
                        help="numbers of leading scales taken from the scene's own codes (0: a raw sample)")
    parser.add_argument("--swap", action="store_true",
                        help="also run each shape's scenes under the next shape's prompt")
    args = parser.parse_args(argv)

    world = load_world_model(args.weights)
    grid = resolve_grid(aspect=1.0, pn=PN)
    if not all(0 <= k < grid.num_scales for k in args.prefixes):
        parser.error(f"--prefixes must be within 0..{grid.num_scales - 1} (the grid has {grid.num_scales} scales)")
    settings = SamplingSettings.build(grid.num_scales)
    rng = np.random.default_rng(SCENE_SEED)
    print(f"{args.weights}: {args.scenes} held scenes a shape; % the checker accepts, by the number of leading "
          f"scales forced from the scene's codes (scales {[h for h, _ in grid.scales]} per side)")
    header = " ".join(f"{'k=' + str(k):>6s}" for k in args.prefixes)
    rows, swapped = [], []
    for i, shape in enumerate(SHAPES):
        metadata = single_object(shape)
        images = np.stack([render(sample_scene(rng, metadata), IMAGE_SIZE) for _ in range(args.scenes)])
        bits, _ = world.model.vae.encode(to_tensor(images), grid.scales)
        own = []
        for k in args.prefixes:
            drawn = complete(world, grid, settings, metadata["prompt"], bits[:k], args.scenes)
            own.append(np.mean([check(im, metadata).correct for im in drawn]))
        rows.append(f"  {shape:9s} " + " ".join(f"{100 * a:6.1f}" for a in own))
        if args.swap:
            other = single_object(SHAPES[(i + 1) % len(SHAPES)])
            outcome = []
            for k in args.prefixes:
                drawn = complete(world, grid, settings, other["prompt"], bits[:k], args.scenes)
                outcome.append((np.mean([check(im, other).correct for im in drawn]),
                                np.mean([check(im, metadata).correct for im in drawn])))
            swapped.append(f"  {shape:9s} as {other['include'][0]['class']:9s} "
                           + " ".join(f"{100 * p:5.0f}/{100 * c:<4.0f}" for p, c in outcome))
    print(f"  {'prompt':9s} {header}\n" + "\n".join(rows))
    if args.swap:
        print("under another shape's prompt: % drawn as the prompt says / % drawn as the forced codes' shape")
        print(f"  {'codes of':9s} {'prompt':12s} " + " ".join(f"{'k=' + str(k):>10s}" for k in args.prefixes))
        print("\n".join(swapped))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
