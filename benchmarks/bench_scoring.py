"""Throughput of every reward and feature extractor on CPU with tiny random models.

Not a test: prints images/s per model at a tiny size, to catch gross regressions in the batched
preprocessing and forward paths (and to compare batch sizes). Run from the repository root:

    python benchmarks/bench_scoring.py [--batch 16] [--repeats 5] [--image 256] [--threads 1]

The tiny models are those of tests/scoring/conftest.py (32-px inputs, 2-layer towers), so the
figures measure overheads (resize, tokenise, Python), not the real models' FLOPs.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", type=int, default=256, help="side of the input images (resized by each model)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: tiny models gain nothing from more, and on a shared machine "
                         "OpenMP threads waiting for a busy core make the figures noisy; 0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
