"""Evaluation harness: one strategy over a prompt file, in GenEval's layout, resumable and sharded.

Output folder (what GenEval's ``evaluation/evaluate_images.py`` reads: sub-folders whose names
are all digits, each with a ``metadata.jsonl`` holding one JSON object, and ``samples/`` files
matching ``\\d+\\.png``; everything else is ignored by it)::

    OUT/run.json                      the run's configuration (a resumed run must match it)
    OUT/<index:05d>/metadata.jsonl    the prompt's metadata line, as given
    OUT/<index:05d>/samples/<k:05d>.png
    OUT/<index:05d>/result.json       per sample: seed, compute, checker verdict, search record
    OUT/summary.json                  per category and overall accuracy, compute totals

Indices are the prompts' line numbers in the prompt file (0-based, blank lines skipped), and
sample names count from 0 with five digits, both as GenEval's own generation script writes them.
``result.json`` is written last and atomically: a prompt folder without it is half-written and
is redone on resume; a prompt folder with it is skipped.

Each sample is one independent search (``run_strategy`` with ``keep=1``) whose seed is derived
from (seed, prompt index, sample index) alone, so strategies run with the same seed on the same
prompt file are paired (raw's image is Best-of-N's candidate 0), and a shard of the prompts
gives exactly the images a single process would.

With ``check_candidates`` every finished candidate is checked too, and its reward and verdict
go into ``result.json`` (the image written is still the chosen one).

Compute per sample: model-forward tokens (rows × tokens of every transformer pass, CFG rows and
KV-cache rebuilds included), wall time of the search (decodes and verifiers included, the
checker and file writing not), the process's CPU time over the same span (on a shared machine
it shows what the search costs without the waiting), and peak memory (CUDA ``max_memory_allocated`` on a GPU; on the
CPU the process's peak RSS so far, which can only grow over a run).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

from ttsvar.errors import TTSVarError
from ttsvar.stats import wilson_interval

ABLATIONS = {"no-clustering": "cluster", "no-resampling": "resample"}
"""Ablation name → the filter kind it replaces by a uniform random subset (`random_drop`): the
paper's "random drop" (Table 14). The schedule, and so the compute, stay the same."""

CHECKERS = ("auto", "world", "none")


@dataclass(frozen=True)
class EvalSettings:
    """What a run generates; everything here (with the model, grid and verifiers) goes into run.json."""

    strategy: str
    n: int = 1
    samples_per_prompt: int = 1
    seed: int = 0
    cfg: float = 3.0
    tau: float = 0.5
    top_p: float = 0.97
    potential: str = "value"
    lam: float = 10.0
    schedule: str = ""  # a custom schedule ("8,8,6,..." ×N); "" = the strategy's own
    fast_filters: bool = False
    negative: str = ""
    ablations: tuple[str, ...] = field(default=())  # names in ABLATIONS
    check_candidates: bool = False  # check every finished candidate, not only the chosen one

    def __post_init__(self) -> None:
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise TTSVarError(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}.")
        if self.samples_per_prompt < 1:
            raise TTSVarError(f"samples per prompt must be at least 1, got {self.samples_per_prompt}.")

    def to_dict(self) -> dict:
        return {**asdict(self), "ablations": list(self.ablations)}


def search_plan(settings: EvalSettings, num_scales: int):
    """(schedule, filter plan) of a run: the strategy's, with ablated filter kinds made random."""
    from ttsvar.pipelines import plan
    from ttsvar.schedule import BatchSchedule
    from ttsvar.search.filters import FILTER_RANDOM

    custom = BatchSchedule.parse(settings.schedule, num_scales, settings.n) if settings.schedule else None
    schedule, filters = plan(settings.strategy, settings.n, num_scales, custom)
    replaced = {ABLATIONS[a] for a in settings.ablations}
    return schedule, {k: (FILTER_RANDOM if kind in replaced else kind) for k, kind in filters.items()}


# ---------------------------------------------------------------------------------------- prompts


def read_prompt_file(path: str | Path) -> list[dict]:
    """Prompt metadata from a JSON-lines file (GenEval's ``evaluation_metadata.jsonl`` format):
    one object per line with at least a ``"prompt"`` string; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise TTSVarError(f"--prompts: {path} is not a file; give a JSON-lines file with one {{\"prompt\": ...}} per line.")
    prompts = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            metadata = json.loads(line)
        except json.JSONDecodeError as err:
            raise TTSVarError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("prompt"), str) or not metadata["prompt"].strip():
            raise TTSVarError(f"{path}, line {number}: expected a JSON object with a non-empty \"prompt\" string.")
        prompts.append(metadata)
    if not prompts:
        raise TTSVarError(f"{path} holds no prompts.")
    return prompts


def shard(count: int, rank: int, world_size: int) -> list[int]:
    """The prompt indices of one process: every world_size-th, starting at its rank (round robin
    keeps the shares balanced when a prompt file is grouped by category)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise TTSVarError(f"rank must be within 0..{world_size - 1} for {world_size} processes, got {rank}.")
    return list(range(rank, count, world_size))


def sample_seed(seed: int, index: int, sample: int) -> int:
    """The search seed of sample `sample` of prompt `index`: a hash of the three, nothing else."""
    digest = hashlib.blake2b(f"eval/{seed}/{index}/{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**31 - 1)


def prompt_dir(out: Path, index: int) -> Path:
    return Path(out) / f"{index:05d}"


def sample_name(sample: int) -> str:
    return f"{sample:05d}.png"


# ---------------------------------------------------------------------------------------- checkers


def resolve_checker(name: str, prompts: Sequence[dict]) -> tuple[str | None, Callable | None]:
    """(name, check) for 'world', 'none', or 'auto': the world's checker when every prompt is a
    valid world prompt, else none. `check(image uint8 [H, W, 3], metadata)` returns an object
    with `correct` and `reason`."""
    if name not in CHECKERS:
        raise TTSVarError(f"--checker must be one of {', '.join(CHECKERS)}, got '{name}'.")
    if name == "none":
        return None, None
    from ttsvar import world

    if name == "auto":
        try:
            for metadata in prompts:
                world.validate_metadata(metadata)
        except TTSVarError:
            return None, None
    else:
        for metadata in prompts:
            world.validate_metadata(metadata)
    return "world", world.check


# ---------------------------------------------------------------------------------------- compute


class TokenMeter:
    """Counts the token rows a model's transformer runs: for every scale forward, rows (CFG
    doubles them) × tokens of that scale, including teacher-forced passes that rebuild a cache.

    Every transformer pass of sampling and of cache rebuilds goes through
    `InfinityTransformer.forward_scale`; the meter wraps it on this instance while active.
    """

    def __init__(self, model):
        self.transformer = model.transformer
        self.tokens = 0

    def __enter__(self) -> "TokenMeter":
        self._previous = self.transformer.__dict__.get("forward_scale")
        inner = self.transformer.forward_scale

        def counted(x, *args, **kwargs):
            self.tokens += int(x.shape[0]) * int(x.shape[1])
            return inner(x, *args, **kwargs)

        self.transformer.forward_scale = counted
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is None:
            del self.transformer.forward_scale
        else:
            self.transformer.forward_scale = self._previous


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_bytes(device) -> int:
    """CUDA's peak allocation since the last reset, or the process's peak RSS (Linux: KiB)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


# ---------------------------------------------------------------------------------------- the run


def to_uint8(image) -> "np.ndarray":  # noqa: F821 (numpy imported lazily)
    """A [3, H, W] image in 0..1 as uint8 [H, W, 3], rounded like a PNG writer expects."""
    return (image.permute(1, 2, 0).float().numpy() * 255).round().clip(0, 255).astype("uint8")


def _write_json(path: Path, data) -> None:
    """Write JSON atomically (a reader never sees half a file, even across processes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_config(settings: EvalSettings, model, grid, reward, extractor, checker_name) -> dict:
    """What the images and verdicts depend on, as stored in run.json and compared on resume."""
    return {
        "settings": settings.to_dict(),
        "model": getattr(model, "name", "?"),
        "grid": grid.to_dict(),
        "reward": getattr(reward, "name", None),
        "features": getattr(extractor, "name", None),
        "checker": checker_name,
    }


def _check_run_config(out: Path, config: dict) -> None:
    path = out / "run.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != config:
            keys = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
            raise TTSVarError(
                f"{out} holds a run with other settings (differing: {', '.join(keys)}); resume it with the same "
                "options, or write to another --out folder."
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(path, config)


def is_complete(out: Path, index: int, metadata: dict, samples: int) -> bool:
    """Whether a prompt folder holds a finished result for this prompt (else it is redone).

    A finished folder whose metadata is another prompt's means the prompt file changed under
    an existing run: an error, never a silent mix."""
    folder = prompt_dir(out, index)
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if result.get("metadata") != metadata:
        raise TTSVarError(
            f"{folder} was written for the prompt {json.dumps(result.get('metadata'))[:120]}, but line {index} of the "
            "prompt file is now another: use the prompt file of that run, or another --out folder."
        )
    records = result.get("samples", [])
    return len(records) == samples and all((folder / "samples" / r["file"]).is_file() for r in records)


def generate_prompt(model, encoder, metadata: dict, index: int, settings: EvalSettings, grid, *, reward, extractor,
                    checker, device) -> tuple[list, dict]:
    """All samples of one prompt: (uint8 images, result record). Nothing is written here."""
    import torch

    from ttsvar.pipelines import run_strategy

    schedule, filters = search_plan(settings, grid.num_scales)
    finalists = schedule.sizes[-1] if settings.check_candidates else 1
    condition = encoder.encode(metadata["prompt"], settings.negative)
    images, records = [], []
    for k in range(settings.samples_per_prompt):
        seed = sample_seed(settings.seed, index, k)
        _reset_peak(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        with TokenMeter(model) as meter:
            result = run_strategy(
                model, condition, strategy=settings.strategy, n=settings.n, grid=grid, reward=reward,
                extractor=extractor, cfg=settings.cfg, tau=settings.tau, top_p=settings.top_p, seed=seed,
                potential=settings.potential, lam=settings.lam, schedule=schedule, filters=filters, keep=finalists,
                fast_filters=settings.fast_filters,
            )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        image = to_uint8(result.images[0])
        record = {"file": sample_name(k), "seed": seed, "tokens": meter.tokens, "seconds": round(seconds, 4),
                  "cpu_seconds": round(cpu_seconds, 4), "peak_memory_bytes": _peak_bytes(device)}
        if checker is not None:
            verdict = checker(image, metadata)
            record.update(correct=bool(verdict.correct), reason=verdict.reason)
        if finalists > 1 and checker is not None:
            record["candidates"] = _check_finalists(result, checker, metadata)
        record["search"] = result.record
        images.append(image)
        records.append(record)
    return images, {"index": index, "metadata": metadata, "samples": records}


def _check_finalists(result, checker, metadata: dict) -> list[dict]:
    """Reward and verdict of every finished candidate, in candidate order (before selection).

    With best-of-n the finished candidates are the first ones sampled, and a candidate's images
    depend only on (seed, candidate), so best-of-n at any smaller N (and raw: candidate 0) can be
    read from these records without being run."""
    select = result.state.events[-1]
    images = {candidate: result.images[rank] for rank, candidate in enumerate(select["kept"])}
    return [{"reward": reward, "correct": bool(checker(to_uint8(images[i]), metadata).correct)}
            for i, reward in enumerate(select["rewards"])]


def write_prompt(out: Path, index: int, metadata: dict, images: list, result: dict) -> None:
    """The prompt folder: metadata, samples, then result.json last (the completion mark)."""
    from PIL import Image

    folder = prompt_dir(out, index)
    samples = folder / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").unlink(missing_ok=True)
    for stale in samples.iterdir():
        stale.unlink()
    (folder / "metadata.jsonl").write_text(json.dumps(metadata) + "\n")
    for image, record in zip(images, result["samples"]):
        Image.fromarray(image).save(samples / record["file"])
    _write_json(folder / "result.json", result)


def evaluate_prompts(model, encoder, prompts: Sequence[dict], out: str | Path, settings: EvalSettings, grid, *,
                     reward=None, extractor=None, checker: str = "auto", rank: int = 0, world_size: int = 1,
                     progress: bool = True) -> list[int]:
    """Generate (and check) this process's share of the prompts; returns the indices it ran.

    Complete prompt folders are skipped; the others are (re)done from scratch.
    """
    from tqdm import tqdm

    out = Path(out)
    checker_name, check = resolve_checker(checker, prompts)
    if settings.check_candidates and check is None:
        raise TTSVarError("checking every candidate needs a checker: use world prompts (or --checker world).")
    _check_run_config(out, run_config(settings, model, grid, reward, extractor, checker_name))
    mine = shard(len(prompts), rank, world_size)
    todo = [i for i in mine if not is_complete(out, i, prompts[i], settings.samples_per_prompt)]
    label = f"eval {settings.strategy} N={settings.n}" + (f" [rank {rank}/{world_size}]" if world_size > 1 else "")
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=label, unit="prompt", file=sys.stderr,
               position=rank, disable=not progress, dynamic_ncols=True)
    for index in todo:
        images, result = generate_prompt(model, encoder, prompts[index], index, settings, grid, reward=reward,
                                         extractor=extractor, checker=check, device=model.device)
        write_prompt(out, index, prompts[index], images, result)
        bar.update(1)
    bar.close()
    return todo


# ---------------------------------------------------------------------------------------- summary


def load_results(out: str | Path, prompts: Sequence[dict]) -> list[dict | None]:
    """Each prompt's result record (None where the prompt is not finished), in prompt order."""
    out = Path(out)
    samples = json.loads((out / "run.json").read_text())["settings"]["samples_per_prompt"]
    return [json.loads((prompt_dir(out, i) / "result.json").read_text()) if is_complete(out, i, metadata, samples) else None
            for i, metadata in enumerate(prompts)]


def _accuracy(correct: int, total: int) -> dict:
    lo, hi = wilson_interval(correct, total)
    return {"n": total, "correct": correct, "accuracy": correct / total, "ci95": [lo, hi]}


def summarize(out: str | Path, prompts: Sequence[dict]) -> dict:
    """Per category (GenEval's ``tag``) and overall: accuracy with its 95% Wilson interval (when a
    checker scored the samples), and compute totals. Written to OUT/summary.json."""
    out = Path(out)
    config = json.loads((out / "run.json").read_text())
    results = [r for r in load_results(out, prompts) if r is not None]
    samples = [(r["metadata"].get("tag", "untagged"), s) for r in results for s in r["samples"]]
    summary: dict = {"config": config, "prompts": len(prompts), "complete_prompts": len(results),
                     "samples": len(samples)}
    if samples and config.get("checker"):
        tags = list(dict.fromkeys(tag for tag, _ in samples))
        by_tag = {t: [s["correct"] for tag, s in samples if tag == t] for t in tags}
        summary["categories"] = {t: _accuracy(sum(v), len(v)) for t, v in by_tag.items()}
        summary["overall"] = _accuracy(sum(s["correct"] for _, s in samples), len(samples))
        summary["geneval_score"] = sum(c["accuracy"] for c in summary["categories"].values()) / len(tags)
        summary["prompt_accuracy"] = sum(any(s["correct"] for s in r["samples"]) for r in results) / len(results)
    if samples:
        tokens = [s["tokens"] for _, s in samples]
        seconds = [s["seconds"] for _, s in samples]
        summary["compute"] = {
            "tokens": sum(tokens), "tokens_per_sample": sum(tokens) / len(tokens),
            "seconds": round(sum(seconds), 3), "seconds_per_sample": sum(seconds) / len(seconds),
            "cpu_seconds_per_sample": sum(s["cpu_seconds"] for _, s in samples) / len(samples),
            "peak_memory_bytes": max(s["peak_memory_bytes"] for _, s in samples),
        }
    _write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    """The per-category table (accuracy, 95% interval, n) and compute totals, as text."""
    lines = []
    config = summary["config"]["settings"]
    head = f"{config['strategy']} N={config['n']}, {summary['complete_prompts']}/{summary['prompts']} prompts, " \
           f"{summary['samples']} samples"
    lines.append(head)
    if "categories" in summary:
        lines.append(f"{'category':<16} {'accuracy':>8} {'95% CI':>15} {'n':>5}")
        rows = [*summary["categories"].items(), ("overall", summary["overall"])]
        for tag, row in rows:
            lo, hi = row["ci95"]
            lines.append(f"{tag:<16} {row['accuracy']:>8.3f} {f'[{lo:.3f}, {hi:.3f}]':>15} {row['n']:>5}")
        lines.append(f"GenEval score (mean over categories) {summary['geneval_score']:.4f}; "
                     f"prompts with a correct sample {summary['prompt_accuracy']:.3f}")
    if "compute" in summary:
        c = summary["compute"]
        lines.append(f"compute: {c['tokens_per_sample']:,.0f} model-forward tokens/sample, {c['seconds_per_sample']:.2f} s/sample "
                     f"({c['cpu_seconds_per_sample']:.2f} s CPU), "
                     f"peak memory {c['peak_memory_bytes'] / 2**30:.2f} GiB")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- processes


class Distributed:
    """This process's place in a `torchrun` job (rank, world size, device), or a job of one.

    Under torchrun (``WORLD_SIZE`` > 1 in the environment) it joins the process group: gloo on
    the CPU, nccl on GPUs, each rank on GPU ``LOCAL_RANK`` unless a device index is given. The
    barrier's timeout is long because ranks wait there for the slowest shard of an evaluation.
    """

    TIMEOUT = timedelta(hours=24)

    def __init__(self, device: str | None = None):
        import torch

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise TTSVarError("--device cuda was requested but this PyTorch build sees no CUDA GPU; use --device cpu.")
            if self.device.index is None:
                self.device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
            torch.cuda.set_device(self.device)

    def __enter__(self) -> "Distributed":
        if self.world_size > 1:
            import torch.distributed as dist

            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", timeout=self.TIMEOUT)
        return self

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def __exit__(self, *exc) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
