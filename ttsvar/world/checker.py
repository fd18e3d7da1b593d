"""Decide from pixels alone whether an image shows what its prompt asks: this world's GenEval scorer.

Detection, step by step (every size is a fraction of the image, so any resolution works):

1. **Background.** Fit one plane per colour channel (a + b·x + c·y) to a ring along the image
   border, twice, dropping pixels far from the first fit. Plain and gradient backgrounds are
   planes; a texture is one within ±10 levels. Objects may touch the border in a generated
   image: the robust refit ignores them while they cover less than half the ring. A border far
   from any plane means there is no background (colour noise): no objects.
2. **Foreground.** After a 3×3 box filter against pixel noise, a pixel is foreground when it is
   nearer (RGB distance) to some object colour than to the background fitted at that point.
   With linear anti-aliasing or blur, a pixel mixing an object colour and the background at
   50/50 is equally near both, so the boundary falls where the object's edge is.
3. **Objects.** Connected components (8-connected) of the foreground; components smaller than
   ``MIN_AREA`` are dropped as specks (a quarter of the smallest object the world draws), and so
   are blobs whose surroundings are not background (mixed at the edge with the blob's colour).
4. **Colour.** The palette colour that, mixed with the local background, best explains the
   component's pixels (smallest mean distance to the mixing segment). Edge pixels are part
   background: a plain nearest-colour rule would name red over white at 50/50 orange.
5. **Shape.** The object colour's coverage of each pixel (read off the background-to-colour
   segment), interpolated to at least 32 px across and cut at 50%, gives a sub-pixel outline;
   cropped to its box and resampled to 32×32 it is compared with each shape's template cut the
   same way, sharp or blurred (``TEMPLATE_BLURS``). The shape is the template with the highest
   soft IoU, or unrecognised (None, counted as nothing) when even that is below
   ``MIN_SHAPE_IOU`` or the box is far from square (merged or broken objects).

Decision: GenEval's rules on the detected objects (``rules.evaluate``), the same rules
``satisfies`` applies to a scene's ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from ..errors import TTSVarError
from . import rules
from .prompts import Metadata, validate_metadata
from .render import shape_template
from .vocab import COLORS, SHAPES

BORDER = 0.03
"""Width of the ring the background is fitted on, as a fraction of the shorter side (objects keep 0.04 away)."""
MIN_AREA = 0.0025
"""Smallest component kept, as a fraction of the image area (41 px at 128²; the smallest object the
world draws, a triangle 0.14 wide, covers 0.0098)."""
TEMPLATE_SIZE = 32
MIN_SHAPE_IOU = 0.7
"""Below this soft IoU with its best template a blob is no shape: it is then further from every
shape than any shape's nearest other shape is from it (0.76 to 0.85; triangle and wedge are 0.59
apart). Renders score above 0.9, blurred or compressed ones above 0.8."""
MAX_BACKGROUND_RESIDUAL = 50.0
"""Median distance (RGB) of the border ring from the fitted background above which the image has
no background and so no objects: half the gap between any background tone and the nearest object
colour (103). Renders stay under 35 even with noise of sigma 70; random colour fields lie above 70."""
MAX_COLOR_RESIDUAL = 45.0
"""How far (RGB, mean over an object's pixels) they may lie from a mix of the local background and
the object's colour: just under half the distance between the closest two object colours (orange
and yellow, 98), beyond which a colour is no longer nearest its name. Beyond it the object has
a colour outside the palette (``color`` None) and satisfies no colour clause."""
MAX_SURROUND_RESIDUAL = 35.0
"""The same distance, median over a band around the blob, above which it is not an object on a
background but a patch of colour noise or a smear between other colours. Measured on renders
(benchmarks/bench_world_checker.py): real objects stay under 17 up to JPEG quality 25 or noise
sigma 50, and under 37 at JPEG quality 5; blobs in random colour fields mostly lie above."""
SURROUND = 0.1
"""Width of the band around an object that must be background (mixed with the object's own
colour at the edge), as a fraction of the object's longer side, at least 2 px."""
MAX_ASPECT = 1.6
"""Every shape fills a square box; a box more than 1.6 times longer one way is merged or broken."""

_PALETTE = np.array(list(COLORS.values()), dtype=np.float32)
_COLOR_NAMES = list(COLORS)


@dataclass(frozen=True)
class DetectedObject:
    shape: str | None  # None: a blob that matches no shape well enough
    color: str | None  # None: its pixels are no mix of the background and any object colour
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width and height
    area: float  # fraction of the image
    shape_score: float  # soft IoU with the chosen template
    color_residual: float  # mean RGB distance of its pixels from a mix of the background and its colour
    surround_residual: float  # the same (median) for the band around it


@dataclass(frozen=True)
class CheckResult:
    correct: bool
    reason: str
    detected: list[DetectedObject] = field(default_factory=list)


def check(image, metadata: Metadata) -> CheckResult:
    """Whether ``image`` (uint8 [H, W, 3], or float in 0..1) satisfies the prompt ``metadata``."""
    objects, note = _find(image)
    result = check_objects(objects, metadata)
    return CheckResult(result.correct, "\n".join(r for r in (note, result.reason) if r), result.detected)


def check_objects(detected: list[DetectedObject], metadata: Metadata) -> CheckResult:
    """``check`` on objects already detected (to judge one image against several prompts)."""
    correct, reason = rules.evaluate(detected, validate_metadata(metadata))
    return CheckResult(correct, reason, list(detected))


def detect(image) -> list[DetectedObject]:
    """The objects in ``image``, largest first (see the module docstring for how)."""
    return _find(image)[0]


def _find(image) -> tuple[list[DetectedObject], str]:
    """The objects, and why there are none when the image has no background to find them on."""
    img = _as_uint8_image(image)
    height, width = img.shape[:2]
    smooth = np.asarray(Image.fromarray(img).filter(ImageFilter.BoxBlur(1)), dtype=np.float32)
    background, border_residual = estimate_background(smooth)
    if border_residual > MAX_BACKGROUND_RESIDUAL:
        return [], (f"no background: the image border lies {border_residual:.0f} (median RGB distance) from a smooth "
                    f"background, more than {MAX_BACKGROUND_RESIDUAL:.0f}")
    # Channel planes and plain element-wise arithmetic: BLAS calls on [n, 3] arrays are slow here.
    planes, bg_planes = smooth.transpose(2, 0, 1).copy(), background.transpose(2, 0, 1).copy()
    to_background = _squared_distance(planes, bg_planes)
    to_palette = np.min([_squared_distance(planes, color) for color in _PALETTE], axis=0)
    foreground = to_palette < to_background
    labels, count = ndimage.label(foreground, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return [], ""
    min_pixels = MIN_AREA * height * width
    objects = []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[slices] == index
        area = int(mask.sum())
        if area < min_pixels:
            continue
        ys, xs = slices
        color, residual = classify_color(smooth[slices][mask], background[slices][mask])
        reach = max(2, round(SURROUND * max(ys.stop - ys.start, xs.stop - xs.start)))
        around = (slice(max(ys.start - reach, 0), ys.stop + reach), slice(max(xs.start - reach, 0), xs.stop + reach))
        inside = labels[around] == index
        band = ndimage.binary_dilation(inside, structure=np.ones((3, 3), dtype=bool), iterations=reach) & ~inside
        surround = float(np.median(_mix_distance(smooth[around][band], background[around][band], COLORS[color])))
        if surround > MAX_SURROUND_RESIDUAL:
            continue
        near = ndimage.binary_dilation(inside, structure=np.ones((3, 3), dtype=bool), iterations=2)
        coverage = _coverage(smooth[around], background[around], COLORS[color]) * near
        shape, score = classify_shape(_fine_mask(coverage))
        objects.append(DetectedObject(
            shape=shape, color=color if residual <= MAX_COLOR_RESIDUAL else None,
            bbox=(xs.start / width, ys.start / height, xs.stop / width, ys.stop / height),
            area=area / (height * width), shape_score=score, color_residual=residual, surround_residual=surround,
        ))
    objects.sort(key=lambda o: -o.area)
    return objects, ""


def estimate_background(image: np.ndarray) -> tuple[np.ndarray, float]:
    """A per-channel plane fitted robustly to the border ring of a float [H, W, 3] image, and the
    median distance of the ring's pixels from it."""
    height, width = image.shape[:2]
    ys, xs, design = _ring(height, width)
    values = image[ys, xs].astype(np.float64)
    keep = np.ones(len(xs), dtype=bool)
    for _ in range(2):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0].astype(np.float32)
        residual = np.linalg.norm(values - design @ coef, axis=1)
        # Keep what lies within 2.5 typical deviations (at least 12 levels, a texture's reach).
        keep = residual <= max(2.5 * float(np.median(residual)), 12.0)
    gx = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5)[None, :, None] * coef[1]
    gy = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5)[:, None, None] * coef[2] + coef[0]
    return gx + gy, float(np.median(residual))


@cache
def _ring(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates of the border ring and the plane fit's design matrix [1, x, y]."""
    ring = max(2, round(BORDER * min(height, width)))
    edge = np.zeros((height, width), dtype=bool)
    edge[:ring], edge[-ring:], edge[:, :ring], edge[:, -ring:] = True, True, True, True
    ys, xs = np.nonzero(edge)
    step = max(1, len(xs) // 4000)  # a few thousand pixels pin a plane down; keep the fit's cost flat
    ys, xs = ys[::step], xs[::step]
    design = np.stack([np.ones(len(xs)), (xs + 0.5) / width - 0.5, (ys + 0.5) / height - 0.5], axis=1)
    return ys, xs, design


def classify_color(pixels: np.ndarray, background: np.ndarray) -> tuple[str, float]:
    """The object colour that, mixed with the background, best explains a component's pixels.

    The colour whose mixing segments (background to colour, per pixel) pass nearest the pixels on
    average wins; returns it and that mean distance. Fully covered pixels weigh as their nearest
    colour; edge pixels, part background, do not pull the answer towards another colour.
    """
    residuals = [float(_mix_distance(pixels, background, color).mean()) for color in _PALETTE]
    best = int(np.argmin(residuals))
    return _COLOR_NAMES[best], residuals[best]


def _mix_distance(pixels: np.ndarray, background: np.ndarray, color) -> np.ndarray:
    """Distance of each pixel [..., 3] from the segment between its background [..., 3] and ``color``."""
    return np.sqrt(_unmix(pixels, background, color)[1])


def _coverage(pixels: np.ndarray, background: np.ndarray, color) -> np.ndarray:
    """How much of each pixel [..., 3] the colour covers, read off the background-to-colour segment."""
    return _unmix(pixels, background, color)[0]


def _unmix(pixels: np.ndarray, background: np.ndarray, color) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the share t of ``color`` in the mix (1 - t) * background + t * color nearest the
    pixel, clipped to 0..1, and the squared RGB distance from the pixel to that mix."""
    offset = np.moveaxis(pixels - background, -1, 0)
    direction = np.moveaxis(np.asarray(color, dtype=np.float32) - background, -1, 0)
    along = offset[0] * direction[0] + offset[1] * direction[1] + offset[2] * direction[2]
    length2 = direction[0] ** 2 + direction[1] ** 2 + direction[2] ** 2
    t = np.clip(along / np.maximum(length2, 1e-6), 0.0, 1.0)
    return t, _squared_distance(offset, t * direction)


def _squared_distance(planes: np.ndarray, other) -> np.ndarray:
    """Squared RGB distance between channel planes [3, ...] and other planes or a colour [3]."""
    other = np.asarray(other, dtype=np.float32)
    if other.ndim == 1:
        other = other.reshape(3, *([1] * (planes.ndim - 1)))
    d0, d1, d2 = planes[0] - other[0], planes[1] - other[1], planes[2] - other[2]
    return d0 * d0 + d1 * d1 + d2 * d2


def _fine_mask(coverage: np.ndarray) -> np.ndarray:
    """The 50% contour of a coverage map, traced on a grid at least TEMPLATE_SIZE across.

    Thresholding pixels directly turns a 10 px circle into a blocky cross; interpolating the
    coverage first keeps the sub-pixel edge that anti-aliasing (or blur) encodes.
    """
    h, w = coverage.shape
    factor = max(1, -(-TEMPLATE_SIZE // max(h, w)))
    if factor > 1:
        coverage = np.asarray(Image.fromarray(coverage, mode="F").resize((w * factor, h * factor), Image.BILINEAR))
    return coverage >= 0.5


def classify_shape(mask: np.ndarray) -> tuple[str | None, float]:
    """The best-matching shape for a blob's mask, compared within its bounding box, and its soft IoU."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if len(rows) == 0:
        return None, 0.0
    mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = mask.shape
    if max(h, w) > MAX_ASPECT * min(h, w):
        return None, 0.0
    soft = _to_template_grid(mask)
    names, stack = _templates()
    iou = np.minimum(soft, stack).sum((1, 2)) / np.maximum(soft, stack).sum((1, 2))
    best = int(iou.argmax())
    score = float(iou[best])
    return (names[best] if score >= MIN_SHAPE_IOU else None), score


TEMPLATE_BLURS = (0.0, 0.05, 0.1, 0.15)
"""Gaussian blurs (sigma as a fraction of the shape's size) the templates are made at: a blurred
shape's 50% contour loses its tips and corners, and is compared with a template that lost the same.
They stop at 0.15: more blur rounds every outline toward a circle's (in the world's first version a
cross blurred by 0.2 of its size beat a clean circle's own template), while at 0.15 clean and
blurred shapes are all told apart."""


@cache
def _templates() -> tuple[list[str], np.ndarray]:
    """Each shape's 50% contour after each blur, cropped to its own box: names and masks [K, T, T]."""
    names, masks = [], []
    inner = 4 * TEMPLATE_SIZE
    for shape in SHAPES:
        coverage = np.pad(shape_template(shape, inner), inner // 2)
        for blur in TEMPLATE_BLURS:
            mask = (ndimage.gaussian_filter(coverage, blur * inner) if blur else coverage) >= 0.5
            rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
            names.append(shape)
            masks.append(_to_template_grid(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]))
    return names, np.stack(masks)


def _to_template_grid(mask: np.ndarray) -> np.ndarray:
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((TEMPLATE_SIZE, TEMPLATE_SIZE), Image.BOX)
    return np.asarray(resized, dtype=np.float32) / 255.0


def _as_uint8_image(image) -> np.ndarray:
    """uint8 [H, W, 3] (0..255) or float [H, W, 3] (0..1, ComfyUI's IMAGE) as uint8 [H, W, 3]."""
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 16:
        raise TTSVarError(f"check needs one RGB image [H, W, 3] with sides >= 16 (got shape {array.shape}); "
                          "pass images one at a time")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise TTSVarError(f"check needs uint8 (0..255) or float (0..1) pixels (got {array.dtype})")
    return np.rint(np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
