"""Near misses: captions and scenes that differ from a true (scene, caption) pair in one attribute.

A reward model that only learns "which words are in the picture" ranks "a red circle and a blue
square" and "a blue circle and a red square" alike; contrastive training needs the near misses
as negatives to learn binding, counting and relations. They are made here on a small structured
form of the world's captions (:class:`Caption`), which covers both GenEval's prompts and the
scenes' descriptive captions ("a photo of two red circles", "a red circle left of a blue
square"), and every near miss is verified false on the scene's ground truth by GenEval's rules
before it is used (:func:`caption_holds`).

Edits (``EDITS``): ``color`` (one object's colour replaced or, when the caption names none,
a wrong one added), ``shape`` (one shape replaced by one not in the caption), ``count`` (a
count moved by one; "a circle" only up, since GenEval's "a circle" also holds for two; not in
relation captions, whose objects are single as in GenEval's), ``relation``
(another relation) and ``swap`` (the colours of two objects exchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import TTSVarError
from . import rules
from .scenes import Scene, sample_scene
from .vocab import COLORS, NUMBER_WORDS, RELATIONS, SHAPES, plural, with_article

EDITS: tuple[str, ...] = ("color", "shape", "count", "relation", "swap")
_PREFIX = "a photo of "
_WORD_NUMBERS = {word: n for n, word in NUMBER_WORDS.items()}
_PLURALS = {plural(s): s for s in SHAPES}


@dataclass(frozen=True)
class Phrase:
    count: int
    color: str | None
    shape: str

    def text(self) -> str:
        noun = self.shape if self.count == 1 else plural(self.shape)
        words = f"{self.color} {noun}" if self.color else noun
        return with_article(words) if self.count == 1 else f"{NUMBER_WORDS[self.count]} {words}"


@dataclass(frozen=True)
class Caption:
    """Phrases joined by "and", or two phrases joined by a relation (the first relative to the second)."""

    phrases: tuple[Phrase, ...]
    relation: str | None = None

    def text(self) -> str:
        if self.relation:
            return f"{_PREFIX}{self.phrases[0].text()} {self.relation} {self.phrases[1].text()}"
        return _PREFIX + " and ".join(p.text() for p in self.phrases)

    def metadata(self) -> dict:
        """GenEval metadata for the caption: one include clause per phrase (the relation's target
        first, as GenEval lists it) and an exclude clause per counted phrase, so counts are exact."""
        clause = lambda p: {"class": p.shape, "count": p.count, **({"color": p.color} if p.color else {})}  # noqa: E731
        if self.relation:
            include = [clause(self.phrases[1]), {**clause(self.phrases[0]), "position": [self.relation, 0]}]
        else:
            include = [clause(p) for p in self.phrases]
        exclude = [{"class": p.shape, "count": p.count + 1} for p in self.phrases if p.count > 1]
        tag = "position" if self.relation else "color_attr" if len(self.phrases) > 1 else "colors"
        return {"tag": tag, "include": include, "exclude": exclude, "prompt": self.text()}


def parse_caption(text: str) -> Caption:
    """The structure of a caption in the world's grammar; TTSVarError for anything else."""
    body = text.strip().lower()
    if not body.startswith(_PREFIX):
        raise TTSVarError(f"caption {text!r} does not start with {_PREFIX!r}")
    body = body[len(_PREFIX):]
    for relation in RELATIONS:
        left, sep, right = body.partition(f" {relation} ")
        if sep:
            return Caption((_parse_phrase(left, text), _parse_phrase(right, text)), relation)
    return Caption(tuple(_parse_phrase(part, text) for part in body.split(" and ")))


def _parse_phrase(part: str, text: str) -> Phrase:
    words = part.split()
    if len(words) not in (2, 3):
        raise TTSVarError(f"caption {text!r}: cannot read the phrase {part!r}")
    head, noun = words[0], words[-1]
    color = words[1] if len(words) == 3 else None
    if color is not None and color not in COLORS:
        raise TTSVarError(f"caption {text!r}: unknown colour {color!r}")
    if head in ("a", "an") and noun in SHAPES:
        return Phrase(1, color, noun)
    if head in _WORD_NUMBERS and noun in _PLURALS:
        return Phrase(_WORD_NUMBERS[head], color, _PLURALS[noun])
    raise TTSVarError(f"caption {text!r}: cannot read the phrase {part!r}")


def caption_holds(scene: Scene, caption: Caption) -> bool:
    """Whether the scene's ground truth satisfies the caption (GenEval's rules, exact counts)."""
    return rules.evaluate(scene.objects, caption.metadata())[0]


def applicable_edits(caption: Caption) -> list[str]:
    kinds = ["color", "shape"]
    kinds.append("relation" if caption.relation else "count")
    colors = [p.color for p in caption.phrases]
    if len(caption.phrases) > 1 and all(colors) and len(set(colors)) > 1:
        kinds.append("swap")
    return kinds


def edit_caption(rng: np.random.Generator, caption: Caption, kind: str) -> Caption:
    """One random edit of ``kind`` (not yet checked against any scene)."""
    phrases = list(caption.phrases)
    i = int(rng.integers(len(phrases)))
    p = phrases[i]
    if kind == "color":
        phrases[i] = replace(p, color=_other(rng, list(COLORS), p.color))
    elif kind == "shape":
        phrases[i] = replace(p, shape=_other(rng, list(SHAPES), *(q.shape for q in phrases)))
    elif kind == "count":
        options = [n for n in (p.count - 1, p.count + 1) if n in NUMBER_WORDS] if p.count > 1 else [2]
        phrases[i] = replace(p, count=_other(rng, options))
    elif kind == "relation":
        return replace(caption, relation=_other(rng, list(RELATIONS), caption.relation))
    elif kind == "swap":
        j = _other(rng, [k for k in range(len(phrases)) if phrases[k].color != p.color])
        phrases[i], phrases[j] = replace(p, color=phrases[j].color), replace(phrases[j], color=p.color)
    else:
        raise TTSVarError(f"unknown caption edit {kind!r}; expected one of {', '.join(EDITS)}")
    return replace(caption, phrases=tuple(phrases))


def _other(rng: np.random.Generator, options: list, *exclude):
    options = [o for o in options if o not in exclude]
    return options[int(rng.integers(len(options)))]


def near_miss_caption(rng: np.random.Generator, scene: Scene, caption: Caption, kind: str | None = None,
                      tries: int = 8) -> tuple[Caption, str] | None:
    """A caption one edit away from ``caption`` that is false for ``scene``, and the edit's kind
    (drawn among the applicable ones unless given); None when no try gives a false caption."""
    kinds = applicable_edits(caption)
    if kind is not None:
        if kind not in kinds:
            return None
        kinds = [kind]
    for _ in range(tries):
        k = kinds[int(rng.integers(len(kinds)))]
        edited = edit_caption(rng, caption, k)
        if edited != caption and not caption_holds(scene, edited):
            return edited, k
    return None


def near_miss_scene(rng: np.random.Generator, scene: Scene, caption: Caption, kind: str | None = None,
                    tries: int = 8) -> tuple[Scene, Caption, str] | None:
    """A scene drawn for a near-miss caption, so it matches that caption and not ``caption``: the
    picture a generator makes when it gets one attribute wrong. Returns (scene, its caption, edit)."""
    for _ in range(tries):
        found = near_miss_caption(rng, scene, caption, kind)
        if found is None:
            return None
        edited, k = found
        other = sample_scene(rng, edited.metadata())
        if caption_holds(other, edited) and not caption_holds(other, caption):
            return other, edited, k
    return None
