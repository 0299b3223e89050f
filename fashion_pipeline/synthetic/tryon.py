"""Synthetic paired try-on data with ground truth: the same person drawn in garment A and in garment B.

Real try-on datasets photograph each person once, so an unpaired result (person i in garment j) has no
ground truth. Here a person (pose, build, skin, hair, trousers, background) is drawn apart from the
garment, so the same person can be drawn in any garment:

- ``random_person``: appearance only; ``random_garment``: shape (one of ``figures.UPPER_STYLES``) and a
  texture drawn once in the garment's own flat (product) frame.
- ``product_image``: the in-shop picture: the garment laid flat on a canonical body, on white, and its mask.
- ``dress``: the person wearing the garment. Each worn pixel takes the product texture at ``true_warp``'s
  point, a thin-plate spline through corresponding landmarks of the person's and the canonical body (shoulders,
  elbows, wrists, the torso outline down to the hem). So the deformation is known and a warp can be scored.
- ``parse`` is a CIHP label map (``synthetic.parse``), ``keypoints`` OpenPose BODY_25 (25 x 3, x y confidence).

``write_dataset`` writes the VITON-HD layout (see ``fashion_pipeline.tryon.layout``): ``{train,test}/{image,
cloth, cloth-mask, image-parse, openpose-json}`` and ``{train,test}_pairs.txt``. Person k's own picture and
garment share the stem ``{k:05d}_00`` (as VITON-HD's do); a test pair names person i and another test person's
garment j, and its ground truth is ``image/{i}_00__{j}_00.jpg`` with ``image-parse/{i}_00__{j}_00.png``; the true
warp's landmarks are in ``warp-truth/``. Persons, and so garments, are disjoint between the splits.

``python -m fashion_pipeline.synthetic.tryon --out /tmp/tryon --train 40 --test 20 --height 128``
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.interpolate import RBFInterpolator
from scipy.ndimage import map_coordinates

from fashion_pipeline.common import atomic
from fashion_pipeline.synthetic import figures
from fashion_pipeline.synthetic.parse import CIHP, parse_image

UPPER = CIHP["upper_clothes"]
SIDE_LABELS = {  # figures' side -1 is the image's left: the person's right, facing the camera
    -1: {"arm": CIHP["right_arm"], "shoe": CIHP["right_shoe"]},
    1: {"arm": CIHP["left_arm"], "shoe": CIHP["left_shoe"]},
}
JPEG_QUALITY = 95  # the layout's file names say .jpg; 4:4:4 and q95 keep a 96-px garment's pattern readable


@dataclass(frozen=True)
class Person:
    """Everything about a picture except the upper garment."""

    body: figures.Body
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_hair: bool
    background: np.ndarray  # H x W x 3 uint8


@dataclass(frozen=True)
class TryonGarment:
    """An upper garment: its cut and its texture in the product (flat) frame, H x W x 3 uint8."""

    shape: figures.Garment
    kind: str
    texture: np.ndarray


def check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height * 3 != width * 4:
        raise ValueError(f"try-on pictures are 4:3 (height:width) as VITON-HD's, got {height}x{width}")


def random_person(rng: np.random.Generator, height: int, width: int) -> Person:
    check_size(height, width)
    h = height * rng.uniform(1.2, 1.4)  # head near the top, down to the thighs: VITON-HD's framing
    body = figures.random_body(rng, width * rng.uniform(0.44, 0.56), height * rng.uniform(0.02, 0.06), h)
    neutral = figures.NEUTRALS
    return Person(
        body=body,
        skin=figures.SKIN_TONES[int(rng.integers(len(figures.SKIN_TONES)))],
        hair=figures.HAIR_COLOURS[int(rng.integers(len(figures.HAIR_COLOURS)))],
        trousers=neutral[int(rng.integers(len(neutral)))],
        shoes=neutral[int(rng.integers(len(neutral)))],
        long_hair=bool(rng.random() < 0.5),
        background=figures.studio_background(rng, (width, height)),
    )


def random_garment(rng: np.random.Generator, height: int, width: int, style: str | None = None,
                   kind: str | None = None) -> TryonGarment:
    shape = figures.random_upper(rng, UPPER, style)
    kind = kind or str(rng.choice(figures.TEXTURES))
    texture = figures.texture(rng, (height, width), period=height * rng.uniform(0.04, 0.08), kind=kind)
    return TryonGarment(shape, kind, texture)


def canonical_body(height: int, width: int) -> figures.Body:
    """The flat-lay body every product is drawn on: arms a little out, the garment filling the frame."""
    h = 1.7 * height
    return figures.Body(cx=width / 2, top=0.06 * height - 0.13 * h, h=h, shoulder=0.095, waist=0.07, hip=0.09,
                        arm_spread=0.05, stance=0.04)


# ---------------------------------------------------------------- label maps


def _neckline(draw: ImageDraw.ImageDraw, body: figures.Body, depth: float) -> None:
    if depth <= 0.005:
        return
    x, y = body.pt(0.0, 0.15)
    half = 0.035 * body.h
    draw.polygon([(x - half, y - 1), (x + half, y - 1), (x, y + depth * body.h)], fill=CIHP["torso_skin"])


def draw_parse(body: figures.Body, garment: figures.Garment | None, long_hair: bool, size: tuple[int, int],
               trousers: bool = True) -> np.ndarray:
    """A CIHP label map of one figure, painted back to front as ``figures.draw_figure`` paints its labels."""
    width, height = size
    image = Image.new("L", (width, height), CIHP["background"])
    draw = ImageDraw.Draw(image)
    h = body.h
    if long_hair:
        draw.polygon([body.pt(-0.055, 0.05), body.pt(0.055, 0.05), body.pt(0.06, 0.24), body.pt(-0.06, 0.24)],
                     fill=CIHP["hair"])
    for side in (-1, 1):
        leg = body.leg(side)
        draw.polygon(figures._limb_polygon(leg, [0.06 * h, 0.04 * h, 0.028 * h]), fill=CIHP["pants"])
        ankle = leg[2]
        figures._ellipse(draw, (ankle[0] + side * 0.012 * h, ankle[1] + 0.025 * h), 0.034 * h, 0.022 * h,
                         SIDE_LABELS[side]["shoe"])
    draw.polygon(figures._torso_band(body, 0.15, 0.53), fill=CIHP["torso_skin"])
    if trousers:
        figures._draw_legwear(draw, body, 0.93, CIHP["pants"], 0.0)
    if garment is not None:
        figures._draw_upper_part(draw, body, garment)
        _neckline(draw, body, garment.neckline)
    for side in (-1, 1):
        arm = body.arm(side)
        label = SIDE_LABELS[side]["arm"]
        draw.polygon(figures._limb_polygon(arm, [0.038 * h, 0.03 * h, 0.024 * h]), fill=label)
        figures._ellipse(draw, (arm[2][0], arm[2][1] + 0.02 * h), 0.022 * h, 0.03 * h, label)
    if garment is not None:
        figures._draw_sleeves(draw, body, garment)
    draw.rectangle((*body.pt(-0.022, 0.1), *body.pt(0.022, 0.16)), fill=CIHP["torso_skin"])
    figures._ellipse(draw, body.pt(0.0, 0.062), 0.045 * h, 0.06 * h, CIHP["face"])
    figures._ellipse(draw, body.pt(0.0, 0.03), 0.048 * h, 0.031 * h, CIHP["hair"])
    return np.asarray(image).copy()


# ---------------------------------------------------------------- the known deformation


def landmarks(body: figures.Body, garment: figures.Garment) -> np.ndarray:
    """K x 2 (x, y) points that correspond between two bodies wearing the same cut."""
    extra = 0.014 if garment.style in ("jacket", "coat", "sweater") else 0.006
    points = [body.pt(0.0, 0.15), body.pt(0.0, garment.hem)]
    for fy in np.linspace(0.17, garment.hem, 6):
        half = body.torso_half_width(float(fy)) + extra
        points += [body.pt(-half, float(fy)), body.pt(half, float(fy))]
    for side in (-1, 1):
        points += list(body.arm(side))
    return np.asarray(points, np.float64)


def fit_tps(source: np.ndarray, target: np.ndarray, smoothing: float = 0.0) -> RBFInterpolator:
    """The thin-plate spline taking ``source`` points (K x 2) to ``target`` points (K x 2).

    scipy's RBF with the thin-plate kernel r^2 log r and a degree-1 polynomial is the classical TPS
    (``fashion_pipeline_tests/test_tryon_metrics.py`` checks it against scikit-image and a direct solve).
    """
    return RBFInterpolator(source, target, kernel="thin_plate_spline", degree=1, smoothing=smoothing)


def true_warp(person: Person, garment: TryonGarment, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(person-frame landmarks, product-frame landmarks): the TPS through them maps worn pixels to the product."""
    return landmarks(person.body, garment.shape), landmarks(canonical_body(height, width), garment.shape)


def sample(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear samples of an H x W x C image at N x 2 (x, y) points (edges repeated)."""
    rows, cols = coords[:, 1], coords[:, 0]
    return np.stack([map_coordinates(image[..., c].astype(np.float32), [rows, cols], order=1, mode="nearest")
                     for c in range(image.shape[2])], axis=1)


# ---------------------------------------------------------------- pictures


def _shade_factor(body: figures.Body, width: int) -> np.ndarray:
    """Per column: darker towards the figure's sides (as ``figures._shade``), so garments look round."""
    xs = np.arange(width, dtype=np.float32)
    falloff = np.clip(np.abs(xs - body.cx) / (0.22 * body.h), 0.0, 1.0) ** 2
    return 1.0 - 0.22 * falloff


def product_image(garment: TryonGarment, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The in-shop picture (H x W x 3 uint8, the garment flat on white) and its mask (H x W bool)."""
    labels = draw_parse(canonical_body(height, width), garment.shape, False, (width, height), trousers=False)
    mask = labels == UPPER
    out = np.full((height, width, 3), 255, np.uint8)
    out[mask] = garment.texture[mask]
    return out, mask


@dataclass(frozen=True)
class Dressed:
    image: np.ndarray  # H x W x 3 uint8
    parse: np.ndarray  # H x W uint8, CIHP ids
    warp: tuple[np.ndarray, np.ndarray]  # the true warp's landmarks: person frame, product frame


def dress(person: Person, garment: TryonGarment) -> Dressed:
    """The person wearing the garment. Nothing but the garment's pixels (and what it covers) depends on it."""
    height, width = person.background.shape[:2]
    parse = draw_parse(person.body, garment.shape, person.long_hair, (width, height))
    colours = np.zeros((len(CIHP), 3), np.uint8)
    for name in ("face", "torso_skin", "left_arm", "right_arm"):
        colours[CIHP[name]] = person.skin
    colours[CIHP["hair"]] = person.hair
    colours[CIHP["pants"]] = person.trousers
    colours[CIHP["left_shoe"]] = colours[CIHP["right_shoe"]] = person.shoes
    figure = parse > 0
    canvas = np.where(figure[..., None], colours[parse], person.background).astype(np.float32)
    worn = parse == UPPER
    source, target = true_warp(person, garment, height, width)
    ys, xs = np.nonzero(worn)
    if len(xs):
        product_points = fit_tps(source, target)(np.stack([xs, ys], axis=1).astype(np.float64))
        canvas[ys, xs] = sample(garment.texture, product_points)
    shade = _shade_factor(person.body, width)[None, :, None]
    canvas = np.where(figure[..., None], canvas * shade, canvas)
    return Dressed(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), parse, (source, target))


BODY_25 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
           "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe",
           "LHeel", "RBigToe", "RSmallToe", "RHeel")


def keypoints(body: figures.Body, height: int, width: int) -> np.ndarray:
    """25 x 3 OpenPose BODY_25 keypoints (x, y, confidence); points outside the picture are 0, 0, 0 as OpenPose
    writes undetected ones."""
    h = body.h
    points: dict[str, tuple[float, float]] = {"Nose": body.pt(0.0, 0.075), "Neck": body.pt(0.0, 0.15),
                                              "MidHip": body.pt(0.0, 0.49)}
    for side, prefix in ((-1, "R"), (1, "L")):
        for name, point in zip(("Shoulder", "Elbow", "Wrist"), body.arm(side)):
            points[prefix + name] = point
        for name, point in zip(("Hip", "Knee", "Ankle"), body.leg(side)):
            points[prefix + name] = point
        points[prefix + "Eye"] = body.pt(side * 0.016, 0.055)
        points[prefix + "Ear"] = body.pt(side * 0.045, 0.062)
        ankle = body.leg(side)[2]
        points[prefix + "BigToe"] = (ankle[0] + side * 0.03 * h, ankle[1] + 0.04 * h)
        points[prefix + "SmallToe"] = (ankle[0] + side * 0.045 * h, ankle[1] + 0.035 * h)
        points[prefix + "Heel"] = (ankle[0] - side * 0.005 * h, ankle[1] + 0.03 * h)
    out = np.zeros((25, 3), np.float64)
    for index, name in enumerate(BODY_25):
        x, y = points[name]
        if 0 <= x < width and 0 <= y < height:
            out[index] = (round(x, 3), round(y, 3), 0.95)
    return out


def openpose_json(points: np.ndarray) -> dict:
    """The JSON OpenPose 1.3+ writes for one person (VITON-HD's ``openpose-json`` files)."""
    return {"version": 1.3, "people": [{
        "person_id": [-1], "pose_keypoints_2d": [float(v) for v in points.reshape(-1)],
        "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
        "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}]}


# ---------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class Spec:
    height: int = 128
    width: int = 96
    train: int = 40  # persons (each with the garment they wear)
    test: int = 20
    seed: int = 0


def stem(index: int) -> str:
    return f"{index:05d}_00"


def truth_stem(person: str, cloth: str) -> str:
    """The name of person ``person``'s picture in garment ``cloth`` (both stems)."""
    return f"{person}__{cloth}"


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    atomic.write_bytes(path, buffer.getvalue())


def _save_png(path: Path, image: Image.Image) -> None:
    from io import BytesIO

    buffer = BytesIO()
    image.save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())


def _write_person(split_dir: Path, name: str, person: Person, garment: TryonGarment) -> None:
    dressed = dress(person, garment)
    _save_jpeg(split_dir / "image" / f"{name}.jpg", dressed.image)
    _save_png(split_dir / "image-parse" / f"{name}.png", parse_image(dressed.parse))
    height, width = dressed.parse.shape
    atomic.write_json(split_dir / "openpose-json" / f"{name}_keypoints.json",
                      openpose_json(keypoints(person.body, height, width)))
    _write_warp(split_dir, name, dressed)


def _write_warp(split_dir: Path, name: str, dressed: Dressed) -> None:
    source, target = dressed.warp
    atomic.write_json(split_dir / "warp-truth" / f"{name}.json",
                      {"person_points": source.round(4).tolist(), "cloth_points": target.round(4).tolist()})


def _write_cloth(split_dir: Path, name: str, garment: TryonGarment, height: int, width: int) -> None:
    picture, mask = product_image(garment, height, width)
    _save_jpeg(split_dir / "cloth" / f"{name}.jpg", picture)
    _save_jpeg(split_dir / "cloth-mask" / f"{name}.jpg", (mask * 255).astype(np.uint8))


def derangement(rng: np.random.Generator, count: int) -> np.ndarray:
    """A permutation with no fixed point: every test person gets someone else's garment."""
    if count < 2:
        raise ValueError(f"an unpaired test split needs at least 2 persons, got {count}")
    order = rng.permutation(count)
    partner = np.empty(count, np.int64)
    partner[order] = np.roll(order, 1)
    return partner


def write_dataset(root: Path | str, spec: Spec = Spec()) -> dict:
    """Write the whole dataset under ``root``; returns counts and the garment kinds/styles drawn."""
    check_size(spec.height, spec.width)
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    counts: dict = {}
    styles: dict[str, int] = {}
    kinds: dict[str, int] = {}
    first = 0
    for split, count in (("train", spec.train), ("test", spec.test)):
        split_dir = root / split
        people = [random_person(rng, spec.height, spec.width) for _ in range(count)]
        garments = [random_garment(rng, spec.height, spec.width) for _ in range(count)]
        names = [stem(first + index) for index in range(count)]
        first += count
        for name, person, garment in zip(names, people, garments):
            _write_person(split_dir, name, person, garment)
            _write_cloth(split_dir, name, garment, spec.height, spec.width)
            styles[garment.shape.style] = styles.get(garment.shape.style, 0) + 1
            kinds[garment.kind] = kinds.get(garment.kind, 0) + 1
        if split == "train":  # paired, as VITON-HD's train_pairs.txt
            lines = [f"{name}.jpg {name}.jpg" for name in names]
        else:  # unpaired, with the ground truth drawn
            partner = derangement(rng, count)
            lines = []
            for index, other in enumerate(partner):
                person_name, cloth_name = names[index], names[int(other)]
                truth = dress(people[index], garments[int(other)])
                truth_name = truth_stem(person_name, cloth_name)
                _save_jpeg(split_dir / "image" / f"{truth_name}.jpg", truth.image)
                _save_png(split_dir / "image-parse" / f"{truth_name}.png", parse_image(truth.parse))
                _write_warp(split_dir, truth_name, truth)
                lines.append(f"{person_name}.jpg {cloth_name}.jpg")
        atomic.write_text(root / f"{split}_pairs.txt", "\n".join(lines) + "\n")
        counts[split] = {"persons": count, "garments": count, "pairs": len(lines)}
    return {"counts": counts, "styles": dict(sorted(styles.items())), "kinds": dict(sorted(kinds.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic try-on dataset (VITON-HD layout, with ground truth).")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=Spec.train)
    parser.add_argument("--test", type=int, default=Spec.test)
    parser.add_argument("--height", type=int, default=Spec.height, help="the width is 3/4 of it")
    parser.add_argument("--seed", type=int, default=Spec.seed)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summary = write_dataset(args.out, Spec(args.height, args.height * 3 // 4, args.train, args.test, args.seed))
    print(json.dumps(summary), f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
