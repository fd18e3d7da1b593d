"""Raw vs Best-of-N vs TTS-VAR on one random-weight model: time, memory and where the time goes.

    python benchmarks/bench_search.py --size small --pn 0.25M --n 1 2 4       # CPU
    python benchmarks/bench_search.py --size 2b --pn 1M --device cuda --n 1 2 4 8
    python benchmarks/bench_search.py --fast-filters ...      # filter previews at the verifiers' size
    python benchmarks/bench_search.py --score-from 0 ...      # adds a TTS-VAR row scoring every scale
    python benchmarks/bench_search.py --compare-fast --seeds 0 1 2 3 ...   # exact vs fast choices

All strategies run side by side in one process on the same prompt and seed; ratios are
against Best-of-N at the same N (the paper's Table 12 compares the same way). Verifiers are
the model-free built-ins (colourfulness reward, thumbnail features), so the decode share is
what the search itself adds. Filter previews are decoded in full and quantised to 8 bits as in
the official code unless --fast-filters is given. --score-from S adds a row "tts-var/S": the
same search scoring every scale from S (the reward history the paper's DIFF/MAX/SUM are defined
on), with the MAX potential. --compare-fast runs each TTS-VAR search with official and with fast
previews and reports whether the kept candidates differ (and both times).
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

import ttsvar.decode as decode_module  # noqa: E402
import ttsvar.pipelines as pipelines  # noqa: E402
from ttsvar.infinity.grids import resolve_grid  # noqa: E402
from ttsvar.infinity.tiny import random_model, tiny_text_encoder  # noqa: E402
from ttsvar.scoring.classic import ColorfulnessReward, ThumbnailFeatures  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)
PROMPT = "a photo of a red fox sitting in fresh snow, morning light"


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


def _setup(size, pn, device):
    model = random_model(size, device=device)
    condition = tiny_text_encoder(model).encode(PROMPT)
    decode = timed("decode", decode_module.decode_images, device)
    decode_module.decode_images = pipelines.decode_images = decode  # filter previews call it too
    reward, features = Timed(ColorfulnessReward(), "score", device), Timed(ThumbnailFeatures(), "features", device)
    return model, condition, dict(grid=resolve_grid(pn=pn), reward=reward, extractor=features)


def measure(job: tuple) -> tuple[float, float, dict]:
    """One strategy in a fresh process (on CPU the peak RSS can only be read per process)."""
    size, pn, device_name, fast, strategy, n, score_from = job
    device = torch.device(device_name)
    model, condition, kwargs = _setup(size, pn, device)
    kwargs.update(seed=0, fast_filters=fast)
    pipelines.run_strategy(model, condition, strategy="raw", n=1, **kwargs)  # warm-up
    SPENT.clear()
    reset_peak(device)
    t0 = now(device)
    extra = dict(score_from=score_from, potential="max") if score_from is not None else {}
    pipelines.run_strategy(model, condition, strategy=strategy, n=n, **kwargs, **extra)
    return now(device) - t0, peak_gib(device), dict(SPENT)


def compare(job: tuple) -> dict:
    """tts-var with official and with fast previews, same seed: where do the choices differ?"""
    size, pn, device_name, n, seeds = job
    device = torch.device(device_name)
    model, condition, kwargs = _setup(size, pn, device)
    pipelines.run_strategy(model, condition, strategy="raw", n=1, **kwargs)  # warm-up
    rows = []
    for seed in seeds:
        times, results = {}, {}
        for mode in ("exact", "fast"):
            t0 = now(device)
            results[mode] = pipelines.run_strategy(model, condition, strategy="tts-var", n=n, seed=seed,
                                                   fast_filters=mode == "fast", **kwargs)
            times[mode] = now(device) - t0
        diff = pipelines.compare_choices(results["exact"], results["fast"])
        rows.append({"seed": seed, "same": diff["same_choice"], "first": diff["first_difference"], **times})
    return {"n": n, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium", "2b"])
    p.add_argument("--pn", default="0.25M")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, nargs="+", default=[1, 2])
    p.add_argument("--fast-filters", action="store_true",
                   help="decode filter previews at the verifier's input size (default: full and 8-bit, as official)")
    p.add_argument("--score-from", type=int, default=None, metavar="S",
                   help="add a tts-var row that scores every scale from S (paper-defined potentials, MAX)")
    p.add_argument("--compare-fast", action="store_true",
                   help="run tts-var with official and fast previews and report whether the choices differ")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for --compare-fast")
    args = p.parse_args()
    context = multiprocessing.get_context("spawn")
    if args.compare_fast:
        print(f"random-{args.size}, pn {args.pn}, {args.device}: tts-var with official vs fast filter previews")
        print(f"{'N':>2} {'seed':>5} {'same choice':>11} {'first diff':>10} {'exact s':>8} {'fast s':>8} {'fast/exact':>10}")
        for n in args.n:
            with context.Pool(1) as pool:
                out = pool.apply(compare, ((args.size, args.pn, args.device, n, args.seeds),))
            for r in out["rows"]:
                first = "-" if r["first"] is None else f"scale {r['first']}"
                print(f"{n:>2} {r['seed']:>5} {str(r['same']):>11} {first:>10} {r['exact']:>8.2f} {r['fast']:>8.2f} "
                      f"{r['fast'] / r['exact']:>10.2f}", flush=True)
        return
    previews = "at model size (fast filters)" if args.fast_filters else "full, 8-bit (official)"
    print(f"random-{args.size}, pn {args.pn}, {args.device}, filter previews {previews}, "
          f"threads {torch.get_num_threads()}; each row in its own process")
    print(f"{'strategy':<12} {'N':>2} {'time s':>8} {'peak GiB':>9} {'decode':>7} {'features':>8} {'reward':>7} "
          f"{'time/BoN':>8} {'mem/BoN':>8}")
    strategies = [("raw", None), ("best-of-n", None), ("tts-var", None)]
    if args.score_from is not None:
        strategies.append(("tts-var", args.score_from))
    for n in args.n:
        rows = {}
        for strategy, score_from in strategies:
            label = strategy if score_from is None else f"{strategy}/{score_from}"
            job = (args.size, args.pn, args.device, args.fast_filters, strategy, n, score_from)
            with context.Pool(1) as pool:
                rows[label] = pool.apply(measure, (job,))
        base_t, base_m = rows["best-of-n"][0], rows["best-of-n"][1]
        for label, (t, mem, spent) in rows.items():
            share = {k: spent.get(k, 0.0) / t for k in ("decode", "features", "score")}
            print(f"{label:<12} {n:>2} {t:>8.2f} {mem:>9.2f} {share['decode']:>7.1%} {share['features']:>8.1%} "
                  f"{share['score']:>7.1%} {t / base_t:>8.2f} {mem / base_m:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
