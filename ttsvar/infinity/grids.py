"""Scale grids: which token grid each scale samples, per aspect template and pixel budget.

Infinity was trained on a fixed table of (h, w) grids per aspect ratio (h/w); a pixel budget
`pn` takes a prefix of 7, 10, 12 or 13 scales. Arbitrary sizes snap to the nearest template.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

from ttsvar.errors import TTSVarError

LATENT_STRIDE = 16  # pixels per token of the stride-16 grid (the 8B patchify VAE has 8 per latent cell, 2x2 cells a token)

_GRIDS_BY_RATIO: dict[float, tuple[tuple[int, int], ...]] = {
    1.000: ((1, 1), (2, 2), (4, 4), (6, 6), (8, 8), (12, 12), (16, 16), (20, 20), (24, 24), (32, 32), (40, 40), (48, 48), (64, 64)),
    1.250: ((1, 1), (2, 2), (3, 3), (5, 4), (10, 8), (15, 12), (20, 16), (25, 20), (30, 24), (35, 28), (45, 36), (55, 44), (70, 56)),
    1.333: ((1, 1), (2, 2), (4, 3), (8, 6), (12, 9), (16, 12), (20, 15), (24, 18), (28, 21), (36, 27), (48, 36), (60, 45), (72, 54)),
    1.500: ((1, 1), (2, 2), (3, 2), (6, 4), (9, 6), (15, 10), (21, 14), (27, 18), (33, 22), (39, 26), (48, 32), (63, 42), (78, 52)),
    1.750: ((1, 1), (2, 2), (3, 3), (7, 4), (11, 6), (14, 8), (21, 12), (28, 16), (35, 20), (42, 24), (56, 32), (70, 40), (84, 48)),
    2.000: ((1, 1), (2, 2), (4, 2), (6, 3), (10, 5), (16, 8), (22, 11), (30, 15), (38, 19), (46, 23), (60, 30), (74, 37), (90, 45)),
    2.500: ((1, 1), (2, 2), (5, 2), (10, 4), (15, 6), (20, 8), (25, 10), (30, 12), (40, 16), (50, 20), (65, 26), (80, 32), (100, 40)),
    3.000: ((1, 1), (2, 2), (6, 2), (9, 3), (15, 5), (21, 7), (27, 9), (36, 12), (45, 15), (54, 18), (72, 24), (90, 30), (111, 37)),
}

PN_SCALES = {"0.06M": 7, "0.25M": 10, "0.60M": 12, "1M": 13}
PN_CHOICES = tuple(PN_SCALES)


def _all_templates() -> dict[float, tuple[tuple[int, int], ...]]:
    table = {}
    for ratio, grids in _GRIDS_BY_RATIO.items():
        table[ratio] = grids
        if ratio != 1.0:  # the official inverse key: truncated, not rounded (1/1.333 -> 0.75)
            table[int(1 / ratio * 1000) / 1000] = tuple((w, h) for h, w in grids)
    return table


TEMPLATES = _all_templates()
ASPECT_TEMPLATES = tuple(TEMPLATES)


@dataclass(frozen=True)
class ScaleGrid:
    """The scales of one generation: token grids, the aspect template and the final pixel size."""

    template: float
    pn: str
    scales: tuple[tuple[int, int], ...]

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def token_counts(self) -> tuple[int, ...]:
        return tuple(h * w for h, w in self.scales)

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def final_grid(self) -> tuple[int, int]:
        return self.scales[-1]

    @property
    def pixel_size(self) -> tuple[int, int]:
        """(height, width) in pixels of the decoded image."""
        h, w = self.final_grid
        return h * LATENT_STRIDE, w * LATENT_STRIDE

    @property
    def rope_grid(self) -> tuple[int, int]:
        """The 1M final grid of this template: RoPE positions of every pn are stretched to it."""
        return TEMPLATES[self.template][-1]

    def token_offset(self, scale: int) -> int:
        return sum(self.token_counts[:scale])

    def to_dict(self) -> dict:
        return {"template": self.template, "pn": self.pn, "scales": [list(s) for s in self.scales]}


def nearest_template(h_div_w: float) -> float:
    """The trained aspect ratio closest to `h_div_w`; a warning says when it is more than 5% off."""
    if not h_div_w > 0 or h_div_w == float("inf"):
        raise TTSVarError(f"aspect ratio (height/width) must be a positive number, got {h_div_w}.")
    template = min(ASPECT_TEMPLATES, key=lambda t: abs(t - h_div_w))
    if abs(template - h_div_w) > 0.05 * h_div_w:
        warnings.warn(
            f"aspect ratio {h_div_w:.3f} is not one Infinity was trained on; using the nearest, {template} "
            f"(supported: {', '.join(str(t) for t in sorted(ASPECT_TEMPLATES))})."
        )
    return template


@lru_cache(maxsize=None)
def _grid(template: float, pn: str) -> ScaleGrid:
    return ScaleGrid(template=template, pn=pn, scales=TEMPLATES[template][: PN_SCALES[pn]])


def resolve_grid(
    *, width: int | None = None, height: int | None = None, aspect: float | None = None, pn: str | None = None
) -> ScaleGrid:
    """The grid for a requested size: `aspect` (h/w) or width and height pick the template,
    `pn` the pixel budget (default: the one whose final size is nearest to width·height, else 1M)."""
    if aspect is None:
        if width is None or height is None:
            aspect = 1.0
        else:
            if width <= 0 or height <= 0:
                raise TTSVarError(f"width and height must be positive, got {width}×{height}.")
            aspect = height / width
    template = nearest_template(float(aspect))
    if pn is None:
        if width and height:
            target = width * height
            pn = min(PN_CHOICES, key=lambda p: abs(_pixels(_grid(template, p)) - target))
        else:
            pn = "1M"
    if pn not in PN_SCALES:
        raise TTSVarError(f"pn (pixel budget) must be one of {', '.join(PN_CHOICES)}, got '{pn}'.")
    return _grid(template, pn)


def _pixels(grid: ScaleGrid) -> int:
    h, w = grid.pixel_size
    return h * w


def grid_from_scales(scales: list[tuple[int, int]]) -> ScaleGrid:
    """The template grid whose prefix is exactly `scales` (used to check stored grids)."""
    for template, grids in TEMPLATES.items():
        for pn, count in PN_SCALES.items():
            if tuple(map(tuple, scales)) == grids[:count]:
                return _grid(template, pn)
    raise TTSVarError(f"scales {scales} are not a prefix of any Infinity template.")
