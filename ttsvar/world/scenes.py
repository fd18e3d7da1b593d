"""Scenes of the world: their ground truth, how they are drawn for a prompt, and the training stream.

A scene holds exactly the objects its prompt implies, no extras: GenEval's prompts say nothing
about other objects, but a training caption should describe its image completely, and a minimal
scene makes GenEval's "most confident boxes" and this world's "some objects" rules agree (see
``rules``). Unspecified attributes are drawn at random: colours (one shared colour for a counting
prompt's objects, so "three red circles" describes the scene fully), sizes, positions, background.

Geometry is in fractions of the image (x to the right, y downwards), so a scene is independent of
the resolution it is rendered at. Objects keep a gap of ``GAP`` between bounding boxes and
``EDGE_MARGIN`` from the image border (the checker estimates the background from the border).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import TTSVarError
from . import rules
from .prompts import Metadata, all_prompts, prompt_set, sample_prompt, validate_metadata
from .render import render
from .vocab import BACKGROUND_GROUPS, BACKGROUND_KINDS, BACKGROUNDS, COLORS, NUMBER_WORDS, TAGS, plural, with_article

SIZE_RANGES: dict[int, tuple[float, float]] = {1: (0.34, 0.48), 2: (0.30, 0.40), 3: (0.25, 0.32), 4: (0.22, 0.28)}
"""Side of an object's box, as a fraction of the image side, by the number of objects in the scene
(at 64 px: 22-31 px for one object down to 14-18 px for four, at least three tokens of the last
scale). Objects this large show already in the coarse scales (a 4×4 token map sees a lone object
as one or two cells), where a VAR model decides the layout: with smaller ones the world's
generator left most images empty, its coarse scales too uncertain where to put anything. The
world's second version grew the objects of two- to four-object scenes by about a tenth (two
objects were 0.26-0.36), as large as a clear relation between two objects still allows."""
EDGE_MARGIN = 0.04
GAP = 0.05
RELATION_MARGIN = (0.6, 0.35)
"""A relation is *clear* when it holds with room to spare under GenEval's 0.5 thresholds: the named
direction's component beyond 0.6 and the other axis's within 0.35. Position scenes are drawn, and
descriptive captions name a relation, only when it is clear, so exactly one relation holds and a
small shift of the drawn boxes (blur, a decoder) does not flip the answer."""
_MAX_TRIES = 400


@dataclass(frozen=True)
class SceneObject:
    shape: str  # one of SHAPES
    color: str  # a COLORS name
    center: tuple[float, float]  # (x, y) as fractions of width and height, y downwards
    size: float  # side of its square box as a fraction of the image side

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        half = self.size / 2
        return (self.center[0] - half, self.center[1] - half, self.center[0] + half, self.center[1] + half)


@dataclass(frozen=True)
class Background:
    kind: str  # one of BACKGROUND_KINDS
    color: str  # a BACKGROUNDS name
    color2: str | None = None  # the gradient's other end (same group as color)
    angle: float = 0.0  # gradient direction, radians
    texture_seed: int = 0


@dataclass(frozen=True)
class Scene:
    background: Background
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def to_metadata_truth(self) -> list[dict]:
        """The objects as GenEval-like records: class, color, bbox (x0, y0, x1, y1 fractions)."""
        return [{"class": o.shape, "color": o.color, "bbox": [round(v, 6) for v in o.bbox]} for o in self.objects]

    def describe(self, subject: int = 0) -> str:
        """The most specific caption of the scene in the world's grammar.

        Two objects of different shapes in a clear relation (``clear_relation``) are told with it
        ("a red circle left of a blue square", ``subject`` choosing which comes first);
        otherwise objects are grouped by colour and shape ("three red circles", "a red circle
        and a blue square").
        """
        objs = self.objects
        if not objs:
            raise TTSVarError("an empty scene has no caption in this world")
        if len(objs) == 2 and objs[0].shape != objs[1].shape:
            a, b = objs[subject], objs[1 - subject]
            relation = clear_relation(a.bbox, b.bbox)
            if relation is not None:
                first, second = with_article(f"{a.color} {a.shape}"), with_article(f"{b.color} {b.shape}")
                return f"a photo of {first} {relation} {second}"
        groups = Counter((o.color, o.shape) for o in objs)
        phrases = []
        for (color, shape), k in groups.items():
            if k == 1:
                phrases.append(with_article(f"{color} {shape}"))
            elif k in NUMBER_WORDS:
                phrases.append(f"{NUMBER_WORDS[k]} {color} {plural(shape)}")
            else:
                raise TTSVarError(f"{k} {color} {plural(shape)}: captions count up to {max(NUMBER_WORDS)}")
        return "a photo of " + " and ".join(phrases)

    def to_dict(self) -> dict:
        return {"background": asdict(self.background), "objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        objects = tuple(SceneObject(o["shape"], o["color"], tuple(o["center"]), o["size"]) for o in data["objects"])
        return cls(Background(**data["background"]), objects)


def satisfies(scene: Scene, metadata: Metadata) -> bool:
    """Whether the scene's ground truth satisfies the prompt, by GenEval's rules (see ``rules``)."""
    return rules.evaluate(scene.objects, validate_metadata(metadata))[0]


def sample_background(rng: np.random.Generator) -> Background:
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    color = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    if kind == "gradient":
        group = [c for g in BACKGROUND_GROUPS if color in g for c in g if c != color]
        return Background(kind, color, group[int(rng.integers(len(group)))], float(rng.uniform(0, 2 * np.pi)))
    if kind == "texture":
        return Background(kind, color, texture_seed=int(rng.integers(2**31)))
    return Background(kind, color)


def sample_scene(rng: np.random.Generator, metadata: Metadata) -> Scene:
    """A random scene that satisfies ``metadata`` and holds nothing else (see the module docstring)."""
    include = validate_metadata(metadata)["include"]
    classes = [c["class"] for c in include]
    if len(set(classes)) != len(classes):
        raise TTSVarError(f"sample_scene needs distinct classes in the include clauses (got {classes})")
    kinds, owner = [], []
    for i, clause in enumerate(include):
        color = clause.get("color") or _pick(rng, list(COLORS))
        for _ in range(clause["count"]):
            kinds.append((clause["class"], color))
            owner.append(i)
    if len(kinds) > max(SIZE_RANGES):
        raise TTSVarError(f"a scene holds at most {max(SIZE_RANGES)} objects (the prompt asks for {len(kinds)})")
    constraints = [(a, clause["position"][0], b) for i, clause in enumerate(include) if "position" in clause
                   for a in range(len(kinds)) if owner[a] == i
                   for b in range(len(kinds)) if owner[b] == clause["position"][1]]
    boxes = _place(rng, len(kinds), constraints)
    objects = tuple(SceneObject(shape, color, center, size) for (shape, color), (center, size) in zip(kinds, boxes))
    return Scene(sample_background(rng), objects)


def _pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def _place(rng, n, constraints):
    """Centres and sizes for ``n`` non-overlapping boxes that meet the relation constraints."""
    low, high = SIZE_RANGES[n]
    for attempt in range(_MAX_TRIES):
        shrink = 0.9 ** (attempt // 100)  # if a draw of sizes is hard to place, try smaller ones
        sizes = rng.uniform(low, high, n) * shrink
        centres = [rng.uniform(EDGE_MARGIN + s / 2, 1 - EDGE_MARGIN - s / 2, 2) for s in sizes]
        boxes = [(float(c[0]), float(c[1]), float(s)) for c, s in zip(centres, sizes)]
        if _apart(boxes) and all(_clear(boxes[a], rel, boxes[b]) for a, rel, b in constraints):
            return [((x, y), s) for x, y, s in boxes]
    raise TTSVarError(f"could not place {n} objects with constraints {constraints} (this is a bug in the world)")


def _apart(boxes) -> bool:
    for i in range(len(boxes)):
        for j in range(i):
            (xi, yi, si), (xj, yj, sj) = boxes[i], boxes[j]
            reach = (si + sj) / 2 + GAP
            if abs(xi - xj) < reach and abs(yi - yj) < reach:
                return False
    return True


def _clear(a, relation, b) -> bool:
    box = lambda x, y, s: (x - s / 2, y - s / 2, x + s / 2, y + s / 2)  # noqa: E731
    return clear_relation(box(*a), box(*b)) == relation


def clear_relation(box_a, box_b) -> str | None:
    """The one relation of A to B that holds with ``RELATION_MARGIN`` to spare, if any."""
    dx, dy = rules.relation_components(box_a, box_b)
    horizontal = abs(dx) >= abs(dy)
    main, cross = (dx, dy) if horizontal else (dy, dx)
    if abs(main) <= RELATION_MARGIN[0] or abs(cross) >= RELATION_MARGIN[1]:
        return None
    if horizontal:
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


@dataclass(frozen=True)
class TrainingSample:
    metadata: Metadata
    scene: Scene
    caption: str


DESCRIPTIVE_FRACTION = 0.5
"""Share of training captions that describe the scene fully (colours, counts, a clear relation)
instead of the prompt it was drawn for: the prompt teaches GenEval's phrasing, the description
teaches which attribute belongs to which object."""


def training_sample(seed: int, index: int, tag_weights: dict[str, float] | None = None,
                    descriptive: float = DESCRIPTIVE_FRACTION) -> TrainingSample:
    """The ``index``-th example of the training stream ``seed`` (each index is independent, so a
    trainer can start anywhere, resume, or split the stream between workers)."""
    rng = np.random.default_rng([seed, index])
    weights = tag_weights or dict.fromkeys(TAGS, 1.0)
    unknown = set(weights) - set(TAGS)
    if unknown:
        raise TTSVarError(f"tag_weights has unknown tags {sorted(unknown)}; expected some of {', '.join(TAGS)}")
    tags, p = list(weights), np.array(list(weights.values()), dtype=float)
    tag = tags[int(rng.choice(len(tags), p=p / p.sum()))]
    metadata = sample_prompt(rng, tag)
    scene = sample_scene(rng, metadata)
    if rng.random() < descriptive:
        caption = scene.describe(subject=int(rng.integers(len(scene.objects))) if len(scene.objects) == 2 else 0)
    else:
        caption = metadata["prompt"]
    return TrainingSample(metadata, scene, caption)


def training_pairs(n: int, seed: int, size: int = 128, start: int = 0, **kwargs) -> tuple[np.ndarray, list[str]]:
    """Examples ``start .. start+n-1`` of the training stream: uint8 images [n, size, size, 3] and captions.

    Mixes the six categories equally by default (``tag_weights`` to change), half of the captions
    descriptive (``descriptive``); see ``training_sample``.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions = []
    for k in range(n):
        sample = training_sample(seed, start + k, **kwargs)
        images[k] = render(sample.scene, size)
        captions.append(sample.caption)
    return images, captions


__all__ = [
    "Background", "Scene", "SceneObject", "TrainingSample", "all_prompts", "clear_relation", "prompt_set", "render",
    "sample_background",
    "sample_prompt", "sample_scene", "satisfies", "training_pairs", "training_sample",
]
