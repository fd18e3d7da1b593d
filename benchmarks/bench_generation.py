"""Raw generation with random weights: time and memory per scale (issue: Infinity re-implementation).

    python benchmarks/bench_generation.py --size small --pn 0.25M          # CPU, mid-size model
    python benchmarks/bench_generation.py --size 2b --pn 1M --device cuda  # the full 2B at 1024²

Prints one row per scale (tokens, batch rows, ms, KV-cache MiB) and the totals; the first run
is a warm-up and is not reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import now, peak_gib, reset_peak  # noqa: E402

from ttsvar.decode import decode_images  # noqa: E402
from ttsvar.infinity.grids import resolve_grid  # noqa: E402
from ttsvar.infinity.tiny import random_model, tiny_text_encoder  # noqa: E402
from ttsvar.sampler import sample_scales, start_state  # noqa: E402
from ttsvar.schedule import BatchSchedule  # noqa: E402


def generate_once(model, condition, grid, device, seed):
    """Per scale: seconds and the peak GPU memory during that scale (NaN on CPU)."""
    times, peaks = [], []
    state = start_state(model, condition, BatchSchedule.preset("raw", 1, grid.num_scales), grid, seed=seed)
    reset_peak(device)
    last = [now(device)]

    def on_scale(k, s):
        t = now(device)
        times.append(t - last[0])
        peaks.append(peak_gib(device) if device.type == "cuda" else float("nan"))
        reset_peak(device)
        last[0] = t

    state = sample_scales(state, on_scale=on_scale)
    t0 = now(device)
    decode_images(state)
    return times, now(device) - t0, state, peaks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium", "2b"])
    p.add_argument("--pn", default="0.25M")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device)
    model = random_model(args.size, device=device)
    condition = tiny_text_encoder(model).encode("a photo of a red fox sitting in fresh snow, morning light")
    grid = resolve_grid(pn=args.pn)
    generate_once(model, condition, grid, device, seed=0)  # warm-up
    reset_peak(device)
    runs = [generate_once(model, condition, grid, device, seed=i) for i in range(args.repeats)]
    peak = peak_gib(device)
    per_scale = [sum(r[0][k] for r in runs) / len(runs) for k in range(grid.num_scales)]
    decode = sum(r[1] for r in runs) / len(runs)
    print(f"{model.describe()}, {grid.pixel_size[1]}x{grid.pixel_size[0]} ({grid.num_scales} scales), cfg on, "
          f"block dtype {model.dtype}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    kv = runs[-1][2].cache_slot.take()
    kv_mib = kv.nbytes() / 2**20 if kv is not None else float("nan")
    print(f"{'scale':>5} {'grid':>7} {'tokens':>7} {'ms':>9} {'share':>6} {'KV filled MiB':>13} {'peak GPU GiB':>12}")
    total = sum(per_scale)
    for k, (hw, t) in enumerate(zip(grid.scales, per_scale)):
        filled = kv_mib * grid.token_offset(k + 1) / grid.total_tokens
        print(f"{k:>5} {hw[0]:>3}x{hw[1]:<3} {hw[0] * hw[1]:>7} {t * 1e3:>9.1f} {t / total:>6.1%} {filled:>13.1f} "
              f"{runs[-1][3][k]:>12.2f}")
    print(f"transformer {total:.3f} s + VAE decode {decode:.3f} s = {total + decode:.3f} s per image; "
          f"KV cache {kv_mib:.0f} MiB; peak {'GPU allocated' if device.type == 'cuda' else 'process RSS'} {peak:.2f} GiB")


if __name__ == "__main__":
    main()
