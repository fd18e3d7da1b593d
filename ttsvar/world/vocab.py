"""The constants of the synthetic world: shapes, colours, backgrounds, counts, relations, words.

Chosen so that a checker can tell every attribute apart from pixels alone, even on the blurry,
colour-shifted output of a small generative model:

- **Shapes** are axis-aligned and fill a square bounding box, so a shape is told by its geometry
  inside that box, which survives blur and small sizes:

  ========  =====================  ==========================  ===========================
  shape     area / bounding box    where the mass sits          what tells it from the rest
  ========  =====================  ==========================  ===========================
  circle    0.79                   centred                      round, no corners
  square    1.00                   centred                      fills its box
  triangle  0.50 (apex up)         low (centroid at 2/3 down)   mass low, empty top corners
  wedge     0.50 (apex down)       high (centroid at 1/3 down)  mass high, empty bottom corners
  ========  =====================  ==========================  ===========================

  The closest pair (circle, square) overlaps at IoU 0.79 in a common box. Each shape differs from
  the others in how its mass fills the box (high or low, into the corners or not), which a VAR
  model decides at its coarse scales (the world's generator by 4×4 or 6×6 tokens). A cross (arms
  0.4 wide) was the fourth shape until the world's second version: centred like a circle, it
  differs from one only by a faint pattern at the 6×6 and 8×8 scales, and the world's small
  generator never learnt to draw one (0.8% of the prompts asking for a cross;
  ``benchmarks/bench_world_shapes.py``). A diamond was tried and dropped: blurred, its
  outline is as near a circle's as its own. Stars, hearts and rings were not tried: their defining
  details (points, the hole) vanish at 20 px after a stride-4 VAE.
- **Colours** are six saturated hues named as GenEval names them; in RGB every pair is at least
  98 apart (orange/yellow is the closest pair) so a colour shifted by a few tens of levels still
  lands on the right name.
- **Backgrounds** are unsaturated light or dark tones (plain, a gentle gradient between two tones
  of the same group, or a low-amplitude smooth texture); every background tone is at least 100
  (RGB) from every object colour, and a gradient never crosses the mid-grey band where it would
  approach purple or green.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "wedge")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 45),
    "orange": (245, 125, 15),
    "yellow": (240, 220, 40),
    "green": (45, 165, 70),
    "blue": (40, 90, 215),
    "purple": (140, 60, 190),
}

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (238, 238, 234),
    "light grey": (204, 204, 202),
    "cream": (236, 226, 200),
    "mist": (206, 214, 224),
    "dark grey": (64, 64, 68),
    "charcoal": (38, 40, 46),
}
"""Background tones. A gradient joins two tones of one group (see BACKGROUND_GROUPS)."""

BACKGROUND_GROUPS: tuple[tuple[str, ...], ...] = (
    ("white", "light grey", "cream", "mist"),
    ("dark grey", "charcoal"),
)

BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "texture")

COUNTS: tuple[int, ...] = (1, 2, 3, 4)
"""Object counts a scene can have; counting prompts use 2..4 as GenEval does."""

NUMBER_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four"}

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
"""GenEval's six categories, in GenEval's order."""


def plural(noun: str) -> str:
    """GenEval's plural rule (nouns ending in 's' take 'es'): glass -> glasses, circle -> circles."""
    return f"{noun}es" if noun.endswith("s") else f"{noun}s"


def with_article(word_phrase: str) -> str:
    """'a circle', 'an orange circle' (GenEval chooses the article by the first letter)."""
    return f"an {word_phrase}" if word_phrase[0] in "aeiou" else f"a {word_phrase}"


def _vocabulary() -> tuple[str, ...]:
    words = ["a", "an", "photo", "of", "and"]
    words += list(NUMBER_WORDS.values())
    words += list(COLORS)
    for shape in SHAPES:
        words += [shape, plural(shape)]
    for relation in RELATIONS:
        words += [w for w in relation.split() if w not in words]
    return tuple(words)


VOCABULARY: tuple[str, ...] = _vocabulary()
"""Every word a caption of this world can contain, lower case, in a fixed order (a word-level
text encoder may use the position in this tuple as the token id)."""

MAX_CAPTION_WORDS = 11
"""The longest caption the world writes: "a photo of an orange triangle left of a purple wedge"."""
