"""Procedurally drawn fashion photos: figures wearing textured garments, with their true boxes.

One body model and one set of garment shapes serve three kinds of picture:

- ``render_garment_photo``: a DeepFashion-style shot with ONE labelled garment
  (upper = waist-up shot, lower = waist-down shot, full = whole figure);
- ``render_runway_look``: a full-body model on a runway backdrop, in a dress/jumpsuit/coat
  (one type-3 box) or in separates (a type-1 and a type-2 box);
- ``render_distractor``: pictures without any full-body garment (accessory close-up,
  head shot, crowd of tiny figures, empty backdrop), the noise a scrape brings in.

Everything is drawn into a *label map* first (one uint8 id per pixel: skin, hair, shoes,
neutral clothing, labelled garments), then each label is coloured or textured with numpy.
A garment's box is the tight box around its label's visible pixels, so occlusion by arms
or hair is accounted for. Labelled garments always carry a texture (stripes, dots, florals,
checks, solids in saturated colours); unlabelled clothing is a plain neutral colour, so the
classes stay learnable by a small detector trained from scratch.

Deterministic: the same ``numpy.random.Generator`` state gives the same picture.

Harder runway looks (issue 23): ``HardLooks`` options make a runway look more like a photograph for
segmentation: skin tones from a continuous range (not ``SKIN_TONES``' six), a light gradient across
the picture, a backdrop in the garment's colour, a printed backdrop, and forearms across the body.
They are off by default, so the DeepFashion sample, the try-on data and ``render_runway_look`` draw
what they drew before; the embedded Pinterest site turns them on (``RUNWAY_HARD``).

Ground truth for segmentation: ``render_runway_look_with_truth`` returns, with the same picture
(the same random draws, in the same order), a ``GarmentTruth``: the label map reduced to
``TRUTH_VALUES`` (1 upper, 2 lower, 3 full-body garment, 4 other clothing and shoes, 5 skin,
6 hair) and the pattern type each labelled garment was textured with.
"""
from __future__ import annotations

import argparse
import colorsys
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CATEGORY_TYPE_NAMES = {1: "upper", 2: "lower", 3: "full"}

Box = tuple[int, int, int, int]
Point = tuple[float, float]

# Label-map ids. Garment ids are the ones whose boxes are reported.
BACKGROUND, SKIN, HAIR, SHOES, NEUTRAL_TOP, NEUTRAL_BOTTOM = 0, 1, 2, 3, 4, 5
GARMENT_UPPER, GARMENT_LOWER, GARMENT_FULL = 10, 11, 12
GARMENT_LABEL = {1: GARMENT_UPPER, 2: GARMENT_LOWER, 3: GARMENT_FULL}

SKIN_TONES = [(255, 224, 196), (241, 194, 160), (224, 172, 135), (198, 134, 94), (141, 85, 54), (92, 58, 38)]
HAIR_COLOURS = [(20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 170, 110), (150, 60, 30), (90, 90, 90)]
NEUTRALS = [(236, 234, 230), (32, 32, 34), (88, 88, 92), (198, 188, 172), (58, 54, 66), (150, 148, 144)]
TEXTURES = ("stripes", "dots", "florals", "checks", "solid")
UPPER_STYLES = ("tee", "blouse", "sweater", "tank", "jacket")
LOWER_STYLES = ("skirt", "trousers", "shorts")
FULL_STYLES = ("dress", "jumpsuit", "coat")

# The true-mask values (``GarmentTruth.mask``): the labelled garments keep their category type id.
TRUTH_VALUES = {"background": 0, "upper": 1, "lower": 2, "full": 3, "other_clothing": 4, "skin": 5, "hair": 6}
_TRUTH_OF_LABEL = {BACKGROUND: 0, SKIN: 5, HAIR: 6, SHOES: 4, NEUTRAL_TOP: 4, NEUTRAL_BOTTOM: 4,
                   GARMENT_UPPER: 1, GARMENT_LOWER: 2, GARMENT_FULL: 3}


# --------------------------------------------------------------------------- body model


@dataclass(frozen=True)
class Body:
    """A standing figure; all offsets are fractions of its height ``h``, measured from ``top``."""

    cx: float
    top: float
    h: float
    shoulder: float  # half width at the shoulders
    waist: float
    hip: float
    arm_spread: float  # how far the hands hang out from the shoulders
    stance: float  # half distance between the ankles

    def pt(self, dx: float, fy: float) -> Point:
        return (self.cx + dx * self.h, self.top + fy * self.h)

    def torso_half_width(self, fy: float, flare: float = 0.0) -> float:
        """Half width of the torso outline at height ``fy``; ``flare`` widens it below the hip."""
        knots_y = (0.15, 0.22, 0.36, 0.47, 0.53)
        knots_w = (self.shoulder, self.shoulder * 0.92, self.waist, self.hip, self.hip * 1.02)
        if fy > 0.53:
            return self.hip * 1.02 + flare * (fy - 0.53)
        return float(np.interp(fy, knots_y, knots_w))

    def arm(self, side: int) -> list[Point]:
        """Shoulder, elbow and wrist of one arm (side -1 = image left)."""
        return [
            self.pt(side * (self.shoulder - 0.012), 0.165),
            self.pt(side * (self.shoulder + 0.3 * self.arm_spread + 0.008), 0.315),
            self.pt(side * (self.shoulder + self.arm_spread + 0.004), 0.455),
        ]

    def leg(self, side: int) -> list[Point]:
        """Hip joint, knee and ankle of one leg."""
        return [
            self.pt(side * self.hip * 0.5, 0.49),
            self.pt(side * (self.hip * 0.42 + self.stance * 0.55), 0.72),
            self.pt(side * (self.hip * 0.38 + self.stance), 0.945),
        ]


@dataclass(frozen=True)
class PosedBody(Body):
    """A body whose forearms on the ``crossed`` sides lie across the torso (a hand on the other hip, folded arms)."""

    crossed: tuple[int, ...] = ()
    reach: float = 0.03  # how far past the centre line the crossing hand reaches (fraction of ``h``)

    def arm(self, side: int) -> list[Point]:
        if side not in self.crossed:
            return super().arm(side)
        return [
            self.pt(side * (self.shoulder - 0.012), 0.165),
            self.pt(side * (self.shoulder + 0.025), 0.3),
            self.pt(-side * self.reach, 0.39),
        ]


def random_body(rng: np.random.Generator, cx: float, top: float, h: float, pose_width: float | None = None) -> Body:
    """A body with varied build and pose; ``pose_width`` in [0, 1] spreads arms and legs."""
    spread = rng.uniform(0.0, 1.0) if pose_width is None else pose_width
    shoulder = rng.uniform(0.085, 0.105)
    return Body(
        cx=cx,
        top=top,
        h=h,
        shoulder=shoulder,
        waist=shoulder * rng.uniform(0.62, 0.76),
        hip=shoulder * rng.uniform(0.88, 1.02),
        arm_spread=0.01 + 0.07 * spread,
        stance=0.02 + 0.06 * spread * rng.uniform(0.5, 1.0),
    )


# --------------------------------------------------------------------------- polygons


def _limb_polygon(points: list[Point], widths: list[float]) -> list[Point]:
    """Outline of a thick polyline (one half width per joint): left side down, right side up."""
    left, right = [], []
    for index, (x, y) in enumerate(points):
        before = points[max(index - 1, 0)]
        after = points[min(index + 1, len(points) - 1)]
        dx, dy = after[0] - before[0], after[1] - before[1]
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / norm, dx / norm
        w = widths[index]
        left.append((x + nx * w, y + ny * w))
        right.append((x - nx * w, y - ny * w))
    return left + right[::-1]


def _partial_polyline(points: list[Point], fraction: float) -> list[Point]:
    """The first ``fraction`` (by joint count) of a polyline, interpolating inside a segment."""
    position = fraction * (len(points) - 1)
    whole = int(position)
    out = points[: whole + 1]
    rest = position - whole
    if rest > 1e-6 and whole + 1 < len(points):
        (x0, y0), (x1, y1) = points[whole], points[whole + 1]
        out.append((x0 + (x1 - x0) * rest, y0 + (y1 - y0) * rest))
    return out


def _torso_band(body: Body, top_f: float, bottom_f: float, extra: float = 0.0, flare: float = 0.0) -> list[Point]:
    """The torso outline between two heights, optionally a little wider (clothes sit on the body)."""
    ys = np.linspace(top_f, bottom_f, 9)
    right = [body.pt(body.torso_half_width(f, flare) + extra, f) for f in ys]
    left = [body.pt(-(body.torso_half_width(f, flare) + extra), f) for f in ys[::-1]]
    return right + left


def _ellipse(draw: ImageDraw.ImageDraw, centre: Point, rx: float, ry: float, fill: int) -> None:
    x, y = centre
    draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fill)


# --------------------------------------------------------------------------- garments


@dataclass(frozen=True)
class Garment:
    """One garment's shape; ``label`` is the label-map id it is drawn with."""

    style: str
    label: int
    hem: float  # height fraction where it ends
    sleeve: float = 0.0  # 0 sleeveless .. 1 long sleeves
    flare: float = 0.0
    neckline: float = 0.02  # depth of the neckline cut


def random_upper(rng: np.random.Generator, label: int, style: str | None = None) -> Garment:
    style = style or str(rng.choice(UPPER_STYLES))
    sleeve = {"tank": 0.0, "tee": rng.uniform(0.2, 0.4)}.get(style, rng.uniform(0.7, 1.0))
    hem = rng.uniform(0.44, 0.54) if style == "jacket" else rng.uniform(0.38, 0.5)
    return Garment(style, label, hem=hem, sleeve=sleeve, neckline=rng.uniform(0.0, 0.05))


def random_lower(rng: np.random.Generator, label: int, style: str | None = None) -> Garment:
    style = style or str(rng.choice(LOWER_STYLES))
    if style == "skirt":
        return Garment(style, label, hem=rng.uniform(0.58, 0.9), flare=rng.uniform(0.0, 0.35))
    if style == "shorts":
        return Garment(style, label, hem=rng.uniform(0.56, 0.64))
    return Garment(style, label, hem=rng.uniform(0.88, 0.95), flare=rng.uniform(0.0, 0.04))


def random_full(rng: np.random.Generator, label: int, style: str | None = None) -> Garment:
    style = style or str(rng.choice(FULL_STYLES))
    if style == "dress":
        return Garment(style, label, hem=rng.uniform(0.6, 0.92), sleeve=float(rng.choice([0.0, 0.3, 0.9])),
                       flare=rng.uniform(0.05, 0.45), neckline=rng.uniform(0.0, 0.06))
    if style == "jumpsuit":
        return Garment(style, label, hem=rng.uniform(0.88, 0.95), sleeve=float(rng.choice([0.0, 0.3, 1.0])),
                       flare=rng.uniform(0.0, 0.05), neckline=rng.uniform(0.0, 0.05))
    return Garment("coat", label, hem=rng.uniform(0.66, 0.86), sleeve=1.0, flare=rng.uniform(0.05, 0.2),
                   neckline=rng.uniform(0.02, 0.06))


def _draw_sleeves(draw: ImageDraw.ImageDraw, body: Body, garment: Garment) -> None:
    if garment.sleeve <= 0.0:
        return
    for side in (-1, 1):
        arm = _partial_polyline(body.arm(side), garment.sleeve)
        widths = [0.05 * body.h] + [0.037 * body.h] * (len(arm) - 1)
        draw.polygon(_limb_polygon(arm, widths), fill=garment.label)
        _ellipse(draw, arm[0], 0.048 * body.h, 0.04 * body.h, garment.label)


def _draw_legwear(draw: ImageDraw.ImageDraw, body: Body, hem: float, label: int, flare: float) -> None:
    """Trousers/shorts: a seat band plus two leg tubes down to ``hem``."""
    draw.polygon(_torso_band(body, 0.36, 0.54, extra=0.006), fill=label)
    for side in (-1, 1):
        leg = body.leg(side)
        tube = _partial_polyline(leg, float(np.clip((hem - 0.49) / (0.945 - 0.49), 0.05, 1.0)))
        widths = [0.068 * body.h] + [(0.047 + flare) * body.h] * (len(tube) - 1)
        draw.polygon(_limb_polygon(tube, widths), fill=label)


def _draw_lower_part(draw: ImageDraw.ImageDraw, body: Body, garment: Garment) -> None:
    if garment.style == "skirt":
        draw.polygon(_torso_band(body, 0.36, garment.hem, extra=0.008, flare=garment.flare), fill=garment.label)
    else:
        _draw_legwear(draw, body, garment.hem, garment.label, garment.flare)


def _draw_upper_part(draw: ImageDraw.ImageDraw, body: Body, garment: Garment) -> None:
    extra = 0.014 if garment.style in ("jacket", "coat", "sweater") else 0.006
    if garment.style == "dress":
        draw.polygon(_torso_band(body, 0.15, 0.37, extra=extra), fill=garment.label)
        draw.polygon(_torso_band(body, 0.36, garment.hem, extra=0.008, flare=garment.flare), fill=garment.label)
    elif garment.style == "jumpsuit":
        draw.polygon(_torso_band(body, 0.15, 0.4, extra=extra), fill=garment.label)
        _draw_legwear(draw, body, garment.hem, garment.label, garment.flare)
    else:
        flare = garment.flare if garment.style == "coat" else 0.0
        draw.polygon(_torso_band(body, 0.15, garment.hem, extra=extra, flare=flare), fill=garment.label)
    for side in (-1, 1):  # round shoulders
        _ellipse(draw, body.pt(side * (body.shoulder - 0.02), 0.17), 0.04 * body.h, 0.03 * body.h, garment.label)


def _draw_neckline(draw: ImageDraw.ImageDraw, body: Body, depth: float) -> None:
    if depth <= 0.005:
        return
    x, y = body.pt(0.0, 0.15)
    half = 0.035 * body.h
    draw.polygon([(x - half, y - 1), (x + half, y - 1), (x, y + depth * body.h)], fill=SKIN)


# --------------------------------------------------------------------------- figure


@dataclass(frozen=True)
class Outfit:
    """What one figure wears: a top and a bottom, or one full-body garment, plus the looks of skin and hair."""

    upper: Garment | None
    lower: Garment | None
    full: Garment | None
    long_hair: bool
    bare_legs: bool


def draw_figure(draw: ImageDraw.ImageDraw, body: Body, outfit: Outfit) -> None:
    """Paint one figure into a label map, back to front."""
    h = body.h
    if outfit.long_hair:
        draw.polygon([body.pt(-0.055, 0.05), body.pt(0.055, 0.05), body.pt(0.06, 0.24), body.pt(-0.06, 0.24)], fill=HAIR)
    legs_label = SKIN if outfit.bare_legs else NEUTRAL_BOTTOM
    for side in (-1, 1):
        leg = body.leg(side)
        draw.polygon(_limb_polygon(leg, [0.06 * h, 0.04 * h, 0.028 * h]), fill=legs_label)
        _ellipse(draw, leg[1], 0.04 * h, 0.03 * h, legs_label)
        ankle = leg[2]
        _ellipse(draw, (ankle[0] + side * 0.012 * h, ankle[1] + 0.025 * h), 0.034 * h, 0.022 * h, SHOES)
    draw.polygon(_torso_band(body, 0.15, 0.53), fill=SKIN)
    if outfit.lower is not None:
        _draw_lower_part(draw, body, outfit.lower)
    top = outfit.full or outfit.upper
    if top is not None:
        _draw_upper_part(draw, body, top)
        _draw_neckline(draw, body, top.neckline)
    for side in (-1, 1):
        arm = body.arm(side)
        draw.polygon(_limb_polygon(arm, [0.038 * h, 0.03 * h, 0.024 * h]), fill=SKIN)
        _ellipse(draw, (arm[2][0], arm[2][1] + 0.02 * h), 0.022 * h, 0.03 * h, SKIN)
    if top is not None:
        _draw_sleeves(draw, body, top)
    draw.rectangle((*body.pt(-0.022, 0.1), *body.pt(0.022, 0.16)), fill=SKIN)
    _ellipse(draw, body.pt(0.0, 0.062), 0.045 * h, 0.06 * h, SKIN)
    _ellipse(draw, body.pt(0.0, 0.03), 0.048 * h, 0.031 * h, HAIR)


def _neutral_top(rng: np.random.Generator) -> Garment:
    return Garment("tee", NEUTRAL_TOP, hem=rng.uniform(0.4, 0.5), sleeve=float(rng.choice([0.0, 0.3, 1.0])))


def _neutral_bottom(rng: np.random.Generator) -> Garment:
    return Garment("trousers", NEUTRAL_BOTTOM, hem=0.93)


def outfit_for(rng: np.random.Generator, category_type: int, style: str | None = None) -> Outfit:
    """An outfit whose only labelled (textured) garment has ``category_type``; the rest is neutral or skin.

    ``style`` picks the garment's shape (one of UPPER_STYLES, LOWER_STYLES or FULL_STYLES for that type);
    random when None.
    """
    _check_style(category_type, style)
    long_hair = bool(rng.random() < 0.5)
    if category_type == 1:
        return Outfit(random_upper(rng, GARMENT_UPPER, style), _neutral_bottom(rng), None, long_hair, bare_legs=False)
    if category_type == 2:
        lower = random_lower(rng, GARMENT_LOWER, style)
        return Outfit(_neutral_top(rng), lower, None, long_hair, bare_legs=lower.style != "trousers" or rng.random() < 0.5)
    if category_type == 3:
        full = random_full(rng, GARMENT_FULL, style)
        return Outfit(None, None, full, long_hair, bare_legs=bool(rng.random() < 0.7))
    raise ValueError(f"category_type must be 1, 2 or 3, got {category_type!r}")


def _check_style(category_type: int, style: str | None) -> None:
    allowed = {1: UPPER_STYLES, 2: LOWER_STYLES, 3: FULL_STYLES}.get(category_type, ())
    if style is not None and style not in allowed:
        raise ValueError(f"style {style!r} is not one of {allowed} (category_type {category_type})")


# --------------------------------------------------------------------------- colour and texture


def random_colour(rng: np.random.Generator, saturated: bool = True) -> tuple[int, int, int]:
    hue = rng.random()
    sat = rng.uniform(0.45, 0.95) if saturated else rng.uniform(0.0, 0.25)
    val = rng.uniform(0.45, 0.95)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def _contrast(rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    if rng.random() < 0.4:
        return (245, 243, 238) if sum(colour) < 420 else (25, 25, 30)
    r, g, b = (c / 255 for c in colour)
    hue, sat, val = colorsys.rgb_to_hsv(r, g, b)
    hue = (hue + rng.uniform(0.25, 0.75)) % 1.0
    val = 1.0 - val * 0.6 if val > 0.6 else min(1.0, val + 0.4)
    return tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, sat, val))  # type: ignore[return-value]


def texture(rng: np.random.Generator, shape: tuple[int, int], period: float, kind: str | None = None) -> np.ndarray:
    """An HxWx3 uint8 pattern of ``kind`` (random when None) with a feature size of about ``period`` px."""
    kind = kind or str(rng.choice(TEXTURES))
    height, width = shape
    base = np.array(random_colour(rng), dtype=np.uint8)
    second = np.array(_contrast(rng, tuple(int(c) for c in base)), dtype=np.uint8)
    period = max(period, 3.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs += rng.uniform(0, period)
    ys += rng.uniform(0, period)
    if kind == "solid":
        out = np.empty((height, width, 3), np.uint8)
        out[:] = base
        return out
    if kind == "stripes":
        angle = rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4, rng.uniform(0, math.pi)])
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) / period
        mask = (phase - np.floor(phase)) < rng.uniform(0.3, 0.6)
    elif kind == "checks":
        cell = period * 0.8
        mask = ((np.floor(xs / cell) + np.floor(ys / cell)) % 2).astype(bool)
    elif kind == "dots":
        cell = period
        dx, dy = xs % cell - cell / 2, ys % cell - cell / 2
        mask = dx * dx + dy * dy < (cell * rng.uniform(0.18, 0.32)) ** 2
    else:  # florals: five-petal flowers on a staggered grid, with a centre of a third colour
        cell = period * 1.6
        row = np.floor(ys / cell)
        dx = (xs + (row % 2) * cell / 2) % cell - cell / 2
        dy = ys % cell - cell / 2
        radius = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        petals = radius < cell * 0.42 * (0.45 + 0.55 * np.abs(np.cos(2.5 * theta)))
        centre = radius < cell * 0.1
        out = np.where(petals[..., None], second, base).astype(np.uint8)
        out[centre] = np.array(random_colour(rng), np.uint8)
        return out
    return np.where(mask[..., None], second, base).astype(np.uint8)


# --------------------------------------------------------------------------- backgrounds


def _vertical_gradient(size: tuple[int, int], top: tuple[int, ...], bottom: tuple[int, ...]) -> np.ndarray:
    width, height = size
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = ((1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)).astype(np.uint8)
    # a nearest-neighbour resize of one column is much faster than broadcasting in numpy
    return np.array(Image.fromarray(column).resize((width, height), Image.Resampling.NEAREST))


def studio_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Plain, gradient or two-tone (wall and floor) studio backgrounds, as DeepFashion's shop photos have."""
    width, height = size
    light = random_colour(rng, saturated=False)
    choice = rng.integers(0, 3)
    if choice == 0:
        out = np.empty((height, width, 3), np.uint8)
        out[:] = light
        return out
    if choice == 1:
        return _vertical_gradient(size, light, random_colour(rng, saturated=False))
    out = np.empty((height, width, 3), np.uint8)
    horizon = int(height * rng.uniform(0.55, 0.85))
    out[:horizon] = light
    out[horizon:] = random_colour(rng, saturated=False)
    return out


def runway_background(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """A runway: backdrop wall (gradient), blurred audience at the sides, a lit floor strip. Returns (pixels, horizon y)."""
    width, height = size
    wall_top = random_colour(rng, saturated=rng.random() < 0.3)
    wall_bottom = tuple(int(c * rng.uniform(0.3, 0.8)) for c in wall_top)
    out = _vertical_gradient(size, wall_top, wall_bottom)
    horizon = int(height * rng.uniform(0.5, 0.72))
    floor = np.array(random_colour(rng, saturated=False), np.float32) * rng.uniform(0.3, 1.0)
    out[horizon:] = floor.astype(np.uint8)
    if rng.random() < 0.7:
        _paint_audience(rng, out, horizon)
    # the lit runway strip narrows towards the horizon (perspective)
    half_near, half_far = width * rng.uniform(0.3, 0.5), width * rng.uniform(0.08, 0.18)
    centre = width * rng.uniform(0.4, 0.6)
    shine = floor * 0.3 + np.array(random_colour(rng, saturated=False), np.float32) * 0.7
    image = Image.fromarray(out)
    ImageDraw.Draw(image).polygon(
        [(centre - half_far, horizon), (centre + half_far, horizon), (centre + half_near, height), (centre - half_near, height)],
        fill=tuple(int(c) for c in shine),
    )
    return np.array(image), horizon


def _paint_audience(rng: np.random.Generator, out: np.ndarray, horizon: int) -> None:
    """Rows of small blurred heads and bodies along the horizon, at both sides."""
    height, width = out.shape[:2]
    band_top = max(0, int(horizon - height * rng.uniform(0.12, 0.22)))
    band = Image.fromarray(out[band_top:horizon].copy())
    draw = ImageDraw.Draw(band)
    band_h = horizon - band_top
    for _ in range(int(rng.integers(25, 60))):
        x = rng.uniform(0, width)
        if abs(x - width / 2) < width * 0.12:  # the runway's far end stays clear
            continue
        y = rng.uniform(0.2, 1.0) * band_h
        r = rng.uniform(0.04, 0.1) * band_h + 2
        draw.ellipse((x - r, y - r, x + r, y + r * 3), fill=random_colour(rng, saturated=rng.random() < 0.4))
    out[band_top:horizon] = np.asarray(band.filter(ImageFilter.BoxBlur(3)))


# --------------------------------------------------------------------------- composition


def _colour_labels(
    rng: np.random.Generator, canvas: np.ndarray, labels: np.ndarray, period: float, garments: dict[int, str | None],
    kinds_out: dict[int, str] | None = None, skin: tuple[int, int, int] | None = None,
) -> dict[int, Box]:
    """Fill every label's pixels in ``canvas``; textures for garments. Returns the garment boxes (xyxy, exclusive).

    ``kinds_out``, when given, receives the texture kind each garment was drawn with. ``skin``, when
    given, replaces the drawn one of ``SKIN_TONES``.
    """
    tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]  # drawn even when ``skin`` is given: the same draws follow
    flat_colours = {
        SKIN: skin if skin is not None else tone,
        HAIR: HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        SHOES: NEUTRALS[int(rng.integers(len(NEUTRALS)))],
        NEUTRAL_TOP: NEUTRALS[int(rng.integers(len(NEUTRALS)))],
        NEUTRAL_BOTTOM: NEUTRALS[int(rng.integers(len(NEUTRALS)))],
    }
    # work inside the figures' bounding box only: most of a runway picture is background
    region = _mask_box(labels > 0)
    if region is None:
        return {}
    rx0, ry0, rx1, ry1 = region
    labels = labels[ry0:ry1, rx0:rx1]
    canvas = canvas[ry0:ry1, rx0:rx1]
    palette = np.zeros((256, 3), np.uint8)
    for label, colour in flat_colours.items():
        palette[label] = colour
    flat = palette[labels]
    painted = (labels > 0) & (labels < GARMENT_UPPER)
    np.copyto(canvas, flat, where=painted[..., None])
    boxes: dict[int, Box] = {}
    for label, kind in garments.items():
        mask = labels == label
        box = _mask_box(mask)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        # ``texture`` draws the kind first when it is None; drawing it here is the same draw.
        kind = kind or str(rng.choice(TEXTURES))
        if kinds_out is not None:
            kinds_out[label] = kind
        patch = texture(rng, (y1 - y0, x1 - x0), period, kind)
        np.copyto(canvas[y0:y1, x0:x1], patch, where=mask[y0:y1, x0:x1, None])
        boxes[label] = (x0 + rx0, y0 + ry0, x1 + rx0, y1 + ry0)
    return boxes


def _mask_box(mask: np.ndarray) -> Box | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _shade(canvas: np.ndarray, labels: np.ndarray, body: Body) -> None:
    """Darken towards the figure's sides so garments look round rather than flat."""
    region = _mask_box(labels > 0)
    if region is None:
        return
    x0, y0, x1, y1 = region
    xs = np.arange(x0, x1, dtype=np.float32)
    falloff = np.clip(np.abs(xs - body.cx) / (0.22 * body.h), 0.0, 1.0) ** 2
    factor = (256 * (1.0 - 0.22 * falloff)).astype(np.uint16)[None, :, None]
    window = canvas[y0:y1, x0:x1]
    shaded = ((window * factor) >> 8).astype(np.uint8)
    np.copyto(window, shaded, where=(labels[y0:y1, x0:x1] > 0)[..., None])


# --------------------------------------------------------------------------- harder runway looks (issue 23)


@dataclass(frozen=True)
class HardLooks:
    """What makes a runway look harder to segment, as real photos are; all off (the pictures of before) by default.

    ``lighting`` is the largest brightness change (a fraction, up or down) from the picture's centre to
    its corners, along a random direction; the others are probabilities per look (``crossed_arms`` per arm).
    """

    continuous_skin: bool = False  # a skin tone anywhere between SKIN_TONES' lightest and darkest, not one of six
    lighting: float = 0.0
    close_background: float = 0.0  # the backdrop blended towards the garment's own colour
    patterned_background: float = 0.0  # a print (stripes, checks, dots, florals) over the backdrop wall
    crossed_arms: float = 0.0

    @property
    def any(self) -> bool:
        return bool(self.continuous_skin or self.lighting or self.close_background or self.patterned_background
                    or self.crossed_arms)


# The embedded Pinterest site's looks (kept moderate: the detector trained on the DeepFashion sample,
# the crops and the DCGANs downstream see these pictures too).
RUNWAY_HARD = HardLooks(continuous_skin=True, lighting=0.25, close_background=0.25, patterned_background=0.3,
                        crossed_arms=0.25)


def continuous_skin_tone(rng: np.random.Generator) -> tuple[int, int, int]:
    """A skin colour anywhere along SKIN_TONES' range (between two neighbouring tones), with a little jitter."""
    position = rng.uniform(0.0, len(SKIN_TONES) - 1.0)
    index = min(int(position), len(SKIN_TONES) - 2)
    share = position - index
    tone = (1 - share) * np.array(SKIN_TONES[index], np.float32) + share * np.array(SKIN_TONES[index + 1], np.float32)
    tone += rng.normal(0.0, 5.0, 3)
    return tuple(int(v) for v in np.clip(tone, 0, 255))  # type: ignore[return-value]


def _printed_wall(rng: np.random.Generator, background: np.ndarray, horizon: int) -> None:
    """A printed backdrop (a sponsor wall, a patterned curtain) blended over the wall above the horizon."""
    height, width = background.shape[:2]
    kind = str(rng.choice(["stripes", "checks", "dots", "florals"]))
    pattern = texture(rng, (horizon, width), period=width * rng.uniform(0.03, 0.09), kind=kind).astype(np.float32)
    alpha = rng.uniform(0.3, 0.6)
    wall = background[:horizon].astype(np.float32)
    background[:horizon] = ((1 - alpha) * wall + alpha * pattern).astype(np.uint8)


def _backdrop_like_garment(rng: np.random.Generator, canvas: np.ndarray, labels: np.ndarray) -> None:
    """Blend the background towards the garments' median colour: a garment close in colour to what is behind it."""
    garment = labels >= GARMENT_UPPER
    if not garment.any():
        return
    colour = np.median(canvas[garment].reshape(-1, 3), axis=0).astype(np.float32)
    alpha = rng.uniform(0.5, 0.8)
    background = labels == BACKGROUND
    canvas[background] = ((1 - alpha) * canvas[background].astype(np.float32) + alpha * colour).astype(np.uint8)


def _light_gradient(rng: np.random.Generator, canvas: np.ndarray, strength: float) -> None:
    """Light falling from one side: brightness changes linearly along a random direction, figure and background alike."""
    height, width = canvas.shape[:2]
    angle = rng.uniform(0.0, 2 * math.pi)
    amount = strength * rng.uniform(0.5, 1.0)
    reach = 0.5 * math.hypot(width, height)  # the corners change by about ``amount``
    across = (np.arange(width, dtype=np.float32) - width / 2) * (math.cos(angle) / reach)
    down = (np.arange(height, dtype=np.float32) - height / 2) * (math.sin(angle) / reach)
    factor = 1.0 + amount * (down[:, None] + across[None, :])
    canvas[:] = np.clip(canvas * factor[..., None], 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class GarmentTruth:
    """What a picture's pixels are: ``mask`` (H x W uint8, ``TRUTH_VALUES``) and each garment's pattern type."""

    mask: np.ndarray
    patterns: dict[str, str]  # "upper" / "lower" / "full" -> texture kind (one of TEXTURES)

    def garment_mask(self) -> np.ndarray:
        """Clothing only: the labelled garments (not skin, hair, shoes or the plain neutral clothes)."""
        return (self.mask >= 1) & (self.mask <= 3)


def _render(
    rng: np.random.Generator, background: np.ndarray, body: Body, outfit: Outfit, garment_kinds: dict[int, str | None],
    truth: list | None = None, hard: HardLooks | None = None, hard_rng: np.random.Generator | None = None,
) -> tuple[Image.Image, dict[int, Box]]:
    """Draw one figure; ``truth``, when given, receives its ``GarmentTruth`` (no extra random draws).

    ``hard`` (``HardLooks``) draws its own choices from ``hard_rng`` only, so ``rng`` gives the same
    outfit, colours and prints as without it.
    """
    height, width = background.shape[:2]
    label_image = Image.new("L", (width, height), BACKGROUND)
    draw_figure(ImageDraw.Draw(label_image), body, outfit)
    labels = np.asarray(label_image)
    canvas = background.copy()
    kinds: dict[int, str] = {}
    skin = continuous_skin_tone(hard_rng) if hard is not None and hard.continuous_skin else None
    boxes = _colour_labels(rng, canvas, labels, period=body.h * rng.uniform(0.015, 0.045), garments=garment_kinds,
                           kinds_out=kinds, skin=skin)
    _shade(canvas, labels, body)
    if hard is not None:
        if hard_rng.random() < hard.close_background:
            _backdrop_like_garment(hard_rng, canvas, labels)
        if hard.lighting > 0:
            _light_gradient(hard_rng, canvas, hard.lighting)
    if truth is not None:
        lut = np.zeros(256, np.uint8)
        for label, value in _TRUTH_OF_LABEL.items():
            lut[label] = value
        names = {GARMENT_UPPER: "upper", GARMENT_LOWER: "lower", GARMENT_FULL: "full"}
        truth.append(GarmentTruth(lut[labels], {names[label]: kind for label, kind in sorted(kinds.items())}))
    return Image.fromarray(canvas), boxes


def _frame(rng: np.random.Generator, category_type: int, size: tuple[int, int]) -> Body:
    """Place the body so the shot frames its garment: waist-up, waist-down or whole figure."""
    width, height = size
    cx = width * rng.uniform(0.38, 0.62)
    if category_type == 1:  # waist-up: head near the top, the hips at the bottom edge
        h = height * rng.uniform(1.75, 2.1)
        top = height * rng.uniform(0.02, 0.08)
    elif category_type == 2:  # waist-down: the waist near the top, the feet near the bottom edge
        h = height * rng.uniform(0.92, 1.02) / 0.66
        top = -0.34 * h + height * rng.uniform(0.0, 0.06)
    else:  # whole figure
        h = height * rng.uniform(0.78, 0.95)
        top = rng.uniform(0.01, 0.99) * (height - h)
    # keep the figure in frame horizontally even when it is large
    cx = float(np.clip(cx, 0.2 * h, width - 0.2 * h)) if width > 0.4 * h else width / 2
    return random_body(rng, cx, top, h)


def render_garment_photo(
    rng: np.random.Generator, category_type: int, size: tuple[int, int], style: str | None = None
) -> tuple[Image.Image, Box]:
    """A DeepFashion-style photo with ONE labelled garment of ``category_type`` (1 upper, 2 lower, 3 full).

    Returns the image and the garment's xyxy box (tight around its visible pixels, x2/y2 exclusive).
    ``style`` optionally fixes the garment's shape (e.g. "skirt", "coat"); see ``outfit_for``.
    """
    if category_type not in GARMENT_LABEL:
        raise ValueError(f"category_type must be 1, 2 or 3, got {category_type!r}")
    for _ in range(20):
        body = _frame(rng, category_type, size)
        outfit = outfit_for(rng, category_type, style)
        label = GARMENT_LABEL[category_type]
        image, boxes = _render(rng, studio_background(rng, size), body, outfit, {label: None})
        box = boxes.get(label)
        if box is not None and (box[2] - box[0]) >= 8 and (box[3] - box[1]) >= 8:
            return image, box
    raise RuntimeError(f"could not frame a category_type={category_type} garment in a {size} image")


def render_runway_look(
    rng: np.random.Generator, size: tuple[int, int], outfit: str = "full"
) -> tuple[Image.Image, list[tuple[int, Box]]]:
    """A full-body model on a runway. ``outfit`` "full" gives one type-3 box; "separates" a type-1 and a type-2 box."""
    image, boxes, _truth = render_runway_look_with_truth(rng, size, outfit)
    return image, boxes


def render_runway_look_with_truth(
    rng: np.random.Generator, size: tuple[int, int], outfit: str = "full", hard: HardLooks | None = None
) -> tuple[Image.Image, list[tuple[int, Box]], GarmentTruth]:
    """``render_runway_look`` plus the picture's ``GarmentTruth`` (true garment mask and pattern types).

    ``hard`` (``HardLooks``, e.g. ``RUNWAY_HARD``) makes the look harder to segment; None or all off:
    the same picture as before, draw for draw. Its choices come from a child generator
    (``rng.spawn``, which leaves ``rng``'s stream alone): the same figure, outfit and prints, harder.
    """
    if outfit not in ("full", "separates"):
        raise ValueError(f"outfit must be 'full' or 'separates', got {outfit!r}")
    hard = hard if hard is not None and hard.any else None
    width, height = size
    background, horizon = runway_background(rng, size)
    h = height * rng.uniform(0.55, 0.95)
    feet = rng.uniform(max(horizon + 0.05 * height, h), height)
    cx = width * rng.uniform(0.25, 0.75)
    body = random_body(rng, cx, feet - h, h)
    hard_rng = rng.spawn(1)[0] if hard is not None else None
    if hard is not None:
        if hard_rng.random() < hard.patterned_background:
            _printed_wall(hard_rng, background, horizon)
        crossed = tuple(side for side in (-1, 1) if hard_rng.random() < hard.crossed_arms)
        body = PosedBody(**vars(body), crossed=crossed, reach=hard_rng.uniform(0.0, 0.06))
    long_hair = bool(rng.random() < 0.5)
    if outfit == "full":
        dressed = Outfit(None, None, random_full(rng, GARMENT_FULL, str(rng.choice(["dress", "dress", "jumpsuit", "coat"]))),
                         long_hair, bare_legs=bool(rng.random() < 0.7))
        kinds = {GARMENT_FULL: None}
    else:
        lower = random_lower(rng, GARMENT_LOWER)
        dressed = Outfit(random_upper(rng, GARMENT_UPPER), lower, None, long_hair, bare_legs=lower.style != "trousers")
        kinds = {GARMENT_UPPER: None, GARMENT_LOWER: None}
    truth: list[GarmentTruth] = []
    image, boxes = _render(rng, background, body, dressed, kinds, truth, hard, hard_rng)
    type_of = {GARMENT_UPPER: 1, GARMENT_LOWER: 2, GARMENT_FULL: 3}
    return image, [(type_of[label], box) for label, box in sorted(boxes.items())], truth[0]


DISTRACTOR_KINDS = ("accessory", "headshot", "crowd", "backdrop")


def render_distractor(rng: np.random.Generator, size: tuple[int, int], kind: str) -> Image.Image:
    """A picture with no full-body garment: accessory close-up, head shot, crowd of tiny figures, or empty backdrop."""
    if kind == "accessory":
        return _accessory(rng, size)
    if kind == "headshot":
        return _headshot(rng, size)
    if kind == "crowd":
        return _crowd(rng, size)
    if kind == "backdrop":
        return Image.fromarray(runway_background(rng, size)[0])
    raise ValueError(f"kind must be one of {DISTRACTOR_KINDS}, got {kind!r}")


def _accessory(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A bag or a shoe filling most of the frame."""
    width, height = size
    canvas = studio_background(rng, size)
    mask_image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask_image)
    if rng.random() < 0.5:  # handbag: body and handle
        x0, x1 = width * rng.uniform(0.1, 0.25), width * rng.uniform(0.75, 0.9)
        y0, y1 = height * rng.uniform(0.4, 0.5), height * rng.uniform(0.8, 0.9)
        draw.rounded_rectangle((x0, y0, x1, y1), radius=int((x1 - x0) * 0.1), fill=255)
        draw.arc((x0 + (x1 - x0) * 0.2, y0 - (y1 - y0) * 0.6, x1 - (x1 - x0) * 0.2, y0 + (y1 - y0) * 0.3),
                 180, 360, fill=255, width=max(3, int(width * 0.03)))
    else:  # high-heeled shoe in profile
        base = height * rng.uniform(0.65, 0.8)
        draw.polygon([(width * 0.1, base), (width * 0.2, base - height * 0.35), (width * 0.35, base - height * 0.3),
                      (width * 0.9, base - height * 0.02), (width * 0.9, base + height * 0.05), (width * 0.18, base + height * 0.05)],
                     fill=255)
        draw.rectangle((width * 0.12, base, width * 0.17, base + height * 0.2), fill=255)
    mask = np.asarray(mask_image) > 0
    x0, y0, x1, y1 = _mask_box(mask) or (0, 0, width, height)
    patch = texture(rng, (y1 - y0, x1 - x0), period=width * rng.uniform(0.03, 0.08))
    np.copyto(canvas[y0:y1, x0:x1], patch, where=mask[y0:y1, x0:x1, None])
    return Image.fromarray(canvas)


def _headshot(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A head and shoulders filling the frame, in a plain neutral top."""
    width, height = size
    h = height * rng.uniform(2.8, 3.6)
    body = random_body(rng, width * rng.uniform(0.4, 0.6), height * rng.uniform(0.0, 0.08), h)
    outfit = Outfit(_neutral_top(rng), None, None, bool(rng.random() < 0.6), bare_legs=True)
    image, _ = _render(rng, studio_background(rng, size), body, outfit, {})
    return image


def _crowd(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Many tiny figures in plain clothes in front of a backdrop: too small to count as a look."""
    width, height = size
    background, horizon = runway_background(rng, size)
    label_image = Image.new("L", size, BACKGROUND)
    draw = ImageDraw.Draw(label_image)
    count = int(rng.integers(15, 40))
    for _ in range(count):  # back to front, so nearer (lower, larger) figures overlap farther ones
        feet = rng.uniform(horizon, height)
        h = height * (0.05 + 0.08 * (feet - horizon) / max(height - horizon, 1))
        body = random_body(rng, rng.uniform(0, width), feet - h, h)
        outfit = Outfit(_neutral_top(rng), _neutral_bottom(rng), None, bool(rng.random() < 0.5), bare_legs=False)
        draw_figure(draw, body, outfit)
    labels = np.asarray(label_image)
    canvas = background.copy()
    _colour_labels(rng, canvas, labels, period=4.0, garments={})
    return Image.fromarray(canvas)


# --------------------------------------------------------------------------- CLI


def _draw_boxes(image: Image.Image, boxes: list[tuple[int, Box]]) -> Image.Image:
    colours = {1: (255, 40, 40), 2: (40, 90, 255), 3: (30, 200, 60)}
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for category_type, box in boxes:
        draw.rectangle(box, outline=colours[category_type], width=2)
        draw.text((box[0] + 3, box[1] + 2), CATEGORY_TYPE_NAMES[category_type], fill=colours[category_type])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw example synthetic pictures (with their boxes) into a folder.")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=4, help="pictures of each kind")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    for index in range(args.count):
        for category_type, name in CATEGORY_TYPE_NAMES.items():
            image, box = render_garment_photo(rng, category_type, (int(rng.integers(200, 300)), int(rng.integers(220, 300))))
            _draw_boxes(image, [(category_type, box)]).save(out / f"photo_{name}_{index}.png")
        for look in ("full", "separates"):
            image, boxes = render_runway_look(rng, (600, 900), look)
            _draw_boxes(image, boxes).save(out / f"runway_{look}_{index}.png")
        for kind in DISTRACTOR_KINDS:
            render_distractor(rng, (600, 900), kind).save(out / f"distractor_{kind}_{index}.png")
    print(f"wrote {args.count * 9} pictures to {out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
