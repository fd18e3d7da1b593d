"""Throughput of every reward and feature extractor on CPU with tiny random models.

Not a test: prints images/s per model at a tiny size, to catch gross regressions in the batched
preprocessing and forward paths (and to compare batch sizes). Run from the repository root:

    python benchmarks/bench_scoring.py [--batch 16] [--repeats 5] [--image 256] [--threads 1]

The tiny models are those of tests/scoring/conftest.py (32-px inputs, 2-layer towers), so the
figures measure overheads (resize, tokenise, Python), not the real models' FLOPs.

    python benchmarks/bench_scoring.py --resize [--image 1024] [--batch 8]

compares the official input resize instead (uint8 image → 224², Pillow; DINOv2 bilinear,
ImageReward/HPSv2 bicubic): Pillow itself image by image, our exact tensor version
(ttsvar.scoring.pil_resize), and torch's float antialiased interpolate; images/s and the
difference to Pillow (horizontal pass first, as every Pillow before 13).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "scoring"))

import conftest as tiny  # noqa: E402  (the tiny-model builders of the tests)

from ttsvar.scoring import (combine_rewards, load_aesthetic, load_clip_features, load_clip_score,  # noqa: E402
                            load_dinov2, load_hpsv2, load_imagereward, load_pickscore)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def resize_rows(batch: int, side: int, repeats: int) -> None:
    import numpy as np
    from PIL import Image

    from ttsvar.scoring.pil_resize import pil_resize

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(batch, 3, 32, 32, generator=g), size=(side, side), mode="bicubic")
    images = (smooth + 0.15 * torch.randn(batch, 3, side, side, generator=g)).clamp(0, 1).mul(255).to(torch.uint8)
    print(f"uint8 {batch}×{side}² → 224², {torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'filter':9s} {'path':24s} {'img/s':>8s} {'max |Δ|':>8s} {'mean |Δ|':>9s}  (Δ in 1/255 units)")
    for name, resample in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
        def pillow():
            return torch.stack([torch.from_numpy(np.array(Image.fromarray(i.permute(1, 2, 0).numpy()).resize(
                (224, 224), resample))).permute(2, 0, 1) for i in images])

        ref = pillow().float()
        paths = {
            "Pillow, image by image": pillow,
            "ttsvar pil_resize": lambda: pil_resize(images, (224, 224), name),
            "torch float antialias": lambda: torch.nn.functional.interpolate(
                images.float() / 255, size=(224, 224), mode=name, antialias=True).clamp(0, 1) * 255,
        }
        for label, fn in paths.items():
            t = _time(fn, repeats)
            d = (fn().float() - ref).abs()
            print(f"{name:9s} {label:24s} {batch / t:8.1f} {d.max().item():8.3f} {d.mean().item():9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", type=int, default=256, help="side of the input images (resized by each model)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: tiny models gain nothing from more, and on a shared machine "
                         "OpenMP threads waiting for a busy core make the figures noisy; 0 = torch's default)")
    ap.add_argument("--resize", action="store_true", help="compare the official input resize paths instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resize:
        resize_rows(args.batch, args.image, args.repeats)
        return
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    root = Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    hps_dir, hps_cfg, _ = tiny.make_hps_folder(root / "hps")
    ir = load_imagereward(tiny.make_imagereward_folder(root / "ir"))
    hps = load_hpsv2(hps_dir, config=hps_cfg)
    clip_dir = tiny.make_clip_folder(root / "clip")
    models = {
        "imagereward": ir,
        "hpsv2": hps,
        "clip": load_clip_score(clip_dir),
        "pickscore": load_pickscore(clip_dir),
        "aesthetic": load_aesthetic(tiny.make_aesthetic_folder(root / "aes")),
        "hpsv2+imagereward (softmax)": combine_rewards([hps, ir]),
    }
    feats = {
        "dinov2 pca": load_dinov2(tiny.make_dinov2_folder(root / "dino"), mode="pca", image_size=32),
        "dinov2-reg pool": load_dinov2(tiny.make_dinov2_folder(root / "dinor", registers=4), mode="pool",
                                       image_size=32),
        "clip-features": load_clip_features(clip_dir),
    }
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.image, args.image, generator=g)
    prompts = ["a photo of a cat on a red sofa"] * args.batch

    print(f"batch {args.batch}, {args.image}² input → 32² models, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'model':32s} {'batch img/s':>12s} {'1-by-1 img/s':>13s}")
    rows = [(n, lambda m=m: m.score(images, prompts), lambda m=m: [m.score(images[i:i + 1], prompts[:1])
                                                                      for i in range(args.batch)])
            for n, m in models.items()]
    rows += [(n, lambda m=m: m.features(images), lambda m=m: [m.features(images[i:i + 1])
                                                               for i in range(args.batch)])
             for n, m in feats.items()]
    for name, batched, single in rows:
        tb = _time(batched, args.repeats)
        ts = _time(single, max(1, args.repeats // 2))
        print(f"{name:32s} {args.batch / tb:12.0f} {args.batch / ts:13.0f}")


if __name__ == "__main__":
    main()
