"""Draw a scene: background in numpy, shapes with PIL at 4x supersampling, area-averaged down.

Geometry is in fractions of the image, so one scene renders the same picture at any size; edges
are anti-aliased (a pixel's colour is its coverage-weighted mix), like a decoder's smooth output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from ..errors import TTSVarError
from .vocab import BACKGROUNDS, COLORS

if TYPE_CHECKING:
    from .scenes import Background, Scene

SUPERSAMPLE = 4
TEXTURE_AMPLITUDE = 10.0
"""Peak deviation of a texture from its tone, in 0..255 levels: visible, far below any colour gap."""
TEXTURE_GRID = 6
"""A texture is a 6x6 grid of random shades, bicubically interpolated: gentle blotches, no fine grain."""
_POLYGONS: dict[str, list[tuple[float, float]]] = {
    # Vertices in a box spanning -1..1 on both axes, y pointing down.
    "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
    "triangle": [(0, -1), (1, 1), (-1, 1)],
    "wedge": [(-1, -1), (1, -1), (0, 1)],
}


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Fill ``shape`` into ``box`` (x0, y0, x1, y1 in pixel edges: a pixel i spans [i, i+1))."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        # PIL's ellipse box is inclusive of pixel centres at its ends; shift edges to centres.
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
        return
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    # PIL fills the pixels whose centres (integer coordinates) fall inside the polygon.
    draw.polygon([(cx + u * hx - 0.5, cy + v * hy - 0.5) for u, v in _POLYGONS[shape]], fill=fill)


def shape_template(shape: str, size: int) -> np.ndarray:
    """The shape filling a ``size`` x ``size`` box, as anti-aliased coverage in 0..1 (float32)."""
    big = size * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, (0, 0, big, big), 255)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0


def background_image(background: "Background", height: int, width: int) -> Image.Image:
    """The background as an RGB image (blends done by PIL in C: numpy passes over [H, W, 3] cost more)."""
    base = Image.new("RGB", (width, height), BACKGROUNDS[background.color])
    if background.kind == "plain":
        return base
    if background.kind == "gradient":
        cos, sin = float(np.cos(background.angle)), float(np.sin(background.angle))
        reach = abs(cos) + abs(sin)  # the projection's range over the image, so t spans 0..1 corner to corner
        x = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5) * (255 * cos / reach)
        y = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5) * (255 * sin / reach) + 127.5
        t = Image.fromarray(np.rint(x[None, :] + y[:, None]).astype(np.uint8), mode="L")
        return Image.composite(Image.new("RGB", (width, height), BACKGROUNDS[background.color2]), base, t)
    grid = np.random.default_rng(background.texture_seed).uniform(-1, 1, (TEXTURE_GRID, TEXTURE_GRID, 1))
    small = np.rint(np.array(BACKGROUNDS[background.color]) + TEXTURE_AMPLITUDE * grid).astype(np.uint8)
    return Image.fromarray(small, mode="RGB").resize((width, height), Image.BICUBIC)


def render(scene: "Scene", size: int | tuple[int, int] = 128) -> np.ndarray:
    """The scene as uint8 [H, W, 3]; ``size`` is the side (or (height, width)). Deterministic.

    Each object's coverage is drawn at 4x in a patch around its box, area-averaged down and used
    as the alpha of its colour over what is below it (later objects on top).
    """
    height, width = (size, size) if isinstance(size, int) else size
    if min(height, width) < 16 or max(height, width) > 4096:
        raise TTSVarError(f"render size must be 16..4096 pixels per side (got {height}x{width})")
    image = background_image(scene.background, height, width)
    s = SUPERSAMPLE
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.bbox[0] * width, obj.bbox[1] * height, obj.bbox[2] * width, obj.bbox[3] * height
        px0, py0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        px1, py1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
        if px1 <= px0 or py1 <= py0:
            continue
        patch = Image.new("L", ((px1 - px0) * s, (py1 - py0) * s), 0)
        box = ((x0 - px0) * s, (y0 - py0) * s, (x1 - px0) * s, (y1 - py0) * s)
        draw_shape(ImageDraw.Draw(patch), obj.shape, box, 255)
        image.paste(COLORS[obj.color], (px0, py0), patch.reduce(s))
    return np.array(image)
