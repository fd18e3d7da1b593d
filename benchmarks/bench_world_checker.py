"""How often the world's checker agrees with the ground truth, on clean and on distorted renders.

For each prompt of a balanced held set, one scene is drawn for it and rendered; the image is then
checked against three prompts: its own (expected True), a hard negative of the same category
(one attribute changed) and a random prompt; the expected answer of the last two is what the
scene's ground truth says (``satisfies``). Each distortion is applied to every image, with
its own seeded randomness. Also reports how often images holding no scene pass (noise, a blank
background), and the speed of the renderer and the checker.

    python benchmarks/bench_world_checker.py                # 300 prompts at 128 px
    python benchmarks/bench_world_checker.py --prompts 600 --size 256
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttsvar.world import (COLORS, TAGS, check_objects, detect, hard_negative, prompt_set, render,  # noqa: E402
                          sample_prompt, sample_scene, satisfies, training_pairs)


def noise(sigma):
    def apply(image, rng):
        return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
    return apply


def blur(radius):
    def apply(image, rng):
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    return apply


def jpeg(quality):
    def apply(image, rng):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))
    return apply


def down_up(factor):
    def apply(image, rng):
        h, w = image.shape[:2]
        small = Image.fromarray(image).resize((w // factor, h // factor), Image.BOX)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    return apply


def color_shift(levels):
    """A random offset per channel, like a decoder's colour cast: each channel moves by up to ``levels``."""
    def apply(image, rng):
        offset = rng.uniform(-levels, levels, 3)
        return np.clip(image.astype(np.float32) + offset, 0, 255).astype(np.uint8)
    return apply


def specks(count):
    """Stray dots (0.03 of the side across, below the checker's minimum area) in object colours."""
    def apply(image, rng):
        h, w = image.shape[:2]
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        radius = 0.015 * min(h, w)
        for _ in range(count):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            color = list(COLORS.values())[rng.integers(len(COLORS))]
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
        return np.asarray(canvas)
    return apply


DISTORTIONS = [
    ("clean", None),
    ("noise σ=10", noise(10)), ("noise σ=30", noise(30)), ("noise σ=50", noise(50)), ("noise σ=70", noise(70)),
    ("blur r=1", blur(1)), ("blur r=2", blur(2)), ("blur r=3", blur(3)), ("blur r=4", blur(4)), ("blur r=6", blur(6)),
    ("JPEG q=50", jpeg(50)), ("JPEG q=25", jpeg(25)), ("JPEG q=10", jpeg(10)), ("JPEG q=5", jpeg(5)),
    ("down-up ×2", down_up(2)), ("down-up ×4", down_up(4)), ("down-up ×8", down_up(8)),
    ("colour shift ±30", color_shift(30)), ("colour shift ±45", color_shift(45)),
    ("colour shift ±60", color_shift(60)),
    ("8 specks", specks(8)), ("24 specks", specks(24)),
]


def build_cases(n: int, seed: int, size: int):
    rng = np.random.default_rng(seed)
    cases = []
    for metadata in prompt_set(n, seed=seed):
        scene = sample_scene(rng, metadata)
        queries = [metadata, hard_negative(rng, metadata), sample_prompt(rng)]
        cases.append((render(scene, size), [(q, satisfies(scene, q)) for q in queries]))
    return cases


def measure(cases, distortion, seed):
    rng = np.random.default_rng(seed + 1)
    right, total = defaultdict(int), defaultdict(int)
    seconds = 0.0
    for image, queries in cases:
        if distortion is not None:
            image = distortion(image, rng)
        start = time.process_time()
        detected = detect(image)
        seconds += time.process_time() - start
        for metadata, expected in queries:
            ok = check_objects(detected, metadata).correct == expected
            for key in (metadata["tag"], "all", "positives" if expected else "negatives"):
                right[key] += ok
                total[key] += 1
    return {k: right[k] / total[k] for k in total}, {k: total[k] for k in total}, seconds / len(cases)


NO_SCENE = [
    ("uniform noise", lambda rng, size: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
    ("smooth colour noise", lambda rng, size: np.asarray(
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC))),
    ("plain grey", lambda rng, size: np.full((size, size, 3), 200, dtype=np.uint8)),
]


def false_passes(make, n: int, seed: int, size: int) -> float:
    """Share of prompts an image holding no scene is judged to satisfy."""
    rng = np.random.default_rng(seed)
    prompts = prompt_set(n, seed=seed)
    return sum(check_objects(detect(make(rng, size)), m).correct for m in prompts) / n


def render_speed(size: int, n: int = 400) -> float:
    """Images per CPU second of this process (CPU time: the machine may be shared)."""
    start = time.process_time()
    training_pairs(n, seed=0, size=size)
    return n / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cases = build_cases(args.prompts, args.seed, args.size)
    columns = list(TAGS) + ["all", "positives", "negatives"]
    print(f"checker accuracy vs ground truth: {args.prompts} prompts x 3 pairs at {args.size}px, seed {args.seed}\n")
    print("| distortion | " + " | ".join(columns) + " | detect CPU ms |")
    print("|---" * (len(columns) + 2) + "|")
    counts = None
    for name, distortion in DISTORTIONS:
        accuracy, counts, seconds = measure(cases, distortion, args.seed)
        cells = " | ".join(f"{100 * accuracy[c]:.1f}" for c in columns)
        print(f"| {name} | {cells} | {1000 * seconds:.1f} |", flush=True)
    print("\npairs per column: " + ", ".join(f"{c} {counts[c]}" for c in columns))

    print("\nimages without a scene, share of prompts judged satisfied:")
    for name, make in NO_SCENE:
        print(f"  {name}: {100 * false_passes(make, args.prompts, args.seed, args.size):.1f}%")

    print("\ntraining_pairs speed (sample + render, one process, per CPU second):")
    for size in (64, 128, 256):
        print(f"  {size}px: {render_speed(size):.0f} images/s")


if __name__ == "__main__":
    main()
