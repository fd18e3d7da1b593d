"""The evaluation harness: GenEval's layout, resume, compute records, sharding, intervals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ttsvar.cli import main
from ttsvar.errors import TTSVarError
from ttsvar.evaluate import (
    EvalSettings, TokenMeter, evaluate_prompts, generate_prompt, sample_seed, search_plan, shard, summarize, to_uint8,
)
from ttsvar.infinity.grids import resolve_grid
from ttsvar.pipelines import run_strategy
from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import BatchSchedule
from ttsvar.stats import paired_bootstrap_interval, wilson_interval
from ttsvar.world import prompt_set, write_prompts

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE_7 = "8,8,6,4,2,1,1"  # tts-var at 7 scales: cluster after 2 and 3, resample after 4 and 5


@pytest.fixture(scope="module")
def model():
    from ttsvar.infinity.tiny import random_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed thread count: the same kernels in every run compared below
    yield random_model("tiny-64")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder(model):
    from ttsvar.infinity.tiny import tiny_text_encoder

    return tiny_text_encoder(model)


@pytest.fixture(scope="module")
def grid():
    return resolve_grid(pn="0.06M")


@pytest.fixture(scope="module")
def prompts():
    return prompt_set(3, seed=4)


def _run(model, encoder, prompts, out, grid, **kw):
    settings = EvalSettings(**{"strategy": "raw", **kw.pop("settings", {})})
    return evaluate_prompts(model, encoder, prompts, out, settings, grid, progress=False, **kw)


def _geneval_reads(out: Path) -> list[tuple[dict, str]]:
    """What GenEval's evaluate_images.py picks up: digit-named folders, metadata.jsonl parsed as
    one JSON document, and samples/ files whose names match \\d+\\.png."""
    found = []
    for folder in sorted(out.iterdir()):
        if not folder.is_dir() or not folder.name.isdigit():
            continue
        metadata = json.loads((folder / "metadata.jsonl").read_text())
        for image in sorted((folder / "samples").iterdir()):
            if image.is_file() and re.match(r"\d+\.png", image.name):
                found.append((metadata, f"{folder.name}/{image.name}"))
    return found


def test_geneval_layout_metadata_and_images(model, encoder, prompts, grid, tmp_path):
    out = tmp_path / "run"
    assert _run(model, encoder, prompts, out, grid, settings={"samples_per_prompt": 2}) == [0, 1, 2]
    assert _geneval_reads(out) == [(p, f"{i:05d}/{k:05d}.png") for i, p in enumerate(prompts) for k in range(2)]
    for i, metadata in enumerate(prompts):
        folder = out / f"{i:05d}"
        assert (folder / "metadata.jsonl").read_text() == json.dumps(metadata) + "\n"
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["00000.png", "00001.png"]
        result = json.loads((folder / "result.json").read_text())
        for k, record in enumerate(result["samples"]):
            assert record["seed"] == sample_seed(0, i, k)
            assert isinstance(record["correct"], bool) and "reason" in record  # world prompts: the checker ran
            assert record["search"]["seed"] == record["seed"]
            png = np.asarray(Image.open(folder / "samples" / record["file"]))
            again = run_strategy(model, encoder.encode(metadata["prompt"]), strategy="raw", n=1, grid=grid, seed=record["seed"])
            expected = (again.images[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
            assert png.shape == (64, 64, 3) and np.array_equal(png, expected)
    summary = summarize(out, prompts)
    assert list(summary["categories"]) == [p["tag"] for p in prompts]
    assert summary["overall"]["n"] == 6 and json.loads((out / "summary.json").read_text()) == summary


def test_resume_skips_finished_prompts_and_redoes_a_half_written_one(model, encoder, prompts, grid, tmp_path):
    out = tmp_path / "run"
    _run(model, encoder, prompts, out, grid)
    before = {i: (out / f"{i:05d}/samples/00000.png").read_bytes() for i in range(3)}
    (out / "00001" / "result.json").unlink()  # interrupted after its images, before its record
    (out / "00001" / "samples" / "00007.png").write_bytes(b"stale")
    assert _run(model, encoder, prompts, out, grid) == [1]
    assert sorted(p.name for p in (out / "00001" / "samples").iterdir()) == ["00000.png"]
    assert {i: (out / f"{i:05d}/samples/00000.png").read_bytes() for i in range(3)} == before
    assert _run(model, encoder, prompts, out, grid) == []
    with pytest.raises(TTSVarError, match="other settings"):
        _run(model, encoder, prompts, out, grid, settings={"seed": 1})
    with pytest.raises(TTSVarError, match="prompt file"):
        _run(model, encoder, prompts[1:], out, grid)


@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_token_count_is_the_schedules_analytic_count(model, encoder, prompts, grid, tmp_path, cfg):
    rows = 2 if cfg != 1 else 1
    _run(model, encoder, prompts[:1], tmp_path / "bon", grid, settings={"strategy": "best-of-n", "n": 3, "cfg": cfg},
         reward=_Brightness())
    record = json.loads((tmp_path / "bon" / "00000" / "result.json").read_text())["samples"][0]
    assert record["tokens"] == rows * 3 * grid.total_tokens  # 3 candidates × 521 tokens of the 7 scales
    assert record["seconds"] > 0 and record["cpu_seconds"] > 0 and record["peak_memory_bytes"] > 0
    settings = {"strategy": "tts-var", "schedule": SCHEDULE_7, "cfg": cfg}
    _run(model, encoder, prompts[:1], tmp_path / "tts", grid, settings=settings, reward=_Brightness(), extractor=_Layout())
    record = json.loads((tmp_path / "tts" / "00000" / "result.json").read_text())["samples"][0]
    schedule = BatchSchedule.parse(SCHEDULE_7, 7)
    assert record["tokens"] == rows * sum(schedule.generated_batch(k) * t for k, t in enumerate(grid.token_counts))


def test_checked_candidates_hold_best_of_n_at_smaller_n_and_raw(model, encoder, prompts, grid, tmp_path):
    _run(model, encoder, prompts[:1], tmp_path / "bon", grid, settings={"strategy": "best-of-n", "n": 4,
                                                                        "check_candidates": True}, reward=_Brightness())
    for i, metadata in enumerate(prompts[:1]):
        record = json.loads((tmp_path / "bon" / f"{i:05d}" / "result.json").read_text())["samples"][0]
        candidates = record["candidates"]
        assert len(candidates) == 4 and record["correct"] == candidates[max(range(4), key=lambda c: candidates[c]["reward"])]["correct"]
        condition = encoder.encode(metadata["prompt"])
        bon = run_strategy(model, condition, strategy="best-of-n", n=4, grid=grid, reward=_Brightness(), seed=record["seed"], keep=4)
        raw = run_strategy(model, condition, strategy="raw", n=1, grid=grid, seed=record["seed"])
        two = run_strategy(model, condition, strategy="best-of-n", n=2, grid=grid, reward=_Brightness(), seed=record["seed"], keep=2)
        for k in range(grid.num_scales):  # a candidate's tokens depend on (seed, candidate) alone, not on N
            by_candidate = bon.state.bits[k][torch.tensor(bon.state.events[-1]["kept"]).argsort()]
            assert torch.equal(raw.state.bits[k][0], by_candidate[0])
            assert torch.equal(two.state.bits[k][torch.tensor(two.state.events[-1]["kept"]).argsort()], by_candidate[:2])
        assert [c["reward"] for c in candidates] == bon.state.events[-1]["rewards"]
        second = to_uint8(bon.images[bon.state.events[-1]["kept"].index(1)])
        only_candidate_1 = lambda image, _: SimpleNamespace(correct=np.array_equal(image, second), reason="")  # noqa: E731
        settings = EvalSettings("best-of-n", n=4, check_candidates=True)
        _, result = generate_prompt(model, encoder, metadata, i, settings, grid, reward=_Brightness(), extractor=None,
                                    checker=only_candidate_1, device=model.device)
        assert [c["correct"] for c in result["samples"][0]["candidates"]] == [False, True, False, False]
    with pytest.raises(TTSVarError, match="needs a checker"):
        _run(model, encoder, prompts, tmp_path / "none", grid, settings={"check_candidates": True}, checker="none")


def test_token_meter_counts_cache_rebuilds(model, encoder, grid):
    state = sample_scales(start_state(model, encoder.encode("a photo of a circle"), BatchSchedule((2,) * 7), grid), until=2)
    t = grid.token_counts
    with TokenMeter(model) as meter:
        sample_scales(state, until=3)  # continues state's cache: one scale
        sample_scales(state, until=3)  # state's cache was taken: two scales replayed, then one sampled
    assert meter.tokens == 2 * 2 * (t[2] + (t[0] + t[1] + t[2]))
    assert "forward_scale" not in model.transformer.__dict__  # the meter leaves the model as it was


def test_shards_split_prompts_and_merge_into_the_single_process_summary(model, encoder, grid, tmp_path):
    assert shard(10, 1, 3) == [1, 4, 7]
    parts = [shard(10, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(10))
    prompts = prompt_set(3, seed=2)
    settings = {"strategy": "best-of-n", "n": 2}
    single = tmp_path / "single"
    _run(model, encoder, prompts, single, grid, settings=settings, reward=_Brightness())
    sharded = tmp_path / "sharded"
    ran = [_run(model, encoder, prompts, sharded, grid, settings=settings, reward=_Brightness(), rank=r, world_size=2)
           for r in range(2)]
    assert ran == [[0, 2], [1]]
    assert _comparable(summarize(sharded, prompts)) == _comparable(summarize(single, prompts))
    for i in range(3):
        assert (single / f"{i:05d}/samples/00000.png").read_bytes() == (sharded / f"{i:05d}/samples/00000.png").read_bytes()


def _comparable(summary: dict) -> dict:
    """A summary without what depends on timing and on the process (wall time, memory)."""
    compute = {k: v for k, v in summary["compute"].items() if "seconds" not in k and "memory" not in k}
    return {**summary, "compute": compute}


def test_torchrun_shards_over_two_processes(tmp_path):
    prompts = prompt_set(3, seed=5)
    write_prompts(tmp_path / "prompts.jsonl", prompts)
    args = ["eval", "--prompts", str(tmp_path / "prompts.jsonl"), "--random-model", "tiny-64", "--pn", "0.06M",
            "--strategy", "best-of-n", "--num-candidates", "2", "--device", "cpu"]  # torchrun would take "--n" as its own
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ttsvar"]
    done = subprocess.run([*command, *args, "--out", str(tmp_path / "dist")], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("overall") == 1  # one merged table, from rank 0
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    merged = json.loads((tmp_path / "dist" / "summary.json").read_text())
    assert merged["complete_prompts"] == 3
    assert _comparable(merged) == _comparable(json.loads((tmp_path / "one" / "summary.json").read_text()))


def test_ablations_replace_filters_by_a_random_choice_at_the_same_compute(model, encoder, grid):
    settings = EvalSettings("tts-var", schedule=SCHEDULE_7, ablations=("no-clustering",))
    schedule, filters = search_plan(settings, grid.num_scales)
    assert filters == {2: "random", 3: "random", 4: "resample", 5: "resample"}
    assert search_plan(EvalSettings("tts-var", schedule=SCHEDULE_7, ablations=("no-resampling",)), 7)[1] == {
        2: "cluster", 3: "cluster", 4: "random", 5: "random"}
    condition = encoder.encode("a photo of a red circle")
    with TokenMeter(model) as meter:
        result = run_strategy(model, condition, strategy="tts-var", n=1, grid=grid, reward=_Brightness(),
                              schedule=schedule, filters=filters, seed=3)
    kinds = [e["kind"] for e in result.record["events"]]
    assert kinds == ["random", "random", "resample", "resample", "select"]
    assert meter.tokens == 2 * sum(schedule.generated_batch(k) * t for k, t in enumerate(grid.token_counts))
    drops = [e["kept"] for e in result.record["events"][:2]]
    assert all(len(set(kept)) == len(kept) for kept in drops)  # a random subset: no candidate twice
    again = run_strategy(model, condition, strategy="tts-var", n=1, grid=grid, reward=_Brightness(),
                         schedule=schedule, filters=filters, seed=3)
    assert again.record["events"] == result.record["events"]
    with pytest.raises(TTSVarError, match="unknown ablation"):
        EvalSettings("tts-var", ablations=("no-search",))
    with pytest.raises(TTSVarError, match="unknown filter kind"):
        run_strategy(model, condition, strategy="tts-var", n=1, grid=grid, reward=_Brightness(), schedule=schedule,
                     filters={2: "best"})


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (score interval without correction)
    for (k, n), expected in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                             (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        assert wilson_interval(k, n) == pytest.approx(expected, abs=5e-5)
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(TTSVarError):
        wilson_interval(3, 0)


def test_paired_bootstrap_interval_of_a_difference():
    a, b = [1, 0, 1, 1] * 50, [0, 0, 1, 1] * 50  # a wins on a quarter of the prompts, never loses
    diff, lower, upper = paired_bootstrap_interval(a, b)
    assert diff == 0.25 and 0.15 < lower < 0.25 < upper < 0.35
    assert paired_bootstrap_interval(a, a) == (0.0, 0.0, 0.0)
    assert paired_bootstrap_interval(a, b) == (diff, lower, upper)  # seeded


def test_cli_eval_prints_the_category_table(tmp_path, capsys):
    write_prompts(tmp_path / "p.jsonl", prompt_set(2, seed=0))
    args = ["eval", "--prompts", str(tmp_path / "p.jsonl"), "--random-model", "tiny-64", "--pn", "0.06M",
            "--strategy", "tts-var", "--schedule", SCHEDULE_7, "--ablate", "no-resampling", "--out", str(tmp_path / "o"),
            "--device", "cpu", "--fast-filters"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "single_object" in out and "overall" in out and "model-forward tokens/sample" in out
    assert main([*args[:-1], "--features-mode", "pool"]) == 2
    assert "thumbnail" in capsys.readouterr().err


class _Brightness:
    name, input_size = "brightness", 64

    def score(self, images, prompts):
        return images.float().mean(dim=(1, 2, 3))


class _Layout:
    name, input_size = "layout", 64

    def features(self, images):
        return torch.nn.functional.adaptive_avg_pool2d(images.float().mean(1, keepdim=True), 4).flatten(1)
