"""Prompts of the world in GenEval's metadata format, and the held prompt sets built from them.

A prompt is a dict with GenEval's keys: ``tag`` (one of ``TAGS``), ``include`` (a list of
``{"class", "count"[, "color"][, "position": [relation, index]]}``), ``exclude`` (counting only:
the same class with ``count + 1``) and ``prompt`` (the caption, built with GenEval's templates).
A file of such dicts, one per line, is what GenEval's scorer reads as ``metadata.jsonl``.

The world is small, so each category has a finite list of distinct prompts (``all_prompts``):
4 single-object, 12 two-object, 12 counting, 24 colour, 48 position and 360 colour-attribution
prompts. A balanced set of a few hundred prompts therefore repeats the small categories; it
cycles through a shuffled list of all of them so every prompt appears equally often.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ..errors import TTSVarError
from .vocab import COLORS, NUMBER_WORDS, RELATIONS, SHAPES, TAGS, plural, with_article

Metadata = dict


def single_object(shape: str) -> Metadata:
    return {"tag": "single_object", "include": [{"class": shape, "count": 1}],
            "prompt": f"a photo of {with_article(shape)}"}


def two_object(shape_a: str, shape_b: str) -> Metadata:
    return {"tag": "two_object", "include": [{"class": shape_a, "count": 1}, {"class": shape_b, "count": 1}],
            "prompt": f"a photo of {with_article(shape_a)} and {with_article(shape_b)}"}


def counting(shape: str, count: int) -> Metadata:
    return {"tag": "counting", "include": [{"class": shape, "count": count}],
            "exclude": [{"class": shape, "count": count + 1}],
            "prompt": f"a photo of {NUMBER_WORDS[count]} {plural(shape)}"}


def colors(shape: str, color: str) -> Metadata:
    return {"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}],
            "prompt": f"a photo of {with_article(color)} {shape}"}


def position(shape_a: str, relation: str, shape_b: str) -> Metadata:
    """'a photo of a A <relation> a B': like GenEval, B is listed first and A points at it."""
    return {"tag": "position",
            "include": [{"class": shape_b, "count": 1}, {"class": shape_a, "count": 1, "position": [relation, 0]}],
            "prompt": f"a photo of {with_article(shape_a)} {relation} {with_article(shape_b)}"}


def color_attr(shape_a: str, color_a: str, shape_b: str, color_b: str) -> Metadata:
    return {"tag": "color_attr",
            "include": [{"class": shape_a, "count": 1, "color": color_a},
                        {"class": shape_b, "count": 1, "color": color_b}],
            "prompt": f"a photo of {with_article(color_a)} {shape_a} and {with_article(color_b)} {shape_b}"}


@functools.cache
def all_prompts(tag: str) -> tuple[str, ...]:
    """Every distinct prompt of a category, as JSON strings (immutable, so the cache is safe)."""
    if tag not in TAGS:
        raise TTSVarError(f"unknown prompt tag {tag!r}; expected one of {', '.join(TAGS)}")
    pairs = [(a, b) for a in SHAPES for b in SHAPES if a != b]
    color_pairs = [(a, b) for a in COLORS for b in COLORS if a != b]
    if tag == "single_object":
        items = [single_object(s) for s in SHAPES]
    elif tag == "two_object":
        items = [two_object(a, b) for a, b in pairs]
    elif tag == "counting":
        items = [counting(s, n) for s in SHAPES for n in NUMBER_WORDS]
    elif tag == "colors":
        items = [colors(s, c) for s in SHAPES for c in COLORS]
    elif tag == "position":
        items = [position(a, r, b) for a, b in pairs for r in RELATIONS]
    else:
        items = [color_attr(a, ca, b, cb) for a, b in pairs for ca, cb in color_pairs]
    return tuple(json.dumps(m) for m in items)


def sample_prompt(rng: np.random.Generator, tag: str | None = None) -> Metadata:
    """A uniformly drawn prompt of ``tag`` (or of a uniformly drawn category when ``tag`` is None)."""
    if tag is None:
        tag = TAGS[int(rng.integers(len(TAGS)))]
    choices = all_prompts(tag)
    return json.loads(choices[int(rng.integers(len(choices)))])


def prompt_set(n: int, seed: int, tags: tuple[str, ...] | list[str] | None = None) -> list[Metadata]:
    """A deterministic set of ``n`` prompts, balanced over ``tags`` (default: all six), grouped by tag.

    Each tag gets ``n // len(tags)`` prompts (the first ``n % len(tags)`` tags one more); within a
    tag the prompts cycle through a seeded shuffle of ``all_prompts(tag)``, so repeats are spread
    evenly when the category has fewer distinct prompts than it is given.
    """
    tags = tuple(TAGS if tags is None else tags)
    if n < 1 or not tags:
        raise TTSVarError(f"prompt_set needs n >= 1 and at least one tag (got n={n}, tags={tags})")
    rng = np.random.default_rng(seed)
    out = []
    for i, tag in enumerate(tags):
        choices = all_prompts(tag)
        k = n // len(tags) + (i < n % len(tags))
        order = rng.permutation(len(choices))
        out += [json.loads(choices[order[j % len(choices)]]) for j in range(k)]
    return out


def validate_metadata(metadata: Metadata) -> Metadata:
    """Check that ``metadata`` follows GenEval's schema and this world's words; return it unchanged."""
    def fail(what: str) -> None:
        raise TTSVarError(f"prompt metadata {json.dumps(metadata)[:200]}: {what}")

    if not isinstance(metadata, dict):
        fail("expected a JSON object with keys tag, include, [exclude], prompt")
    if metadata.get("tag") not in TAGS:
        fail(f"'tag' must be one of {', '.join(TAGS)}")
    if not isinstance(metadata.get("prompt"), str):
        fail("'prompt' must be the caption string")
    extra = set(metadata) - {"tag", "include", "exclude", "prompt"}
    if extra:
        fail(f"unexpected keys {sorted(extra)}")
    include = metadata.get("include")
    if not isinstance(include, list) or not include:
        fail("'include' must be a non-empty list of {class, count[, color][, position]}")
    for clause in include + list(metadata.get("exclude", [])):
        if not isinstance(clause, dict) or clause.get("class") not in SHAPES:
            fail(f"each clause needs a 'class' among {', '.join(SHAPES)}")
        if not isinstance(clause.get("count"), int) or clause["count"] < 1:
            fail("each clause needs an integer 'count' >= 1")
        if "color" in clause and clause["color"] not in COLORS:
            fail(f"'color' must be one of {', '.join(COLORS)}")
    for i, clause in enumerate(include):
        if "position" in clause:
            pos = clause["position"]
            if (not isinstance(pos, (list, tuple)) or len(pos) != 2 or pos[0] not in RELATIONS
                    or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                fail("'position' must be [relation, index of an earlier include clause], "
                     f"relation one of {', '.join(RELATIONS)}")
    return metadata


def write_prompts(path: str | Path, prompts: list[Metadata]) -> None:
    """Write prompts as JSON lines (GenEval's evaluation_metadata.jsonl layout)."""
    lines = [json.dumps(validate_metadata(m)) for m in prompts]
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_prompts(path: str | Path) -> list[Metadata]:
    """Read a JSON-lines prompt file, checking every line against the schema."""
    path = Path(path)
    if not path.is_file():
        raise TTSVarError(f"prompt file {path} not found; "
                          "write one with ttsvar.world.write_prompts(path, prompt_set(...))")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(validate_metadata(json.loads(line)))
        except json.JSONDecodeError as err:
            raise TTSVarError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        except TTSVarError as err:
            raise TTSVarError(f"{path}, line {number}: {err}") from None
    return out


def hard_negative(rng: np.random.Generator, metadata: Metadata) -> Metadata:
    """A prompt of the same category that differs from ``metadata`` in one attribute.

    single_object / two_object: one shape replaced; counting: another count; colors: another
    colour; position: another relation; color_attr: the two colours swapped. Such near misses
    are what a checker (and a reward model trained with them) must reject.
    """
    tag = validate_metadata(metadata)["tag"]
    inc = metadata["include"]

    def other(options, *exclude):
        options = [o for o in options if o not in exclude]
        return options[int(rng.integers(len(options)))]

    if tag == "single_object":
        return single_object(other(SHAPES, inc[0]["class"]))
    if tag == "two_object":
        a, b = inc[0]["class"], inc[1]["class"]
        if rng.integers(2):
            return two_object(a, other(SHAPES, a, b))
        return two_object(other(SHAPES, a, b), b)
    if tag == "counting":
        return counting(inc[0]["class"], other(list(NUMBER_WORDS), inc[0]["count"]))
    if tag == "colors":
        return colors(inc[0]["class"], other(list(COLORS), inc[0]["color"]))
    if tag == "position":
        return position(inc[1]["class"], other(RELATIONS, inc[1]["position"][0]), inc[0]["class"])
    return color_attr(inc[0]["class"], inc[1]["color"], inc[1]["class"], inc[0]["color"])
