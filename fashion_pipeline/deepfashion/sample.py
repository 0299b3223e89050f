"""A synthetic DeepFashion sample in the layout of today's "Category and Attribute Prediction" download.

The embedded default data of the pipeline: with no DeepFashion root configured, ``deepfashion_coco``
converts this sample instead, through the same layout detection as a real download. Deterministic
from a seed. What it holds (the download's layout: ``Anno_coarse/``, ``Eval/``, ``Img/img/``):

- ``Anno_coarse/list_category_cloth.txt``: all 50 real category names with their real ``category_type``,
  names padded to 15 columns as in the real file;
- ``Img/img/<Folder>/img_00000001.jpg``...: item folders named like DeepFashion's
  (``<Style>_<Detail>_<Category>``), a few pictures per item, each a procedurally drawn figure
  (``fashion_pipeline.synthetic.figures``) wearing one garment of the folder's category type;
  upper = waist-up shot, lower = waist-down shot, full = whole figure; varied sizes (about
  200-300 px a side, like DeepFashion's), textures, colours, scales, positions and backgrounds;
- ``Anno_coarse/list_category_img.txt``, ``Anno_coarse/list_bbox.txt`` (the true, tight boxes,
  zero-padded) and ``Eval/list_eval_partition.txt`` (train/val/test in DeepFashion's 72/14/14
  proportions); image names are ``img/<Folder>/...``, relative to ``Img/``, as in the download;
- ``sample.json``: the parameters it was made with, so an unchanged sample is reused.

The sample is built in a staging folder next to the target and renamed into place, so a killed
run never leaves a half-written sample under the final name (an fsync per image would be slow).

CLI: ``python -m fashion_pipeline.deepfashion.sample --root R --images N --seed S``
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fashion_pipeline.common.atomic import write_text
from fashion_pipeline.deepfashion import layout
from fashion_pipeline.synthetic.figures import render_garment_photo

GENERATOR_VERSION = 3  # bump when the drawing or the layout changes, so old samples are regenerated (3: Anno_coarse/, Img/img/)
MANIFEST = "sample.json"
# DeepFashion's pictures are at most 300 px on the long side; a few of its common shapes.
IMAGE_SIZES = ((300, 300), (200, 300), (205, 300), (240, 300), (300, 250), (300, 225), (260, 300))
STYLE_WORDS = ("Sheer", "Classic", "Relaxed", "Cropped", "Floral", "Striped", "Boxy", "Faux", "Lace", "Crochet",
               "Paisley", "Textured", "Woven", "Belted", "Abstract", "Geo", "Mesh", "Knit", "Chiffon", "Dreaming")
DETAIL_WORDS = ("Pleated-Front", "Tie-Front", "Button-Front", "Zippered", "Longline", "Open-Back", "V-Neck",
                "Wrap", "Smocked", "Drawstring", "Ruffled", "Pocket", "Slit", "High-Rise", "Hooded", "Cuffed")
# The garment shape drawn for each category, so a folder of Jeans shows trousers and one of Capes a coat.
CATEGORY_STYLES = {
    **dict.fromkeys(("Anorak", "Blazer", "Bomber", "Jacket", "Parka", "Peacoat"), "jacket"),
    **dict.fromkeys(("Blouse", "Button-Down"), "blouse"),
    **dict.fromkeys(("Cardigan", "Flannel", "Hoodie", "Poncho", "Sweater", "Turtleneck"), "sweater"),
    **dict.fromkeys(("Halter", "Tank"), "tank"),
    **dict.fromkeys(("Henley", "Jersey", "Tee", "Top"), "tee"),
    **dict.fromkeys(("Sarong", "Skirt"), "skirt"),
    **dict.fromkeys(("Cutoffs", "Shorts", "Sweatshorts", "Trunks"), "shorts"),
    **dict.fromkeys(("Capris", "Chinos", "Culottes", "Gauchos", "Jeans", "Jeggings", "Jodhpurs", "Joggers",
                     "Leggings", "Sweatpants"), "trousers"),
    **dict.fromkeys(("Caftan", "Coverup", "Dress", "Kaftan", "Nightdress", "Shirtdress", "Sundress"), "dress"),
    **dict.fromkeys(("Jumpsuit", "Onesie", "Romper"), "jumpsuit"),
    **dict.fromkeys(("Cape", "Coat", "Kimono", "Robe"), "coat"),
}
NAME_COLUMN_WIDTH = 71  # DeepFashion pads image names to this width
CATEGORY_COLUMN_WIDTH = 15  # and category names to this one ("Anorak         1")
ANNOTATION_DIR = layout.CURRENT_ANNOTATION_DIR
IMAGE_ROOT = layout.CURRENT_IMAGE_ROOT


@dataclass(frozen=True)
class SampleSpec:
    images: int = 900
    seed: int = 0
    val_fraction: float = 0.14
    test_fraction: float = 0.14
    generator_version: int = GENERATOR_VERSION


@dataclass(frozen=True)
class SampleImage:
    name: str  # img/<Folder>/img_XXXXXXXX.jpg, relative to Img/
    category_label: int
    category_type: int
    size: tuple[int, int]


def plan_images(spec: SampleSpec) -> list[SampleImage]:
    """Which item folders and pictures the sample holds; category types are balanced."""
    rng = np.random.default_rng([spec.seed, 0])
    by_type = {t: [i + 1 for i, (_, ct) in enumerate(layout.CATEGORIES) if ct == t] for t in (1, 2, 3)}
    planned: list[SampleImage] = []
    used_folders: set[str] = set()
    while len(planned) < spec.images:
        category_type = len(planned) % 3 + 1 if rng.random() < 0.5 else int(rng.integers(1, 4))
        label = int(rng.choice(by_type[category_type]))
        folder = _folder_name(rng, layout.CATEGORIES[label - 1][0], used_folders)
        for index in range(1, min(int(rng.integers(1, 7)), spec.images - len(planned)) + 1):
            size = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
            planned.append(SampleImage(f"{layout.IMAGE_PREFIX}{folder}/img_{index:08d}.jpg", label, category_type, size))
    return planned


def _folder_name(rng: np.random.Generator, category: str, used: set[str]) -> str:
    for _ in range(100):
        name = f"{rng.choice(STYLE_WORDS)}_{rng.choice(DETAIL_WORDS)}_{category}"
        if name not in used:
            used.add(name)
            return name
    name = f"{rng.choice(STYLE_WORDS)}_{rng.choice(DETAIL_WORDS)}_{len(used)}_{category}"
    used.add(name)
    return name


def assign_partition(spec: SampleSpec, count: int) -> list[str]:
    rng = np.random.default_rng([spec.seed, 1])
    n_val, n_test = round(count * spec.val_fraction), round(count * spec.test_fraction)
    statuses = np.array(["train"] * (count - n_val - n_test) + ["val"] * n_val + ["test"] * n_test, dtype=object)
    return list(statuses[rng.permutation(count)])


def _list_file(header: str, rows: list[str]) -> str:
    return f"{len(rows)}\n{header}\n" + "".join(row + "\n" for row in rows)


def write_sample(staging: Path, spec: SampleSpec) -> dict:
    """Draw every picture and write the list files into ``staging``. Returns per-type counts."""
    planned = plan_images(spec)
    boxes = []
    for index, item in enumerate(planned):
        rng = np.random.default_rng([spec.seed, 2, index])  # one stream per picture: stable under reordering
        style = CATEGORY_STYLES[layout.CATEGORIES[item.category_label - 1][0]]
        image, box = render_garment_photo(rng, item.category_type, item.size, style=style)
        path = staging / IMAGE_ROOT / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="JPEG", quality=90)
        boxes.append(box)
    statuses = assign_partition(spec, len(planned))
    width = max(NAME_COLUMN_WIDTH, max(len(item.name) for item in planned) + 1)
    anno = f"{ANNOTATION_DIR}/"
    files = {  # headers as in the real files (list_category_img.txt pads its header too)
        anno + layout.CATEGORY_CLOTH_FILE: _list_file(
            "category_name  category_type", [f"{name.ljust(CATEGORY_COLUMN_WIDTH)}{t}" for name, t in layout.CATEGORIES]),
        anno + layout.CATEGORY_IMG_FILE: _list_file(f"{'image_name'.ljust(width)}category_label",
                                                    [f"{item.name.ljust(width)}{item.category_label}" for item in planned]),
        anno + layout.BBOX_FILE: _list_file("image_name  x_1  y_1  x_2  y_2",
                                [f"{item.name.ljust(width)}{x1:03d} {y1:03d} {x2:03d} {y2:03d}"
                                 for item, (x1, y1, x2, y2) in zip(planned, boxes)]),
        layout.EVAL_PARTITION: _list_file("image_name  evaluation_status",
                                          [f"{item.name.ljust(width)}{status}" for item, status in zip(planned, statuses)]),
    }
    for relative, text in files.items():
        write_text(staging / relative, text)
    counts = {layout.CATEGORY_TYPE_NAMES[t]: sum(item.category_type == t for item in planned) for t in (1, 2, 3)}
    write_text(staging / MANIFEST, json.dumps({**asdict(spec), "counts": counts}, indent=2))
    return counts


def existing_spec(root: Path) -> SampleSpec | None:
    """The spec a complete sample at ``root`` was made with, or None."""
    try:
        recorded = json.loads((root / MANIFEST).read_text())
        return SampleSpec(**{key: recorded[key] for key in SampleSpec.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_sample(root: Path | str, spec: SampleSpec = SampleSpec()) -> bool:
    """Make the sample at ``root`` unless an identical one is there. Returns True when it (re)generated."""
    root = Path(root)
    if existing_spec(root) == spec:
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    write_sample(staging, spec)
    retired = root.parent / f".{root.name}.retired-{os.getpid()}"
    if root.exists():
        os.replace(root, retired)
    os.replace(staging, root)
    shutil.rmtree(retired, ignore_errors=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a synthetic DeepFashion sample in today's download layout "
                                                 "(Anno_coarse/, Eval/, Img/img/).")
    parser.add_argument("--root", required=True, help="folder to create (replaced when it holds another sample)")
    parser.add_argument("--images", type=int, default=SampleSpec.images)
    parser.add_argument("--seed", type=int, default=SampleSpec.seed)
    parser.add_argument("--val-fraction", type=float, default=SampleSpec.val_fraction)
    parser.add_argument("--test-fraction", type=float, default=SampleSpec.test_fraction)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    started = time.perf_counter()
    spec = SampleSpec(args.images, args.seed, args.val_fraction, args.test_fraction)
    made = ensure_sample(Path(args.root), spec)
    verb = "generated" if made else "kept the identical existing"
    print(f"{verb} sample of {spec.images} images at {args.root} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
