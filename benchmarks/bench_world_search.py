"""Quality vs compute of every strategy and the paper's ablations, measured with the eval harness.

    python benchmarks/bench_world_search.py --out bench_world --random-model tiny-64 --pn 0.06M --device cpu
    python benchmarks/bench_world_search.py --out bench_world --world --pn 0.06M --device cpu \\
        --reward world-reward: --features world-features: --features-modes pca pool
    … --estimate 6        # every point on 6 prompts, then the full run's time extrapolated

Options this script does not know are handed to every `python -m ttsvar eval` it runs (model,
resolution, verifiers, cfg, …), so the points differ only in what the benchmark varies:

* raw; best-of-n, importance-sampling and tts-var at each N of ``--n``. Best-of-n at the largest
  N checks every candidate (``--check-candidates``); raw and best-of-n at the smaller N are read
  from it (the first N candidates, best by reward: a candidate's tokens depend on the seed and its
  index alone), so they cost nothing more and are paired with it exactly;
* ablations of tts-var at ``--ablation-n`` (default 1: the schedule 8,8,6,4,2,1,1 still clusters
  twice and resamples twice): no clustering and no resampling (those steps replaced by a uniform
  random choice of as many candidates — the paper's "random drop", Table 14: same schedule, same
  compute, uninformed choice), the other feature modes of ``--features-modes`` (e.g. ``pca pool``;
  the first is the default everywhere), potentials DIFF/MAX/SUM (VALUE is the default), the λ of
  ``--lams`` (10 is the default), and filter previews decoded at the verifier's input size
  (``--fast-filters``) instead of in full (the default, as the official code).

Every run point is one harness run in OUT/points/<name>/ (GenEval's layout; it resumes, so an
interrupted benchmark goes on where it stopped), ``--workers`` of them at a time, longest first,
each process with ``--threads`` torch threads. All points use the same prompts and seeds, so
they are paired.

Reported per point: accuracy by the world's checker with its 95% Wilson score interval; relative
compute = model-forward tokens per sample (CFG rows included) over raw's; wall and CPU seconds
per sample; and the difference in accuracy to a reference point (best-of-n at the same N for the
other strategies, raw for best-of-n and tts-var N=1, tts-var at the ablation N for its ablations)
with a 95% paired bootstrap interval over prompts (10,000 resamples, percentile; prompts are the
unit, so the correlation of two strategies on one prompt is kept). Output: OUT/results.md
(tables), OUT/results.json and a plot of accuracy vs relative compute
(OUT/accuracy_vs_compute.png; matplotlib when installed, else drawn with pillow).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttsvar.evaluate import load_results, read_prompt_file  # noqa: E402
from ttsvar.stats import paired_bootstrap_interval, wilson_interval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LAM = 10.0


@dataclass(frozen=True)
class Point:
    name: str
    strategy: str
    n: int
    args: tuple[str, ...] = ()
    group: str = "main"  # "main" or "ablation"
    reference: str | None = None  # the point its accuracy difference is measured against
    label: str = ""
    weight: float = field(default=1.0, compare=False)  # rough cost, to start the longest first
    source: str | None = None  # read from this (best-of-n) point's checked candidates instead of being run


def plan_points(ns: list[int], ablation_n: int, lams: list[float], feature_modes: list[str],
                tts_var_schedule: str = "") -> list[Point]:
    """The benchmark's points, main strategies first, then the ablations of tts-var.

    Best-of-n at the largest N checks all its candidates; raw and best-of-n at the smaller N are
    read from them (a candidate's tokens depend on the seed and its index alone, not on N)."""
    schedule = ("--schedule", tts_var_schedule) if tts_var_schedule else ()
    base = schedule + (("--features-mode", feature_modes[0]) if feature_modes else ())
    top = max(ns)
    source = f"best-of-n-{top}" if top > 1 else None
    points = [Point("raw", "raw", 1, label="raw", source=source)]
    for n in sorted(ns):
        if n > 1:
            points.append(Point(f"best-of-n-{n}", "best-of-n", n, ("--check-candidates",) if n == top else (),
                                reference="raw", label=f"best-of-n N={n}", weight=n, source=None if n == top else source))
            points.append(Point(f"importance-sampling-{n}", "importance-sampling", n, reference=f"best-of-n-{n}",
                                label=f"importance-sampling N={n}", weight=1.5 * n))
        points.append(Point(f"tts-var-{n}", "tts-var", n, base, reference=f"best-of-n-{n}" if n > 1 else "raw",
                            label=f"tts-var N={n}", weight=2.3 * n))
    ref = f"tts-var-{ablation_n}"
    if ref not in {p.name for p in points}:
        points.append(Point(ref, "tts-var", ablation_n, base, label=f"tts-var N={ablation_n}", weight=2.3 * ablation_n))

    def ablation(name: str, args: tuple[str, ...], label: str) -> Point:
        return Point(f"{ref}-{name}", "tts-var", ablation_n, base + args, "ablation", ref, label, 2.3 * ablation_n)

    points += [
        ablation("no-clustering", ("--ablate", "no-clustering"), "no clustering (random drop)"),
        ablation("no-resampling", ("--ablate", "no-resampling"), "no resampling (random drop)"),
    ]
    points += [Point(f"{ref}-features-{m}", "tts-var", ablation_n, schedule + ("--features-mode", m), "ablation", ref,
                     f"features {m}", 2.3 * ablation_n) for m in feature_modes[1:]]
    points += [ablation(f"potential-{p}", ("--potential", p), f"potential {p.upper()}") for p in ("diff", "max", "sum")]
    points += [ablation(f"lam-{lam:g}", ("--lam", f"{lam:g}"), f"λ={lam:g}") for lam in lams if lam != DEFAULT_LAM]
    points.append(ablation("fast-filters", ("--fast-filters",), "previews at model size"))
    return points


def run_point(point: Point, prompts_file: Path, out: Path, eval_args: list[str], threads: int,
              deadline: float) -> float | None:
    """One harness run (resumed if it was started before); its wall seconds, 0 if it was done, or
    None when it was stopped at `deadline` (time.monotonic()): interrupted as by Ctrl-C, so its
    finished prompts are kept and the next invocation goes on from them."""
    folder = out / "points" / point.name
    summary = folder / "summary.json"
    if summary.is_file():
        done = json.loads(summary.read_text())
        if done["complete_prompts"] == done["prompts"]:
            return 0.0
    if time.monotonic() >= deadline:
        return None
    command = [sys.executable, "-m", "ttsvar", "eval", "--prompts", str(prompts_file), "--out", str(folder),
               "--strategy", point.strategy, "--n", str(point.n), "--checker", "world", *eval_args, *point.args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "logs" / f"{point.name}.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                code = process.wait(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    process.send_signal(signal.SIGINT)
                    process.wait()
                    return None
    if code != 0:
        raise SystemExit(f"point {point.name} failed (exit {code}); see {out / 'logs' / point.name}.log")
    return time.perf_counter() - start


def point_results(point: Point, points: dict[str, Point], prompts: list[dict], out: Path) -> list[dict]:
    """Per prompt: its metadata and per sample (correct, tokens, seconds) of a point, run or read.

    A point read from best-of-n at N' keeps, per sample, the candidate of highest reward among the
    first N (ties to the lower index, as `select_best`); its tokens are N/N' of the run's (best-of-n
    runs every candidate through every scale) and so, approximately, are its seconds."""
    name = point.source or point.name
    results = load_results(out / "points" / name, prompts)
    if any(r is None for r in results):
        raise SystemExit(f"point {name} is incomplete; run the benchmark again to finish it")
    if point.source is None:
        return [{"metadata": r["metadata"], "samples": [{k: s[k] for k in ("correct", "tokens", "seconds", "cpu_seconds")} for s in r["samples"]]}
                for r in results]
    share = point.n / points[point.source].n
    read = []
    for r in results:
        samples = []
        for s in r["samples"]:
            first = s["candidates"][: point.n]
            best = max(range(len(first)), key=lambda i: (first[i]["reward"], -i))
            samples.append({"correct": first[best]["correct"], "tokens": s["tokens"] * share, "seconds": s["seconds"] * share,
                            "cpu_seconds": s["cpu_seconds"] * share})
        read.append({"metadata": r["metadata"], "samples": samples})
    return read


def analyse(points: list[Point], prompts: list[dict], out: Path) -> list[dict]:
    """Accuracy (Wilson), relative compute and the paired difference to each point's reference."""
    by_name = {p.name: p for p in points}
    per_prompt, rows = {}, []
    for point in points:
        results = point_results(point, by_name, prompts, out)
        samples = [s for r in results for s in r["samples"]]
        per_prompt[point.name] = [sum(s["correct"] for s in r["samples"]) / len(r["samples"]) for r in results]
        correct = sum(s["correct"] for s in samples)
        lo, hi = wilson_interval(correct, len(samples))
        tags = list(dict.fromkeys(r["metadata"].get("tag", "untagged") for r in results))
        by_tag = {t: [s["correct"] for r in results if r["metadata"].get("tag", "untagged") == t for s in r["samples"]]
                  for t in tags}
        rows.append({
            "name": point.name, "label": point.label, "strategy": point.strategy, "n": point.n, "group": point.group,
            "reference": point.reference, "read_from": point.source, "samples": len(samples), "correct": correct,
            "accuracy": correct / len(samples), "ci95": [lo, hi],
            "tokens_per_sample": sum(s["tokens"] for s in samples) / len(samples),
            "seconds_per_sample": sum(s["seconds"] for s in samples) / len(samples),
            "cpu_seconds_per_sample": sum(s["cpu_seconds"] for s in samples) / len(samples),
            "categories": {t: sum(v) / len(v) for t, v in by_tag.items()},
        })
    raw = next(r for r in rows if r["name"] == "raw")
    for row in rows:
        row["relative_compute"] = row["tokens_per_sample"] / raw["tokens_per_sample"]
        row["relative_seconds"] = row["seconds_per_sample"] / raw["seconds_per_sample"]
        if row["reference"]:
            diff, lo, hi = paired_bootstrap_interval(per_prompt[row["name"]], per_prompt[row["reference"]])
            row["vs_reference"] = {"diff": diff, "ci95": [lo, hi]}
    return rows


def markdown(rows: list[dict], prompts: int) -> str:
    by_name = {r["name"]: r for r in rows}
    head = ("| point | accuracy | 95% CI (Wilson) | rel. compute (tokens) | s/sample | Δ accuracy vs | Δ | 95% CI (paired bootstrap) |\n"
            "|---|---:|---|---:|---:|---|---:|---|")
    out = [f"{prompts} prompts; accuracy by the world's checker; compute = model-forward tokens per sample over raw's.", ""]
    for group, title in (("main", "Strategies"), ("ablation", "Ablations of tts-var")):
        out += [f"### {title}", "", head]
        for r in (r for r in rows if r["group"] == group):
            lo, hi = r["ci95"]
            ref = r.get("vs_reference")
            ref_cols = (f"{by_name[r['reference']]['label']} | {ref['diff']:+.3f} | [{ref['ci95'][0]:+.3f}, {ref['ci95'][1]:+.3f}]"
                        if ref else "– | – | –")
            mark = " †" if r["read_from"] else ""
            out.append(f"| {r['label']}{mark} | {r['accuracy']:.3f} | [{lo:.3f}, {hi:.3f}] | {r['relative_compute']:.2f}× | "
                       f"{r['seconds_per_sample']:.2f} | {ref_cols} |")
        out.append("")
    sources = sorted({r["read_from"] for r in rows if r["read_from"]})
    if sources:
        out += [f"† read from the checked candidates of {', '.join(by_name[s]['label'] for s in sources)} (the first N "
                "candidates, best by reward); tokens exactly N/N' of that run's, seconds approximately.", ""]
    tags = list(rows[0]["categories"])
    out += ["### Accuracy per category", "", "| point | " + " | ".join(tags) + " |", "|---|" + "---:|" * len(tags)]
    out += [f"| {r['label']} | " + " | ".join(f"{r['categories'][t]:.2f}" for t in tags) + " |" for r in rows]
    return "\n".join(out) + "\n"


STYLES = {"best-of-n": ("tab:blue", "o"), "importance-sampling": ("tab:orange", "s"), "tts-var": ("tab:green", "^")}
DODGE = {"best-of-n": 0.97, "importance-sampling": 1.03, "tts-var": 1.0}  # equal-compute points side by side


def strategy_lines(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each strategy's line in the plot, by N; best-of-n and importance sampling start at raw."""
    raw = next(r for r in rows if r["name"] == "raw")
    lines = {}
    for strategy in STYLES:
        line = sorted((r for r in rows if r["group"] == "main" and r["strategy"] == strategy), key=lambda r: r["n"])
        lines[strategy] = line if strategy == "tts-var" else [raw, *line]
    return lines


def ablation_rows(rows: list[dict]) -> list[dict]:
    """The ablations' panel, top to bottom: their reference (the default tts-var) first."""
    ablations = [r for r in rows if r["group"] == "ablation"]
    references = [r for r in rows if r["name"] in {a["reference"] for a in ablations}]
    return [{**r, "label": f"{r['label']} (default)"} for r in references] + ablations


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Left: accuracy vs relative compute (log scale), one line per strategy. Right: the ablations
    at their (equal) compute, each with its interval. Matplotlib when installed, else pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib
    except ImportError:
        plot_with_pillow(rows, path, title)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, side) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    for strategy, line in strategy_lines(rows).items():
        colour, marker = STYLES[strategy]
        xs, ys = [r["relative_compute"] * DODGE[strategy] for r in line], [r["accuracy"] for r in line]
        err = [[r["accuracy"] - r["ci95"][0] for r in line], [r["ci95"][1] - r["accuracy"] for r in line]]
        ax.errorbar(xs, ys, yerr=err, color=colour, marker=marker, capsize=3, label=strategy)
        for x, r in zip(xs, line):
            ax.annotate(f"N={r['n']}", (x, r["accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=7,
                        color=colour)
    raw = next(r for r in rows if r["name"] == "raw")
    ax.errorbar([raw["relative_compute"]], [raw["accuracy"]], color="black", marker="D", label="raw")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("relative compute (model-forward tokens per image / raw's)")
    ax.set_ylabel("accuracy (world checker), 95% Wilson interval")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    panel = ablation_rows(rows)
    if panel:
        ys = list(range(len(panel)))[::-1]
        err = [[r["accuracy"] - r["ci95"][0] for r in panel], [r["ci95"][1] - r["accuracy"] for r in panel]]
        side.errorbar([r["accuracy"] for r in panel], ys, xerr=err, fmt="o", color="tab:green", capsize=3)
        side.axvline(panel[0]["accuracy"], color="tab:green", alpha=0.3)
        side.set_yticks(ys, [r["label"] for r in panel], fontsize=8)
        side.set_xlabel(f"accuracy, tts-var N={panel[0]['n']} ({panel[0]['relative_compute']:.2f}× raw's compute)")
        side.grid(alpha=0.3)
        side.set_title("ablations", fontsize=10)
    else:
        side.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_with_pillow(rows: list[dict], path: Path, title: str) -> None:
    """The same chart without matplotlib (log2 compute axis, interval bars, the ablations listed
    on the right with their intervals), plainer."""
    import math

    from PIL import Image, ImageDraw

    colours = {"best-of-n": (31, 119, 180), "importance-sampling": (255, 127, 14), "tts-var": (44, 160, 44)}
    width, height, left, right, top, bottom, panel_left = 1280, 660, 70, 560, 40, 60, 980
    xs = [math.log2(r["relative_compute"]) for r in rows]
    x0, x1 = min(xs) - 0.2, max(xs) + 0.6
    y0 = max(0.0, math.floor(min(r["ci95"][0] for r in rows) * 10) / 10)
    y1 = min(1.0, math.ceil(max(r["ci95"][1] for r in rows) * 10) / 10)
    y1 = y1 if y1 > y0 else y0 + 0.1

    def at_value(compute: float, accuracy: float) -> tuple[float, float]:
        x = left + (math.log2(compute) - x0) / (x1 - x0) * (width - left - right)
        return x, top + (y1 - accuracy) / (y1 - y0) * (height - top - bottom)

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for tick in range(math.ceil(x0), math.floor(x1) + 1):
        x, _ = at_value(2.0**tick, y0)
        draw.line([x, height - bottom, x, height - bottom + 5], fill="black")
        draw.text((x - 8, height - bottom + 8), f"{2**tick:g}x", fill="black")
    for step in range(round((y1 - y0) * 10) + 1):
        _, y = at_value(1.0, y0 + step / 10)
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 40, y - 6), f"{y0 + step / 10:.1f}", fill="black")
    draw.text((left, 5), title[:150], fill="black")
    draw.text((left + 120, height - 25), "relative compute (model-forward tokens / raw's), log2 scale", fill="black")
    draw.text((left, top - 18), "accuracy (world checker), 95% Wilson interval", fill="black")
    for number, (strategy, line) in enumerate(strategy_lines(rows).items()):
        colour = colours[strategy]
        points = [at_value(r["relative_compute"] * DODGE[strategy], r["accuracy"]) for r in line]
        draw.line(points, fill=colour, width=2)
        for (x, y), r in zip(points, line):
            low, high = at_value(1.0, r["ci95"][0])[1], at_value(1.0, r["ci95"][1])[1]
            draw.line([x, low, x, high], fill=colour)
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            draw.text((x + 6, y + 4), f"N={r['n']}", fill=colour)
        draw.text((width - right - 170, height - bottom - 20 * (number + 1)), strategy, fill=colour)
    panel = ablation_rows(rows)
    if panel:
        draw.text((panel_left - 240, top - 25), f"ablations of tts-var N={panel[0]['n']}: accuracy, 95% interval", fill="black")
        span = width - 20 - panel_left
        for i, r in enumerate(panel):
            y = top + 10 + i * 28
            lo, hi = (panel_left + v * span for v in r["ci95"])
            draw.text((panel_left - 240, y - 6), r["label"].replace("λ", "lambda")[:38], fill="black")  # the default font has no λ
            draw.line([lo, y, hi, y], fill=(44, 160, 44), width=2)
            x = panel_left + r["accuracy"] * span
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(44, 160, 44))
        draw.text((panel_left, top + 10 + len(panel) * 28), "0", fill="black")
        draw.text((width - 30, top + 10 + len(panel) * 28), "1", fill="black")
    image.save(path)


def run_points(points: list[Point], prompts_file: Path, out: Path, eval_args: list[str], workers: int,
               threads: int, deadline: float) -> dict[str, float | None]:
    """Run every point that is not read from another, `workers` at a time, longest first; their
    wall seconds (None: stopped at the deadline)."""
    order = sorted((q for q in points if q.source is None), key=lambda q: -q.weight)
    walls = {}
    with ThreadPoolExecutor(workers) as pool:
        futures = {q.name: pool.submit(run_point, q, prompts_file, out, eval_args, threads, deadline) for q in order}
        for name, future in futures.items():
            walls[name] = future.result()
            state = "stopped at the time limit" if walls[name] is None else "done before" if walls[name] == 0 else f"{walls[name]:.0f} s"
            print(f"  {name}: {state}", flush=True)
    return walls


def estimate(points: list[Point], prompts: list[dict], out: Path, walls: dict[str, float], full: int,
             workers: int) -> str:
    """The wall time of the full benchmark, extrapolated from this run on a few prompts.

    Per point: its process overhead (start, model load: wall − the searches' seconds) plus seconds
    per prompt × the full prompt count; points spread over the workers longest first, as
    `run_points` does. Twice: with the wall seconds measured (this machine as busy as it was) and
    with the CPU seconds (quiet cores: each worker has its own, as on a machine with nothing else on it)."""
    costs = {}
    for name, wall in walls.items():
        samples = [s for r in load_results(out / "points" / name, prompts) for s in r["samples"]]
        searches, cpu = sum(s["seconds"] for s in samples), sum(s["cpu_seconds"] for s in samples)
        overhead = max(wall - searches, 0.0)
        costs[name] = (overhead + searches / len(prompts) * full, overhead * cpu / searches + cpu / len(prompts) * full)

    def spread(values: list[float]) -> float:
        lanes = [0.0] * workers
        for value in sorted(values, reverse=True):
            lanes[lanes.index(min(lanes))] += value
        return max(lanes)

    lines = [f"estimate for {full} prompts from {len(prompts)} ({workers} workers): minutes as measured | on quiet cores"]
    lines += [f"  {name:<36} {busy / 60:6.1f} | {quiet / 60:6.1f}" for name, (busy, quiet) in
              sorted(costs.items(), key=lambda kv: -kv[1][0])]
    lines.append(f"  wall ≈ {spread([b for b, _ in costs.values()]) / 60:.1f} min as measured, "
                 f"≈ {spread([q for _, q in costs.values()]) / 60:.1f} min on {workers} quiet cores")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # "--features" is an eval option, not a prefix of --features-modes
    p.add_argument("--out", default="bench_world", help="output folder (one harness run per point inside)")
    p.add_argument("--prompts", help="a JSON-lines prompt file (default: --num-prompts world prompts, written to OUT)")
    p.add_argument("--num-prompts", type=int, default=204, help="size of the held world prompt set (balanced over categories)")
    p.add_argument("--prompt-seed", type=int, default=2026, help="seed of the held world prompt set")
    p.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8], help="the N of each strategy")
    p.add_argument("--ablation-n", type=int, default=1,
                   help="the N of tts-var's ablations (at N=1 the schedule 8,8,6,4,2,1,1 still clusters and resamples)")
    p.add_argument("--lams", type=float, nargs="*", default=[1, 100], help="λ of the λ ablation (10 is the default point)")
    p.add_argument("--features-modes", nargs="*", default=[],
                   help="feature modes of a FAMILY:PATH extractor, default first (e.g. pca pool); none: no such ablation")
    p.add_argument("--tts-var-schedule", default="",
                   help="a custom tts-var schedule (×N) for the tts-var points only, e.g. 8,8,6,4,2,1,1 (default: the preset)")
    p.add_argument("--only", choices=["all", "main", "ablations"], default="all")
    p.add_argument("--skip", nargs="*", default=[], metavar="POINT",
                   help="points to leave out, by name (e.g. tts-var-1-fast-filters: identical to tts-var-1 when the "
                        "verifiers read the image at its own size, as the world's do at 64×64)")
    p.add_argument("--workers", type=int, default=2, help="points run at the same time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--estimate", type=int, metavar="K",
                   help="run every point on the first K prompts only (in OUT/estimate-K) and extrapolate the full run's time")
    p.add_argument("--minutes", type=float, default=float("inf"),
                   help="stop after this many minutes (the runs are interrupted cleanly); the same command goes on from there")
    p.add_argument("--table", help="markdown table path (default OUT/results.md)")
    p.add_argument("--plot", help="PNG plot path (default OUT/accuracy_vs_compute.png)")
    args, eval_args = p.parse_known_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.prompts:
        prompts_file = Path(args.prompts)
    else:
        from ttsvar.world import prompt_set, write_prompts

        prompts_file = out / "prompts.jsonl"
        if not prompts_file.is_file():
            write_prompts(prompts_file, prompt_set(args.num_prompts, args.prompt_seed))
    prompts = read_prompt_file(prompts_file)
    full = len(prompts)
    if args.estimate:
        from ttsvar.world import write_prompts

        step = max(len(prompts) // args.estimate, 1)  # spread over the categories (the file is grouped by them)
        out = out / f"estimate-{args.estimate}"
        out.mkdir(parents=True, exist_ok=True)
        prompts = prompts[::step][: args.estimate]
        prompts_file = out / "prompts.jsonl"
        write_prompts(prompts_file, prompts)

    points = plan_points(args.n, args.ablation_n, args.lams, args.features_modes, args.tts_var_schedule)
    if args.only != "all":
        keep = "main" if args.only == "main" else "ablation"
        needed = {p.reference for p in points if p.group == keep} | {"raw"}
        needed |= {p.source for p in points if p.name in needed or p.group == keep} - {None}
        points = [p for p in points if p.group == keep or p.name in needed]
    unknown = set(args.skip) - {q.name for q in points}
    if unknown:
        raise SystemExit(f"--skip: no point named {', '.join(sorted(unknown))}; the points are {', '.join(q.name for q in points)}")
    needed = {q.reference for q in points} | {q.source for q in points} | {"raw"}
    if needed & set(args.skip):
        raise SystemExit(f"--skip: {', '.join(sorted(needed & set(args.skip)))} is a reference or source of other points")
    points = [q for q in points if q.name not in args.skip]
    runs = sum(q.source is None for q in points)
    print(f"{len(points)} points ({runs} runs) × {len(prompts)} prompts, {args.workers} workers × {args.threads} threads; "
          f"eval options: {' '.join(eval_args) or '(defaults)'}", flush=True)
    start = time.perf_counter()
    deadline = time.monotonic() + args.minutes * 60
    walls = run_points(points, prompts_file, out, eval_args, args.workers, args.threads, deadline)
    wall = time.perf_counter() - start
    if any(w is None for w in walls.values()):
        raise SystemExit(f"stopped after {wall / 60:.1f} min (--minutes); run the same command again to go on.")

    rows = analyse(points, prompts, out)
    table = markdown(rows, len(prompts))
    (out / "results.json").write_text(json.dumps({"eval_args": eval_args, "wall_seconds": wall, "rows": rows}, indent=1))
    table_path = Path(args.table) if args.table and not args.estimate else out / "results.md"
    table_path.write_text(table)
    plot_path = Path(args.plot) if args.plot and not args.estimate else out / "accuracy_vs_compute.png"
    plot(rows, plot_path, f"{len(prompts)} world prompts; {' '.join(eval_args)}")
    print(table)
    raw = next(r for r in rows if r["name"] == "raw")
    run_rows = [r for r in rows if r["read_from"] is None]
    print(f"wall time of this invocation {wall:.0f} s; the runs together used "
          f"{sum(r['tokens_per_sample'] * r['samples'] for r in run_rows) / (raw['tokens_per_sample'] * raw['samples']):.1f}× "
          f"raw's model-forward tokens and {sum(r['seconds_per_sample'] * r['samples'] for r in run_rows):.0f} process-seconds "
          f"of search; wrote {table_path} and {plot_path}")
    if args.estimate and all(w > 0 for w in walls.values()):
        print(estimate(points, prompts, out, walls, full, args.workers))
    elif args.estimate:
        print("some points were run before: delete OUT/estimate-K to measure the estimate afresh")


if __name__ == "__main__":
    main()
