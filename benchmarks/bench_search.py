"""Raw vs Best-of-N vs TTS-VAR on one random-weight model: time, memory and where the time goes.

    python benchmarks/bench_search.py --size small --pn 0.25M --n 1 2 4       # CPU
    python benchmarks/bench_search.py --size 2b --pn 1M --device cuda --n 1 2 4 8

All strategies run side by side in one process on the same prompt and seed; ratios are
against Best-of-N at the same N (the paper's Table 12 compares the same way). Verifiers are
the model-free built-ins (colourfulness reward, thumbnail features), so the decode share is
what the search itself adds; pass --exact to decode filter previews in full as the official code.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import now, peak_gib, reset_peak  # noqa: E402

import ttsvar.pipelines as pipelines  # noqa: E402
import ttsvar.search.filters as filters  # noqa: E402
from ttsvar.infinity.grids import resolve_grid  # noqa: E402
from ttsvar.infinity.tiny import random_model, tiny_text_encoder  # noqa: E402
from ttsvar.scoring.classic import ColorfulnessReward, ThumbnailFeatures  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)


def timed(name, fn, device):
    def wrapper(*args, **kwargs):
        t0 = now(device)
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += now(device) - t0
    return wrapper


class Timed:
    """Wraps a verifier so its calls are counted in SPENT."""

    def __init__(self, inner, method, device):
        self.inner, self.name, self.input_size = inner, inner.name, inner.input_size
        setattr(self, method, timed(method, getattr(inner, method), device))


def measure(job: tuple) -> tuple[float, float, dict]:
    """One strategy in a fresh process (on CPU the peak RSS can only be read per process)."""
    size, pn, device_name, exact, strategy, n = job
    device = torch.device(device_name)
    model = random_model(size, device=device)
    condition = tiny_text_encoder(model).encode("a photo of a red fox sitting in fresh snow, morning light")
    grid = resolve_grid(pn=pn)
    decode = timed("decode", pipelines.decode_images, device)
    pipelines.decode_images = filters.decode_images = decode
    reward, features = Timed(ColorfulnessReward(), "score", device), Timed(ThumbnailFeatures(), "features", device)
    kwargs = dict(grid=grid, reward=reward, extractor=features, seed=0, fast_filters=not exact)
    pipelines.run_strategy(model, condition, strategy="raw", n=1, **kwargs)  # warm-up
    SPENT.clear()
    reset_peak(device)
    t0 = now(device)
    pipelines.run_strategy(model, condition, strategy=strategy, n=n, **kwargs)
    return now(device) - t0, peak_gib(device), dict(SPENT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium", "2b"])
    p.add_argument("--pn", default="0.25M")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, nargs="+", default=[1, 2])
    p.add_argument("--exact", action="store_true", help="full-resolution filter decodes (official behaviour)")
    args = p.parse_args()
    context = multiprocessing.get_context("spawn")
    print(f"random-{args.size}, pn {args.pn}, {args.device}, filter previews {'full' if args.exact else 'at model size'}, "
          f"threads {torch.get_num_threads()}; each row in its own process")
    print(f"{'strategy':<10} {'N':>2} {'time s':>8} {'peak GiB':>9} {'decode':>7} {'features':>8} {'reward':>7} "
          f"{'time/BoN':>8} {'mem/BoN':>8}")
    for n in args.n:
        rows = {}
        for strategy in ("raw", "best-of-n", "tts-var"):
            with context.Pool(1) as pool:
                rows[strategy] = pool.apply(measure, ((args.size, args.pn, args.device, args.exact, strategy, n),))
        base_t, base_m = rows["best-of-n"][0], rows["best-of-n"][1]
        for strategy, (t, mem, spent) in rows.items():
            share = {k: spent.get(k, 0.0) / t for k in ("decode", "features", "score")}
            print(f"{strategy:<10} {n:>2} {t:>8.2f} {mem:>9.2f} {share['decode']:>7.1%} {share['features']:>8.1%} "
                  f"{share['score']:>7.1%} {t / base_t:>8.2f} {mem / base_m:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
