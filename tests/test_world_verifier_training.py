"""Training the world's verifiers: near misses, degradations, batches, determinism and resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.world import near_miss as NM
from ttsvar.world import train_verifiers as T
from ttsvar.world.degrade import degrade
from ttsvar.world.prompts import all_prompts
from ttsvar.world.scenes import sample_scene, training_sample
from ttsvar.world.vocab import TAGS

TINY = dataclasses.replace(T.VerifierConfig(), image_size=32, width=32, heads=2, vision_layers=1, text_layers=1,
                           projection=16, pairs=4, negatives=1, steps=3, warmup=1, checkpoint_every=1)


def test_every_prompt_and_description_parses_back():
    import json

    texts = [json.loads(m)["prompt"] for tag in TAGS for m in all_prompts(tag)]
    texts += [training_sample(3, i, descriptive=1.0).caption for i in range(100)]
    for text in texts:
        assert NM.parse_caption(text).text() == text
    with pytest.raises(TTSVarError, match="cannot read"):
        NM.parse_caption("a photo of a red")


def test_near_misses_are_false_and_one_edit_away():
    rng = np.random.default_rng(0)
    kinds = set()
    for i in range(150):
        sample = training_sample(5, i)
        caption = NM.parse_caption(sample.caption)
        assert NM.caption_holds(sample.scene, caption)
        found = NM.near_miss_scene(rng, sample.scene, caption)
        if found is None:
            continue
        scene, edited, kind = found
        kinds.add(kind)
        assert not NM.caption_holds(sample.scene, edited) and NM.caption_holds(scene, edited)
        assert not NM.caption_holds(scene, caption)
        changed = [a != b for a, b in zip(caption.phrases, edited.phrases)] + [caption.relation != edited.relation]
        assert sum(changed) == (2 if kind == "swap" else 1)
    assert kinds == set(NM.EDITS)


def test_relation_edit_and_colour_swap():
    rng = np.random.default_rng(1)
    meta = {"tag": "position", "include": [{"class": "square", "count": 1},
                                           {"class": "circle", "count": 1, "position": ["left of", 0]}],
            "prompt": "a photo of a circle left of a square"}
    scene = sample_scene(rng, meta)
    edited, kind = NM.near_miss_caption(rng, scene, NM.parse_caption(meta["prompt"]), "relation")
    assert edited.relation != "left of" and not NM.caption_holds(scene, edited)
    swapped = NM.edit_caption(rng, NM.parse_caption("a photo of a red circle and a blue square"), "swap")
    assert swapped.text() == "a photo of a blue circle and a red square"


def test_degrade_is_seeded_and_keeps_range():
    x = torch.rand(6, 3, 32, 32)
    a = degrade(x, torch.Generator().manual_seed(3))
    b = degrade(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, degrade(x, torch.Generator().manual_seed(4)))


def test_batch_truth_matrix():
    batch = T.make_batch(TINY, seed=0, step=0)
    n = batch.n_images
    assert batch.images.shape == (n, 3, 32, 32) and n > TINY.pairs and len(batch.captions) > n
    captions = [NM.parse_caption(c) for c in batch.captions]
    brute = torch.tensor([[NM.caption_holds(s, c) for c in captions] for s in batch.scenes])
    assert torch.equal(batch.holds, brute)  # the shape-count shortcut drops no true pair
    assert batch.holds[:, :n].diagonal().all()  # every image's own caption is true of it
    again = T.make_batch(TINY, seed=0, step=0)
    assert torch.equal(again.images, batch.images) and again.captions == batch.captions


def _weights(out):
    state = torch.load(out / T.CHECKPOINT, map_location="cpu", weights_only=True)
    return state["step"], state["model"], state["optimizer"]


def test_training_is_deterministic_and_resume_equals_uninterrupted(tmp_path):
    full = T.train(tmp_path / "full", seed=1, config=TINY, progress=False)
    assert full.finished and full.step == 3 and len(full.losses) == 3
    # a second fresh run: same process, threads and data, so the arithmetic is identical and the
    # losses bitwise equal (the first two steps of `part` repeat those of `full`)
    part = T.train(tmp_path / "part", seed=1, config=TINY, stop_at=2, progress=False)
    assert part.step == 2 and not part.finished and part.losses == full.losses[:2]
    with pytest.raises(TTSVarError, match="--resume"):
        T.train(tmp_path / "part", seed=1, config=TINY, progress=False)
    rest = T.train(tmp_path / "part", seed=1, config=TINY, resume=True, progress=False)
    assert rest.step == 3 and part.losses + rest.losses == full.losses
    step_a, model_a, optim_a = _weights(tmp_path / "full")
    step_b, model_b, optim_b = _weights(tmp_path / "part")
    assert step_a == step_b == 3
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    with pytest.raises(TTSVarError, match="other settings"):
        T.train(tmp_path / "part", seed=2, config=TINY, resume=True, progress=False)


def test_exported_folder_loads_through_the_scorers(tmp_path):
    from ttsvar.scoring import world as W

    T.train(tmp_path / "run", seed=0, config=TINY, progress=False)
    state = torch.load(tmp_path / "run" / T.CHECKPOINT, map_location="cpu", weights_only=True)
    model = T.new_model(TINY, 0)
    model.load_state_dict(state["model"])
    calibration = T.calibrate(model.eval(), TINY, n_prompts=12)
    folder = T.export(tmp_path / "run", tmp_path / "verifier", calibration=calibration)
    reward = W.load_world_reward(folder)
    images = torch.rand(3, 3, 32, 32)
    prompts = ["a photo of a circle"] * 3
    # exported in float16: the cosine moves by float16 rounding of the weights only
    cos = T.reward_from_model(model, TINY).cosine(images, prompts)
    torch.testing.assert_close(reward.cosine(images, prompts), cos, rtol=0, atol=2e-2)
    assert W.load_world_features(folder, mode="pca").features(images).shape == (3, 16)


def test_the_reward_tuning_loss_prefers_accepted_candidates_and_the_choice_is_scored_per_prompt():
    """ImageReward's pairwise loss on generated candidates: lower when the checker's accepted
    candidate scores higher; and the argmax-vs-random report counts only prompts the checker splits."""
    from ttsvar.world import tune_reward as R

    model = T.new_model(TINY, seed=0)
    tokenizer = T.build_tokenizer(TINY.context)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 2, 3, 32, 32, generator=g)
    prompts = ["a photo of a red circle", "a photo of two blue squares"]
    cos = R.cosine(model, tokenizer, images.flatten(0, 1), [p for p in prompts for _ in range(2)]).view(2, 2)
    first_good = torch.tensor([[True, False], [True, False]])
    loss = R.pairwise_loss(model, tokenizer, images, prompts, first_good, scale=20.0)
    flipped = R.pairwise_loss(model, tokenizer, images, prompts, ~first_good, scale=20.0)
    expected = torch.nn.functional.softplus(-20.0 * (cos[:, 0] - cos[:, 1])).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    assert torch.allclose(loss - flipped, -20.0 * (cos[:, 0] - cos[:, 1]).mean(), atol=1e-5)  # softplus(-x) - softplus(x) = -x
    assert R.pairwise_loss(model, tokenizer, images, prompts, torch.ones(2, 2, dtype=torch.bool), 20.0) is None
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    class Fixed:
        """Cosines of the 3 prompts × 2 candidates, one call per judged scale."""

        def __init__(self):
            self.calls = iter([torch.tensor([0.9, 0.1, 0.2, 0.8, 0.5, 0.4]), torch.tensor([0.1, 0.9, 0.2, 0.9, 0.5, 0.4])])

        def cosine(self, images, prompts):
            assert images.shape == (6, 3, 32, 32) and images.dtype == torch.float32
            return next(self.calls)

    data = R.Candidates(torch.zeros(3, 2, 2, 3, 32, 32, dtype=torch.uint8), ["a", "b", "c"],
                        torch.tensor([[True, False], [True, False], [True, True]]), scales=(4, 6))
    report = R.choice_quality(Fixed(), data)
    assert report["informative_prompts"] == 2 and report["random_pick"] == 0.5
    assert report["argmax_accepted"] == {4: 0.5, 6: 0.0}


def test_reward_candidates_are_the_searchs_previews_at_the_judged_scales_and_resume_from_their_cache(
        tmp_path, monkeypatch):
    """The tuning data shows each candidate as the search's filters see it at every judged scale
    (where the paper's 7-scale plan resamples, then the finished image), labelled by the finished
    image; an interrupted generation continues after the prompts its cache holds."""
    from ttsvar.decode import filter_previews
    from ttsvar.infinity.grids import resolve_grid
    from ttsvar.sampler import sample_scales, start_state
    from ttsvar.schedule import BatchSchedule
    from ttsvar.world import tune_reward as R
    from ttsvar.world.model import PN, load_world_model
    from ttsvar.world.prompts import prompt_set

    assert R.judged_scales(7) == (4, 5, 6)
    world = load_world_model()
    metadata = prompt_set(3, seed=5)
    cache = tmp_path / "candidates.pt"
    data = R.generate_candidates(world, metadata, candidates=2, seed=11, progress=False, cache=cache, key="k",
                                 save_every=2)
    assert data.images.shape == (3, 3, 2, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.accepted.shape == (3, 2) and data.scales == (4, 5, 6)
    grid = resolve_grid(aspect=1.0, pn=PN)
    state = start_state(world.model, world.text_encoder.encode(metadata[1]["prompt"]), BatchSchedule((2,) * 7), grid,
                        seed=12)
    preview = filter_previews(sample_scales(state, until=5))
    assert torch.equal(data.view(torch.tensor([1]), torch.tensor([0]))[0], preview)
    assert not torch.equal(data.images[1, 0], data.images[1, 2])

    stored = torch.load(cache, weights_only=True)
    torch.save({"key": stored["key"], "images": stored["images"][:2], "accepted": stored["accepted"][:2]}, cache)
    drawn = []
    draw = R.prompt_candidates
    monkeypatch.setattr(R, "prompt_candidates", lambda world, meta, *rest: drawn.append(meta) or draw(world, meta, *rest))
    again = R.generate_candidates(world, metadata, candidates=2, seed=11, progress=False, cache=cache, key="k")
    assert drawn == [metadata[2]]
    assert torch.equal(again.images, data.images) and torch.equal(again.accepted, data.accepted)
    R.generate_candidates(world, metadata[:1], candidates=2, seed=11, progress=False, cache=cache, key="other weights")
    assert len(drawn) == 2
    finished = R.generate_candidates(world, metadata[:1], candidates=2, seed=11, progress=False, cache=cache, key="k",
                                     previews=False)
    assert len(drawn) == 3
    assert finished.scales == (6,) and torch.equal(finished.images, data.images[:1, 2:])


def test_reward_tuning_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Stopped after 2 of 4 steps and resumed, the tuned reward is byte for byte the uninterrupted
    run's (the generator's candidates are stood in for by fixed random ones: this is about the tuning)."""
    from dataclasses import replace

    from ttsvar.world import tune_reward as R
    from ttsvar.world.model import WEIGHTS_DIR

    def candidates(world, metadata, candidates, seed, **cache):
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (len(metadata), 3, candidates, 3, 64, 64), generator=g, dtype=torch.uint8)
        accepted = torch.arange(len(metadata) * candidates).view(len(metadata), candidates) % 2 == 0
        return R.Candidates(images, [m["prompt"] for m in metadata], accepted, (4, 5, 6))

    monkeypatch.setattr(R, "generate_candidates", candidates)
    config = R.RewardTuneConfig(prompts=4, candidates=3, steps=4, batch_prompts=2, held_prompts=1, checkpoint_every=2)
    verifier = WEIGHTS_DIR / "verifier"
    R.tune(verifier, WEIGHTS_DIR, config, tmp_path / "straight", progress=False)
    R.tune(verifier, WEIGHTS_DIR, replace(config, steps=2), tmp_path / "resumed", progress=False)
    R.tune(verifier, WEIGHTS_DIR, config, tmp_path / "resumed", resume=True, progress=False)
    tuned = (tmp_path / "straight" / "reward" / "model.safetensors").read_bytes()
    assert tuned == (tmp_path / "resumed" / "reward" / "model.safetensors").read_bytes()
    assert tuned != (verifier / "model.safetensors").read_bytes()
