"""GenEval's decision rules, applied to a list of objects (the ground truth or the checker's detections).

One function decides both ``satisfies(scene, metadata)`` and ``check(image, metadata)``, so the two
can differ only where the detections differ from the truth.

GenEval's rules, as they translate to this world:

- ``include`` clauses are ANDed: each needs at least ``count`` objects of its class (and, when the
  clause names one, of its colour); ``exclude`` clauses are ORed: a clause fails when at least
  ``count`` objects of its class are present (this is what makes counting exact).
- relative position uses GenEval's rule on bounding boxes: the centre offset of A from B, shrunk
  on each axis by 0.1 × (A's size + B's size) on that axis, divided by the length of the unshrunk
  offset; "left of" when its x component is below -0.5, "right of" above 0.5, "above" when its y
  component is below -0.5 (y grows downwards), "below" above 0.5. Diagonal offsets can satisfy
  two relations at once, as in GenEval.

One deliberate difference: GenEval checks colour and position only on the detector's ``count``
most confident boxes of the class. Boxes found here have no meaningful confidence order, so a
clause is satisfied when *some* choice of ``count`` objects of the class has the colour and the
position. The two agree whenever the image holds no more objects of a class than the prompt
implies, which is how this world's scenes are drawn.
"""

from __future__ import annotations

import itertools
import math
from typing import Protocol, Sequence

POSITION_THRESHOLD = 0.1
"""GenEval's default ``position_threshold``: the fraction of the two boxes' sizes an offset must exceed."""


class WorldObject(Protocol):
    """What the rules look at: a class (shape name; None when unrecognised), a colour (None: none of
    the palette), a box."""

    shape: str | None
    color: str | None
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width and height


def relation_components(box_a: Sequence[float], box_b: Sequence[float]) -> tuple[float, float]:
    """GenEval's shrunk, normalised offset (dx, dy) of box A's centre from box B's centre."""
    ax, ay = (box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2
    bx, by = (box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2
    ox, oy = ax - bx, ay - by
    slack_x = POSITION_THRESHOLD * ((box_a[2] - box_a[0]) + (box_b[2] - box_b[0]))
    slack_y = POSITION_THRESHOLD * ((box_a[3] - box_a[1]) + (box_b[3] - box_b[1]))
    rx = math.copysign(max(abs(ox) - slack_x, 0.0), ox)
    ry = math.copysign(max(abs(oy) - slack_y, 0.0), oy)
    if abs(rx) < 1e-3 and abs(ry) < 1e-3:
        return 0.0, 0.0
    norm = math.hypot(ox, oy)
    return rx / norm, ry / norm


def relations(box_a: Sequence[float], box_b: Sequence[float]) -> set[str]:
    """The relations that hold for A relative to B ("left of", "right of", "above", "below")."""
    dx, dy = relation_components(box_a, box_b)
    found = set()
    if dx < -0.5:
        found.add("left of")
    if dx > 0.5:
        found.add("right of")
    if dy < -0.5:
        found.add("above")
    if dy > 0.5:
        found.add("below")
    return found


def _describe(clause: dict) -> str:
    color = f"{clause['color']} " if "color" in clause else ""
    return f"{color}{clause['class']}"


def evaluate(objects: Sequence[WorldObject], metadata: dict) -> tuple[bool, str]:
    """Whether ``objects`` satisfy the prompt ``metadata``, and why not (one line per failed clause)."""
    reasons: list[str] = []
    groups: list[list[WorldObject] | None] = []
    for clause in metadata["include"]:
        of_class = [o for o in objects if o.shape == clause["class"]]
        candidates = [o for o in of_class if "color" not in clause or o.color == clause["color"]]
        need = clause["count"]
        if len(of_class) < need:
            reasons.append(f"expected {clause['class']}>={need}, found {len(of_class)}")
            groups.append(None)
            continue
        if len(candidates) < need:
            found = ", ".join(sorted(o.color or "no colour" for o in of_class))
            reasons.append(f"expected {_describe(clause)}>={need}, found {len(candidates)} (colours: {found})")
            groups.append(None)
            continue
        if "position" in clause:
            relation, target = clause["position"]
            targets = groups[target]
            if targets is None:
                reasons.append(f"no target for {clause['class']} to be {relation}")
                groups.append(None)
                continue
            placed = _place(candidates, targets, metadata["include"][target]["count"], relation, need)
            if placed is None:
                seen = sorted({r for o in candidates for t in targets if o is not t for r in relations(o.bbox, t.bbox)})
                found = " and ".join(seen) or "no relation"
                reasons.append(f"expected {clause['class']} {relation} target, found {found}")
                groups.append(None)
                continue
            candidates = placed
        groups.append(candidates)
    for clause in metadata.get("exclude", []):
        present = [o for o in objects
                   if o.shape == clause["class"] and ("color" not in clause or o.color == clause["color"])]
        if len(present) >= clause["count"]:
            reasons.append(f"expected {_describe(clause)}<{clause['count']}, found {len(present)}")
    return not reasons, "\n".join(reasons)


def _place(candidates, targets, target_count, relation, need):
    """Objects among ``candidates`` in ``relation`` to every object of some ``target_count`` targets."""
    for chosen in itertools.combinations(targets, min(target_count, len(targets))):
        placed = [o for o in candidates if all(o is not t and relation in relations(o.bbox, t.bbox) for t in chosen)]
        if len(placed) >= need:
            return placed
    return None
