"""The try-on showcase: held-out persons, and the scraped runway crops, dressed in product garments printed with
generated patterns (seed 004's patterns and seed 003's try-on in one picture).

1. **Print**: a held-out product garment (the test split's ``cloth`` and ``cloth-mask``) re-printed with a pattern
   inside its mask by ``garments.restyle`` (tiled at the print's scale, made seamless, the product's shading kept,
   nothing painted outside the mask).
2. **Dress**: a trained model (``tryon.models.Predictor``, the ``viton`` one by default) puts the printed garment
   on the person.

Held-out persons come with the inputs the models were trained on (parse, BODY_25 keypoints). A runway crop has
only its picture and GrabCut's garment mask, so its inputs are made up here, and that is the weak part:
- **alignment**: the crop is scaled and shifted so that its garment's top centre and its width near the top land
  where the synthetic training persons' upper garments have them on average (``Template``); the models only ever
  saw figures at that place and scale;
- **pose**: the training persons' mean BODY_25 pose (a frontal figure, arms down), not the runway figure's;
- **parse**: the GrabCut mask above the training persons' mean hip line is the upper garment, below it the
  lower garment; skin-coloured pixels (``grabcut.skin_mask``) next to the garment are face (above the garment),
  arms (beside it) or legs (below the hip line); hair and anything else is background.

Numbers per row (no ground truth exists for a printed garment, so these say where the output changed, not
whether it is right): ``warp_iou_old_garment``, the warped product mask against the person's own upper garment
(parse on synthetic persons, GrabCut above the hip line on runway crops; about 0.67 for the true new garment on
synthetic pairs); ``changed_in_garment``, the share of changed pixels (any channel off by more than
``CHANGE_THRESHOLD``) inside the old garment mask dilated by the agnostic image's margin; ``mean_change_outside``,
the mean absolute change (0..1) outside it; and on synthetic persons ``warp_iou_truth``, against the true worn
region of the new garment's cut (printing changes the texture, not the cut, so the truth's parse still holds).

``python -m fashion_pipeline.tryon.showcase --pairs-root DATASET --height 128 --model MODEL.pt
--generator stripes=generator.pt --masks-manifest garment_masks/.../manifest.parquet --data-root DATA --out DIR``
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fashion_pipeline.garments import grabcut, restyle
from fashion_pipeline.synthetic.parse import CIHP, UPPER_GARMENT_IDS
from fashion_pipeline.tryon import layout
from fashion_pipeline.tryon.models import iou

CHANGE_THRESHOLD = 24  # of 255: a changed pixel, above JPEG-like noise and the TOM's faint tint of kept pixels
BAND = 0.08  # the garment's "top" band, as a fraction of the frame's height: where its width is measured
TOP_WIDTH = 0.6  # see garment_anchor
TEMPLATE_PERSONS = 100  # train persons averaged into the template


class ShowcaseError(ValueError):
    """A bad input; the message names the file (and the manifest row)."""


# ---------------------------------------------------------------- printing

def print_garment(cloth: np.ndarray, cloth_mask: np.ndarray, pattern: np.ndarray, tile_fraction: float) -> np.ndarray:
    """The product picture re-printed with ``pattern`` inside its mask (``garments.restyle``: tiles at
    ``tile_fraction`` of the picture's side, seamless, the product's shading kept, nothing outside the mask)."""
    return restyle.restyle(cloth, cloth_mask, pattern, restyle.RestyleSettings(tile_fraction=tile_fraction))


# ---------------------------------------------------------------- the synthetic persons' template

def garment_anchor(mask: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x, top y, width) of a garment mask's top band (``BAND`` of the frame's height below its top row):
    the same three numbers on a synthetic parse and on a GrabCut mask, so one can be aligned to the other.
    The top row is the first at least ``TOP_WIDTH`` as wide as the garment's wide rows: a strip of neck or hair
    that GrabCut kept above the shoulders does not count as the garment's top."""
    widths = mask.sum(axis=1)
    rows = np.flatnonzero(widths >= max(2, 0.02 * mask.shape[1]))
    if not len(rows):
        return None
    rows = rows[widths[rows] >= TOP_WIDTH * np.percentile(widths[rows], 90)]
    top = int(rows[0])
    band = mask[top: top + max(2, round(BAND * mask.shape[0]))]
    xs = np.nonzero(band)[1]
    widths = [np.ptp(np.flatnonzero(row)) + 1 for row in band if row.any()]
    return float(np.median(xs)), float(top), float(np.percentile(widths, 90))


@dataclass(frozen=True)
class Template:
    """Where the training persons' upper garments sit (mean anchor) and their mean pose, in the pairs' frame."""

    height: int
    width: int
    anchor: tuple[float, float, float]  # centre x, top y, width of the upper garment's top band
    keypoints: np.ndarray  # 25 x 3 (x, y, 1 where most persons have the keypoint)
    hip_y: float  # mean y of BODY_25's MidHip: the upper/lower garment line on runway crops

    @classmethod
    def from_split(cls, root: Path, height: int, width: int, split: str = "train",
                   count: int = TEMPLATE_PERSONS) -> "Template":
        reader = layout.Layout(root, split, height, width)
        anchors, points = [], []
        for pair in layout.read_pairs(root, split)[:count]:
            sample = reader.load(pair)
            anchor = garment_anchor(np.isin(sample.parse, UPPER_GARMENT_IDS))
            if anchor is not None:
                anchors.append(anchor)
                points.append(sample.keypoints)
        if not anchors:
            raise ShowcaseError(f"{layout.pairs_file(root, split)}: no {split} person with an upper garment to "
                                "build the pose template from")
        points = np.stack(points)
        seen = points[..., 2] > 0
        mean = np.where(seen[..., None], points[..., :2], 0).sum(0) / np.maximum(seen.sum(0), 1)[:, None]
        keypoints = np.concatenate([mean, (seen.mean(0) > 0.5)[:, None].astype(np.float64)], axis=1)
        return cls(height, width, tuple(np.mean(anchors, axis=0)), keypoints, float(keypoints[8, 1]))


# ---------------------------------------------------------------- runway crops as try-on inputs

@dataclass
class RunwayInput:
    sample: layout.Sample  # the aligned crop with its made-up parse and pose (``cloth`` set per row)
    garment: np.ndarray  # the aligned GrabCut mask (any garment)
    upper: np.ndarray  # its part above the hip line: the "old upper garment"


def _align(image: np.ndarray, mask: np.ndarray, template: Template, source: str):
    import cv2

    anchor = garment_anchor(mask)
    if anchor is None:
        raise ShowcaseError(f"{source}: the garment mask is empty or a few pixels wide: nothing to align")
    (cx, top, width), (tx, ttop, twidth) = anchor, template.anchor
    scale = twidth / width
    matrix = np.array([[scale, 0, tx - scale * cx], [0, scale, ttop - scale * top]], np.float64)
    size = (template.width, template.height)
    aligned = cv2.warpAffine(np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    garment = cv2.warpAffine(mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return aligned, garment


def runway_parse(image: np.ndarray, garment: np.ndarray, template: Template) -> np.ndarray:
    """CIHP ids for an aligned runway crop from its garment mask and skin colour (see the module's doc)."""
    import cv2

    height, width = garment.shape
    rows = np.arange(height)[:, None]
    parse = np.zeros((height, width), np.uint8)
    below = np.broadcast_to(rows >= template.hip_y, garment.shape)
    parse[garment & ~below] = CIHP["upper_clothes"]
    parse[garment & below] = CIHP["pants"]
    near = cv2.dilate(garment.astype(np.uint8), np.ones((max(3, height // 8),) * 2, np.uint8)).astype(bool)
    skin = grabcut.skin_mask(image) & near & ~garment
    count, labels = cv2.connectedComponents(skin.astype(np.uint8), connectivity=4)
    touching = np.unique(labels[cv2.dilate(garment.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)])
    skin &= np.isin(labels, touching[touching > 0])  # only skin joined to the figure, not a skin-coloured wall
    centre = template.anchor[0]
    top = np.broadcast_to(rows < template.anchor[1], garment.shape)
    left = np.broadcast_to(np.arange(width)[None, :] < centre, garment.shape)
    parse[skin & top] = CIHP["face"]
    parse[skin & ~top & ~below] = np.where(left, CIHP["right_arm"], CIHP["left_arm"])[skin & ~top & ~below]
    parse[skin & below] = np.where(left, CIHP["right_leg"], CIHP["left_leg"])[skin & below]
    return parse


def runway_input(crop_path: Path, mask_path: Path, template: Template, name: str, source: str) -> RunwayInput:
    """A runway crop and its GrabCut mask as a try-on ``Sample`` (no truth); ``source`` names the manifest row."""
    image = grabcut.read_rgb(crop_path)
    if image is None:
        raise ShowcaseError(f"{crop_path}: not a readable image ({source})")
    if not Path(mask_path).is_file():
        raise ShowcaseError(f"{mask_path}: garment mask missing ({source})")
    mask = grabcut.read_mask(mask_path)
    if mask.shape != image.shape[:2]:
        raise ShowcaseError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its crop {crop_path.name} is "
                            f"{image.shape[1]}x{image.shape[0]} ({source})")
    aligned, garment = _align(image[..., :3], mask, template, f"{mask_path} ({source})")
    parse = runway_parse(aligned, garment, template)
    pair = layout.Pair("test", f"{name}.png", f"{name}.png", 0)
    empty = np.zeros_like(aligned)
    sample = layout.Sample(pair, aligned, parse, template.keypoints.copy(), empty, np.zeros(garment.shape, bool),
                           None, None, None)
    return RunwayInput(sample, garment, np.isin(parse, UPPER_GARMENT_IDS))


# ---------------------------------------------------------------- scores

def change_scores(person: np.ndarray, output: np.ndarray, old_garment: np.ndarray, margin: int) -> dict:
    """Where the output differs from the input, against the old garment mask dilated by ``margin`` px."""
    import cv2

    changed = np.abs(output.astype(np.int16) - person.astype(np.int16)).max(axis=2) > CHANGE_THRESHOLD
    kernel = np.ones((2 * margin + 1,) * 2, np.uint8)
    region = cv2.dilate(old_garment.astype(np.uint8), kernel).astype(bool) if margin else old_garment
    outside = np.abs(output.astype(np.float32) - person.astype(np.float32))[~region] / 255.0
    return {"changed_share": round(float(changed.mean()), 4),
            "changed_in_garment": round(float(changed[region].sum() / changed.sum()), 4) if changed.any() else float("nan"),
            "mean_change_outside": round(float(outside.mean()), 4) if outside.size else 0.0}


def row_scores(sample: layout.Sample, result: dict, old_garment: np.ndarray, margin: int) -> dict:
    scores = change_scores(sample.person, result["output"], old_garment, margin)
    if result.get("warped_mask") is not None:
        warped = result["warped_mask"] >= 0.5
        scores["warp_iou_old_garment"] = round(iou(warped, old_garment), 4)
        if sample.truth_parse is not None:
            scores["warp_iou_truth"] = round(iou(warped, np.isin(sample.truth_parse, UPPER_GARMENT_IDS)), 4)
    return scores


# ---------------------------------------------------------------- the showcase

@dataclass
class Row:
    kind: str  # "person" (held-out synthetic) or "runway"
    name: str
    pattern_label: str
    tiles: list  # four H x W x 3 uint8 pictures
    scores: dict


def _pattern_tile(pattern: np.ndarray, height: int, width: int) -> np.ndarray:
    side = min(height, width)
    tile = np.asarray(Image.fromarray(pattern[..., :3]).resize((side, side), Image.Resampling.NEAREST))
    canvas = np.full((height, width, 3), 255, np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    canvas[top:top + side, left:left + side] = tile
    return canvas


def _mask_tile(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return grabcut.overlay(image, mask)


def dress(predictor, sample: layout.Sample, printed: np.ndarray, product_mask: np.ndarray) -> dict:
    """The predictor's result for ``sample`` wearing the printed product (a copy of the sample, the cloth replaced)."""
    return predictor.run(dataclasses.replace(sample, cloth=printed, cloth_mask=product_mask))


def person_rows(predictor, reader: layout.Layout, pairs: list, patterns: list, margin: int) -> list[Row]:
    """Held-out person i in held-out product i (someone else's) printed with pattern i (label, array, fraction)."""
    rows = []
    for pair, (label, pattern, fraction) in zip(pairs, patterns):
        sample = reader.load(pair)
        printed = print_garment(sample.cloth, sample.cloth_mask, pattern, fraction)
        result = dress(predictor, sample, printed, sample.cloth_mask)
        old = np.isin(sample.parse, UPPER_GARMENT_IDS)
        rows.append(Row("person", pair.name, label, [sample.person, _pattern_tile(pattern, *sample.person.shape[:2]),
                                                     printed, result["output"]], row_scores(sample, result, old, margin)))
    return rows


def runway_rows(predictor, inputs: list[RunwayInput], products: list[layout.Sample], patterns: list,
                margin: int) -> list[Row]:
    """Runway crop i in held-out product i printed with pattern i; the second column is GrabCut's mask."""
    rows = []
    for runway, product, (label, pattern, fraction) in zip(inputs, products, patterns):
        printed = print_garment(product.cloth, product.cloth_mask, pattern, fraction)
        result = dress(predictor, runway.sample, printed, product.cloth_mask)
        person = runway.sample.person
        rows.append(Row("runway", runway.sample.pair.person_stem, label,
                        [person, _mask_tile(person, runway.garment), printed, result["output"]],
                        row_scores(runway.sample, result, runway.upper, margin)))
    return rows


HEADERS = {"person": ("held-out person", "generated pattern", "printed product", "try-on"),
           "runway": ("runway crop", "GrabCut mask", "printed product", "try-on")}


def grid(rows: list[Row], scale: int = 2, headers: dict = HEADERS) -> Image.Image:
    """One picture: one block per kind of row in ``headers`` (the persons', the runway crops'), side by side, each
    with its header line and four tiles per row, enlarged ``scale`` x."""
    if not rows:
        raise ShowcaseError("nothing to show: no rows")
    height, width = rows[0].tiles[0].shape[:2]
    cell_w, cell_h, pad, header, gap = width * scale, height * scale, 2, 16, 12
    blocks = [(kind, [row for row in rows if row.kind == kind]) for kind in headers]
    blocks = [(kind, block) for kind, block in blocks if block]
    block_w = 4 * (cell_w + pad) + pad
    total_h = header + max(len(block) for _, block in blocks) * (cell_h + pad) + pad
    canvas = Image.new("RGB", (len(blocks) * block_w + (len(blocks) - 1) * gap, total_h), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (kind, block) in enumerate(blocks):
        left = index * (block_w + gap)
        for column, text in enumerate(headers[kind]):
            draw.text((left + pad + column * (cell_w + pad) + 3, 2), text, fill="black")
        for number, row in enumerate(block):
            top = header + number * (cell_h + pad)
            for column, tile in enumerate(row.tiles):
                picture = Image.fromarray(tile).resize((cell_w, cell_h), Image.Resampling.NEAREST)
                canvas.paste(picture, (left + pad + column * (cell_w + pad), top))
            draw.text((left + pad + cell_w + pad + 3, top + 2), row.pattern_label, fill="black")
    return canvas


def summary(rows: list[Row]) -> dict:
    """Mean of each score per kind of row (NaNs left out), with the row count."""
    out = {}
    for kind in HEADERS:
        chosen = [row.scores for row in rows if row.kind == kind]
        if not chosen:
            continue
        keys = sorted({key for scores in chosen for key in scores})
        means = {key: np.nanmean([s.get(key, np.nan) for s in chosen]) for key in keys}
        out[kind] = {"rows": len(chosen), **{k: round(float(v), 4) for k, v in means.items() if np.isfinite(v)}}
    return out


def write(rows: list[Row], out: Path) -> dict:
    """grid.png, rows/<kind>_<name>_<column>.png and scores.json into ``out``; returns scores.json's content."""
    from fashion_pipeline.common import atomic, render

    out = Path(out)
    for row in rows:
        for column, tile in zip(("input", "second", "printed", "output"), row.tiles):
            atomic.write_bytes(out / "rows" / f"{row.kind}_{row.name}_{column}.png", render.png_bytes(Image.fromarray(tile)))
    result = {"summary": summary(rows),
              "rows": [{"kind": r.kind, "name": r.name, "pattern": r.pattern_label, **r.scores} for r in rows]}
    atomic.write_bytes(out / "grid.png", render.png_bytes(grid(rows)))
    atomic.write_json(out / "scores.json", result, indent=1)
    return result


# ---------------------------------------------------------------- choosing the inputs

def cycle_patterns(sources: list[tuple[str, np.ndarray, float]], count: int) -> list:
    """``count`` (label, pattern, fraction) taken round-robin over the categories, so every category shows."""
    if not sources:
        raise ShowcaseError("no generated patterns: train pattern_dcgan first (or pass --generator)")
    by_label: dict[str, list] = {}
    for source in sources:
        by_label.setdefault(source[0], []).append(source)
    labels = sorted(by_label)
    return [by_label[labels[i % len(labels)]][(i // len(labels)) % len(by_label[labels[i % len(labels)]])]
            for i in range(count)]


def runway_choices(manifest_path: Path, data_root: Path, count: int, min_area_fraction: float,
                   seed: int = 0) -> list[tuple[Path, Path, str, str]]:
    """(crop, mask, name, source) of ``count`` crops whose mask covers at least ``min_area_fraction``."""
    import pandas as pd

    try:
        frame = pd.read_parquet(manifest_path)
    except (OSError, ValueError) as error:
        raise ShowcaseError(f"{manifest_path}: not a readable garment_masks manifest ({error})") from error
    missing = {"image_id", "crop_path", "mask_path", "area_fraction"} - set(frame.columns)
    if missing:
        raise ShowcaseError(f"{manifest_path}: no column(s) {sorted(missing)}: not a garment_masks manifest")
    frame = frame.reset_index(drop=True)
    made = frame[(frame["mask_path"] != "") & (frame["area_fraction"] >= min_area_fraction)]
    chosen = made.sample(min(count, len(made)), random_state=seed) if len(made) else made
    return [(Path(data_root) / row.crop_path, Path(data_root) / row.mask_path, str(row.image_id),
             f"{manifest_path} row {index}") for index, row in zip(chosen.index, chosen.itertuples())]


@dataclass(frozen=True)
class ShowcaseSettings:
    persons: int = 6
    crops: int = 6
    min_area_fraction: float = 0.08  # a smaller garment shows too little of a print (restyled_garments' limit)
    seed: int = 0


def make_showcase(predictor, pairs_root: Path, height: int, patterns: list, runway: list[tuple[Path, Path, str, str]],
                  settings: ShowcaseSettings = ShowcaseSettings()) -> list[Row]:
    """Every row: ``settings.persons`` held-out persons, then the runway crops, each in a printed held-out product."""
    from fashion_pipeline.tryon.inputs import agnostic_dilate

    width = height * 3 // 4
    reader = layout.Layout(pairs_root, "test", height, width)
    test_pairs = [pair for pair in layout.read_pairs(pairs_root, "test")]
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(test_pairs))
    persons = [test_pairs[i] for i in order[:settings.persons]]
    margin = agnostic_dilate(height)  # what the agnostic image hides around the upper body
    chosen = cycle_patterns(patterns, settings.persons + len(runway))
    rows = person_rows(predictor, reader, persons, chosen[:settings.persons], margin)
    if runway:
        template = Template.from_split(pairs_root, height, width)
        inputs = [runway_input(crop, mask, template, name, source) for crop, mask, name, source in runway]
        products = [reader.load(test_pairs[i]) for i in np.resize(order[::-1], len(inputs))]  # other garments
        rows += runway_rows(predictor, inputs, products, chosen[settings.persons:], margin)
    return rows


def generated_patterns(generators: dict[str, tuple[Path, float]], per_category: int, seed: int = 0) -> list:
    """(label, pattern, print fraction) from each category's generator (``gan.dcgan``), seeded."""
    from fashion_pipeline.gan import dcgan

    out = []
    for category, (path, fraction) in sorted(generators.items()):
        for pattern in dcgan.sample(dcgan.load_generator(path), per_category, seed=seed):
            out.append((category, pattern, fraction))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dress held-out persons and runway crops in product garments "
                                                 "printed with generated patterns.")
    parser.add_argument("--pairs-root", type=Path, required=True, help="a try-on dataset (VITON-HD layout) with a test split")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--model", type=Path, required=True, help="a tryon_model model.pt (viton, encoder_decoder)")
    parser.add_argument("--generator", action="append", default=[], metavar="CATEGORY=PATH[:FRACTION]",
                        help="a pattern_dcgan generator.pt; FRACTION is the print's tile side (default 0.12)")
    parser.add_argument("--masks-manifest", type=Path, help="garment_masks' manifest.parquet (runway crops)")
    parser.add_argument("--data-root", type=Path, default=Path("."), help="what the manifest's paths are relative to")
    parser.add_argument("--persons", type=int, default=ShowcaseSettings.persons)
    parser.add_argument("--crops", type=int, default=ShowcaseSettings.crops)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from fashion_pipeline.tryon.models import Predictor

    generators = {}
    for spec in args.generator:
        category, _, rest = spec.partition("=")
        path, _, fraction = rest.partition(":")
        generators[category] = (Path(path), float(fraction or restyle.RestyleSettings.tile_fraction))
    settings = ShowcaseSettings(persons=args.persons, crops=args.crops)
    runway = (runway_choices(args.masks_manifest, args.data_root, args.crops, settings.min_area_fraction)
              if args.masks_manifest else [])
    patterns = generated_patterns(generators, -(-(args.persons + len(runway)) // max(1, len(generators))))
    rows = make_showcase(Predictor(args.model), args.pairs_root, args.height, patterns, runway, settings)
    result = write(rows, args.out)
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {args.out / 'grid.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
