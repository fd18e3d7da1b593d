"""How good the world's verifiers are, measured on held prompts (``prompt_set`` with a seed
training never uses: training draws from ``training_sample``'s stream).

* :func:`ranking` — pairwise ranking accuracy per GenEval category: the reward must score an
  image higher with its prompt than with a near-miss caption (one edit: colour, shape, count,
  relation, colour swap), and higher than a near-miss scene's image with the same prompt; on
  clean renders and on generator-like degraded ones.
* :func:`agreement` — how often the reward's choice among candidates is one the world's checker
  accepts: per prompt, ``k`` degraded images, each a matching scene or a near miss with
  probability ½; over the sets where the checker accepts some but not all, the share where the
  reward's argmax is accepted, against the share a random pick would get.
* :func:`layout_separation` — whether features separate layouts: groups of scenes with planted
  layouts (same boxes, random colours and backgrounds), K-Means with as many centres as layouts
  (the search's settings), adjusted Rand index against the planted labels, and the share of
  layouts the cluster filter's representatives cover.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import torch

from . import near_miss as NM
from .checker import check
from .degrade import degrade
from .prompts import prompt_set
from .render import render
from .scenes import sample_background, sample_scene
from .vocab import COLORS, TAGS

HELD_SEED = 20_251_111
"""Seed of the held prompts and scenes of every measurement here."""


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def _generator_like(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Every image degraded (no clean share), quantised to uint8 levels as a saved image is."""
    y = degrade(images, torch.Generator().manual_seed(seed), clean=0.0)
    return (y * 255).round() / 255


def _scores(reward, images: torch.Tensor, index: list[int], texts: list[str], chunk: int = 256) -> np.ndarray:
    out = [reward.score(images[index[i:i + chunk]], texts[i:i + chunk]) for i in range(0, len(index), chunk)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def ranking(reward, n_prompts: int = 300, size: int = 64, seed: int = HELD_SEED) -> dict:
    """Pairwise ranking accuracy: ``{"clean"|"degraded": {tag: {kind: [wins, total]}}}``, kinds
    being the caption edits and ``"image"`` (matching vs near-miss scene)."""
    prompts = prompt_set(n_prompts, seed)
    images, pairs = [], []  # pairs: (tag, kind, image index, text, other image index, other text)
    for k, meta in enumerate(prompts):
        rng = np.random.default_rng([seed, k, 1])
        scene = sample_scene(rng, meta)
        caption = NM.parse_caption(meta["prompt"])
        i = len(images)
        images.append(render(scene, size))
        for kind in NM.applicable_edits(caption):
            found = NM.near_miss_caption(rng, scene, caption, kind)
            if found is not None:
                pairs.append((meta["tag"], kind, i, meta["prompt"], i, found[0].text()))
        miss = NM.near_miss_scene(rng, scene, caption)
        if miss is not None:
            images.append(render(miss[0], size))
            pairs.append((meta["tag"], "image", i, meta["prompt"], len(images) - 1, meta["prompt"]))
    clean = _to_tensor(images)
    out = {}
    for name, x in (("clean", clean), ("degraded", _generator_like(clean, seed))):
        good = _scores(reward, x, [p[2] for p in pairs], [p[3] for p in pairs])
        bad = _scores(reward, x, [p[4] for p in pairs], [p[5] for p in pairs])
        table: dict = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for (tag, kind, *_), g, b in zip(pairs, good, bad):
            table[tag][kind][0] += int(g > b)
            table[tag][kind][1] += 1
        out[name] = {t: dict(v) for t, v in table.items()}
    return out


def agreement(reward, n_prompts: int = 300, k: int = 8, size: int = 64, seed: int = HELD_SEED) -> dict:
    """Argmax agreement with the checker: ``{tag: {"sets", "agree", "chance", "accepted",
    "candidates", "corr"}}`` (counts of informative sets, of sets where the argmax is accepted,
    the expected count for a random pick, the checker's acceptance count over all candidates and
    their number, and the Pearson correlation of reward and acceptance over the candidates)."""
    prompts = prompt_set(n_prompts, seed + 1)
    images, owner = [], []
    for j, meta in enumerate(prompts):
        rng = np.random.default_rng([seed, j, 2])
        caption = NM.parse_caption(meta["prompt"])
        for _ in range(k):
            scene = sample_scene(rng, meta)
            if rng.random() < 0.5:
                miss = NM.near_miss_scene(rng, scene, caption)
                scene = miss[0] if miss is not None else scene
            images.append(render(scene, size))
            owner.append(j)
    x = _generator_like(_to_tensor(images), seed + 1)
    u8 = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    accepted = np.array([check(u8[i], prompts[owner[i]]).correct for i in range(len(owner))])
    scores = _scores(reward, x, list(range(len(owner))), [prompts[j]["prompt"] for j in owner])
    out = {t: {"sets": 0, "agree": 0, "chance": 0.0, "accepted": 0.0, "candidates": 0} for t in TAGS}
    tags = np.array([prompts[j]["tag"] for j in owner])
    for tag in TAGS:
        mask = tags == tag
        ok = accepted[mask].astype(float)
        out[tag]["corr"] = float(np.corrcoef(scores[mask], ok)[0, 1]) if 0 < ok.sum() < ok.size else float("nan")
    out["all"] = {"corr": float(np.corrcoef(scores, accepted.astype(float))[0, 1])}
    for j, meta in enumerate(prompts):
        row = out[meta["tag"]]
        ok, s = accepted[j * k:(j + 1) * k], scores[j * k:(j + 1) * k]
        row["accepted"] += float(ok.sum())
        row["candidates"] += k
        if 0 < ok.sum() < k:
            row["sets"] += 1
            row["agree"] += int(ok[int(np.argmax(s))])
            row["chance"] += float(ok.mean())
    return out


def planted_layouts(rng: np.random.Generator, n_layouts: int, per_layout: int, size: int) -> tuple[list, list[int]]:
    """Images of ``n_layouts`` two-object layouts (boxes and shapes kept), each drawn
    ``per_layout`` times with random colours and backgrounds; and their layout labels."""
    from .prompts import all_prompts
    import json

    two = all_prompts("two_object")
    images, labels = [], []
    for label in range(n_layouts):
        base = sample_scene(rng, json.loads(two[int(rng.integers(len(two)))]))
        for _ in range(per_layout):
            objects = tuple(replace(o, color=list(COLORS)[int(rng.integers(len(COLORS)))]) for o in base.objects)
            images.append(render(replace(base, background=sample_background(rng), objects=objects), size))
            labels.append(label)
    return images, labels


def layout_separation(extractors: dict, groups: int = 20, n_layouts: int = 4, per_layout: int = 6,
                      size: int = 64, early: int | None = None, seed: int = HELD_SEED) -> dict:
    """``{name: {"ari": mean ARI, "coverage": mean share of layouts the representatives cover}}``.
    ``early``: also blur the images through an ``early``×``early`` thumbnail first, as an
    intermediate image of an early scale looks."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from ..search.clustering import KMEANS_N_INIT, cluster_representatives

    out = {name: {"ari": 0.0, "coverage": 0.0} for name in extractors}
    for g in range(groups):
        rng = np.random.default_rng([seed, g, 3])
        images, labels = planted_layouts(rng, n_layouts, per_layout, size)
        x = _to_tensor(images)
        if early:
            small = torch.nn.functional.interpolate(x, size=(early, early), mode="area")
            x = torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
        for name, extractor in extractors.items():
            f = extractor.features(x).double().numpy()
            pred = KMeans(n_layouts, n_init=KMEANS_N_INIT, random_state=g).fit_predict(f)
            out[name]["ari"] += adjusted_rand_score(labels, pred) / groups
            reps = cluster_representatives(torch.from_numpy(f), n_layouts, seed=g).tolist()
            out[name]["coverage"] += len({labels[i] for i in reps}) / n_layouts / groups
    return out


def format_ranking(table: dict) -> str:
    """A Markdown table: rows = categories (+ all), columns = edit kinds (+ all), for each image set."""
    kinds = list(NM.EDITS) + ["image"]
    lines = []
    for name, per_tag in table.items():
        lines += [f"\n{name} images: share of pairs ranked right (pairs)",
                  "| category | " + " | ".join(kinds) + " | all |", "|---" * (len(kinds) + 2) + "|"]
        totals = defaultdict(lambda: [0, 0])
        for tag in TAGS:
            row, all_w, all_n = [], 0, 0
            for kind in kinds:
                w, n = per_tag.get(tag, {}).get(kind, (0, 0))
                totals[kind][0] += w
                totals[kind][1] += n
                all_w, all_n = all_w + w, all_n + n
                row.append(f"{w / n:.2f} ({n})" if n else "–")
            lines.append(f"| {tag} | " + " | ".join(row) + f" | {all_w / max(all_n, 1):.2f} ({all_n}) |")
        w_all = sum(v[0] for v in totals.values())
        n_all = sum(v[1] for v in totals.values())
        lines.append("| all | " + " | ".join(f"{w / n:.2f} ({n})" if n else "–" for w, n in
                                            (totals[k] for k in kinds)) + f" | {w_all / max(n_all, 1):.2f} ({n_all}) |")
    return "\n".join(lines)


def format_agreement(table: dict) -> str:
    lines = ["| category | informative sets | reward's argmax accepted | random pick | checker accepts | "
             "corr(reward, accepted) |", "|---|---|---|---|---|---|"]
    tot = defaultdict(float)
    for tag in TAGS:
        r = table[tag]
        for key in r:
            if key != "corr":
                tot[key] += r[key]
        lines.append(_agreement_row(tag, r))
    lines.append(_agreement_row("all", {**tot, "corr": table["all"]["corr"]}))
    return "\n".join(lines)


def _agreement_row(name: str, r) -> str:
    sets = max(r["sets"], 1)
    return (f"| {name} | {int(r['sets'])} | {r['agree'] / sets:.2f} | {r['chance'] / sets:.2f} | "
            f"{r['accepted'] / max(r['candidates'], 1):.2f} | {r['corr']:.2f} |")
