"""Convert DeepFashion "Category and Attribute Prediction" to COCO detection JSON, one file per split.

Input: a DeepFashion root in its published layout (``Anno/list_category_cloth.txt``,
``Anno/list_category_img.txt``, ``Anno/list_bbox.txt``, ``Eval/list_eval_partition.txt``,
``img/<Folder>/img_XXXXXXXX.jpg``). Output: ``train.json``, ``val.json``, ``test.json`` with the three
categories ``upper`` (1), ``lower`` (2), ``full`` (3) = DeepFashion's ``category_type``; one box per
image in xywh; ``width``/``height`` read from each image's header (never decoded);
``info.image_root`` = the DeepFashion root (relative to the output folder when both lie under one
data root, e.g. the embedded sample; absolute otherwise), ``file_name`` relative to it; and
``summary.json`` with the counts.

Splits:
- ``official`` (default): ``Eval/list_eval_partition.txt`` (train / val / test).
- ``random``: the thesis's seeded random split of all images into 200,000 train / 89,222 val.
  For a set of another size the same ratio is kept: ``n_train = round(n * 200000 / 289222)``, the
  rest is val, over the images that survive the checks below; ``test.json`` is then empty.

Bad input. Structural problems stop the conversion with an error naming ``file:line`` and nothing
is written (see ``listfiles``): a malformed line (wrong field count, blank line, non-integer where an
integer belongs, an ``evaluation_status`` other than train/val/test, a ``category_type`` other than
1/2/3), a count line that disagrees with the rows, an image listed twice, a missing list file.
Problems with one image are *skipped and counted by reason* (``summary.json`` and the asset's
metadata, with up to five ``file:line`` examples each); with ``on_bad="fail"`` any of them is an error
instead:

- ``unknown category label``: ``category_label`` is not one of the categories in list_category_cloth.txt;
- ``no category label``: the image is in list_bbox.txt / list_eval_partition.txt but not list_category_img.txt;
- ``no bbox``: the image has no row in list_bbox.txt;
- ``no partition``: the image has no row in list_eval_partition.txt (official split only);
- ``missing image file``: the image file is absent or is not an image;
- ``empty bbox``: ``x_2 <= x_1`` or ``y_2 <= y_1``;
- ``bbox outside image``: a corner lies outside ``[0, width] x [0, height]``.

Every output file is written atomically; ``summary.json`` is written last.

CLI: ``python -m fashion_pipeline.deepfashion.convert --root R --out DIR [--split official|random] [--seed S]``
"""
from __future__ import annotations

import argparse
import json
import os
import json.encoder
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_pipeline.common.atomic import write_text
from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.image_headers import header_sizes
from fashion_pipeline.deepfashion.listfiles import ListFileError, check_unique, read_list_file

SPLIT_MODES = ("official", "random")
SKIP_REASONS = ("unknown category label", "no category label", "no bbox", "no partition", "missing image file",
                "empty bbox", "bbox outside image")
BAD_INPUT_POLICIES = ("skip", "fail")
EXAMPLES_PER_REASON = 5


class ConversionError(ValueError):
    """Images were rejected and ``on_bad="fail"`` was asked for."""


@dataclass(frozen=True)
class ConvertOptions:
    split: str = "official"
    seed: int = 0
    on_bad: str = "skip"
    workers: int = 4

    def __post_init__(self):
        if self.split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {SPLIT_MODES}, got {self.split!r}")
        if self.on_bad not in BAD_INPUT_POLICIES:
            raise ValueError(f"on_bad must be one of {BAD_INPUT_POLICIES}, got {self.on_bad!r}")


@dataclass
class Skips:
    """Images left out, counted by reason, with a few ``file:line: image`` examples each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, file: str, lines: np.ndarray, names: np.ndarray) -> None:
        if len(names) == 0:
            return
        self.counts[reason] += len(names)
        bucket = self.examples.setdefault(reason, [])
        for line, name in zip(lines[: EXAMPLES_PER_REASON - len(bucket)], names):
            bucket.append(f"{file}:{int(line)}: {name}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ConversionResult:
    summary: dict
    paths: dict[str, Path]


# --------------------------------------------------------------------------- reading


def read_categories(root: Path) -> pd.DataFrame:
    """list_category_cloth.txt with ``category_label`` (1-based position) added."""
    path = root / layout.CATEGORY_CLOTH
    cloth = read_list_file(path, layout.COLUMNS[layout.CATEGORY_CLOTH], integer_columns=("category_type",))
    bad = ~cloth["category_type"].isin([1, 2, 3]).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ListFileError(path, int(cloth["line"].iloc[row]), f"category_type must be 1, 2 or 3, found {cloth['category_type'].iloc[row]}")
    cloth["category_label"] = np.arange(1, len(cloth) + 1)
    return cloth


def read_image_lists(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three per-image list files, each checked for duplicates and (partition) unknown statuses."""
    frames = []
    for name, integers in ((layout.CATEGORY_IMG, ("category_label",)), (layout.BBOX, ("x_1", "y_1", "x_2", "y_2")),
                           (layout.EVAL_PARTITION, ())):
        frame = read_list_file(root / name, layout.COLUMNS[name], integer_columns=integers)
        check_unique(root / name, frame)
        frames.append(frame)
    partition = frames[2]
    status = partition["evaluation_status"]
    unknown = ~status.isin(layout.SPLITS).to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ListFileError(root / layout.EVAL_PARTITION, int(partition["line"].iloc[row]),
                            f"evaluation_status must be train, val or test, found {status.iloc[row]!r}")
    return frames[0], frames[1], frames[2]


def join_lists(cat_img: pd.DataFrame, bbox: pd.DataFrame, partition: pd.DataFrame, skips: Skips,
               need_partition: bool) -> pd.DataFrame:
    """One row per image of list_category_img.txt, with its box and split; images lacking either are skipped."""
    table = cat_img.copy()
    table["image_id"] = np.arange(1, len(table) + 1)  # stable ids: the row in list_category_img.txt
    already_counted: set[str] = set()
    for other, file, columns in ((bbox, layout.BBOX, ["x_1", "y_1", "x_2", "y_2"]),
                                 (partition, layout.EVAL_PARTITION, ["evaluation_status"])):
        if len(other) == len(table) and np.array_equal(other["image_name"].to_numpy(), table["image_name"].to_numpy()):
            for column in columns:  # the published files list the same images in the same order: no join needed
                table[column] = other[column].to_numpy()
            continue
        # images only in list_bbox / list_eval_partition are counted once, however many files list them
        extra = ~other["image_name"].isin(cat_img["image_name"]).to_numpy() & ~other["image_name"].isin(already_counted).to_numpy()
        skips.add("no category label", file, other["line"].to_numpy()[extra], other["image_name"].to_numpy()[extra])
        already_counted.update(other["image_name"].to_numpy()[extra].tolist())
        table = table.merge(other[["image_name", *columns]], on="image_name", how="left", sort=False)
        absent = table[columns[0]].isna().to_numpy()
        if file == layout.BBOX or need_partition:
            reason = "no bbox" if file == layout.BBOX else "no partition"
            skips.add(reason, layout.CATEGORY_IMG, table["line"].to_numpy()[absent], table["image_name"].to_numpy()[absent])
            table = table[~absent].reset_index(drop=True)
    for column in ("x_1", "y_1", "x_2", "y_2"):
        table[column] = table[column].astype(np.int64)
    return table


def drop_rows(table: pd.DataFrame, bad: np.ndarray, reason: str, file: str, skips: Skips) -> pd.DataFrame:
    skips.add(reason, file, table["line"].to_numpy()[bad], table["image_name"].to_numpy()[bad])
    return table[~bad].reset_index(drop=True)


def validate_images(root: Path, table: pd.DataFrame, categories: pd.DataFrame, skips: Skips, workers: int) -> pd.DataFrame:
    """Attach category types and image sizes; drop unknown labels, missing files and bad boxes."""
    labels = table["category_label"].to_numpy()
    table = drop_rows(table, (labels < 1) | (labels > len(categories)), "unknown category label", layout.CATEGORY_IMG, skips)
    label_index = table["category_label"].to_numpy() - 1
    table["category_type"] = categories["category_type"].to_numpy()[label_index]
    table["category_name"] = categories["category_name"].to_numpy()[label_index]

    prefix = str(root) + "/"
    sizes = header_sizes([prefix + name for name in table["image_name"].tolist()], workers=workers)
    missing = np.fromiter((size is None for size in sizes), dtype=bool, count=len(sizes))
    table["width"] = np.fromiter((size[0] if size else 0 for size in sizes), dtype=np.int64, count=len(sizes))
    table["height"] = np.fromiter((size[1] if size else 0 for size in sizes), dtype=np.int64, count=len(sizes))
    table = drop_rows(table, missing, "missing image file", layout.CATEGORY_IMG, skips)

    x1, y1, x2, y2 = (table[c].to_numpy() for c in ("x_1", "y_1", "x_2", "y_2"))
    table = drop_rows(table, (x2 <= x1) | (y2 <= y1), "empty bbox", layout.BBOX, skips)
    x1, y1, x2, y2 = (table[c].to_numpy() for c in ("x_1", "y_1", "x_2", "y_2"))
    outside = (x1 < 0) | (y1 < 0) | (x2 > table["width"].to_numpy()) | (y2 > table["height"].to_numpy())
    return drop_rows(table, outside, "bbox outside image", layout.BBOX, skips)


# --------------------------------------------------------------------------- splitting and writing


def assign_splits(table: pd.DataFrame, options: ConvertOptions) -> np.ndarray:
    """The split name of every row."""
    if options.split == "official":
        return table["evaluation_status"].to_numpy().astype(object)
    n = len(table)
    n_train = round(n * layout.THESIS_RANDOM_TRAIN / layout.OFFICIAL_IMAGE_COUNT)
    order = np.random.default_rng(options.seed).permutation(n)
    splits = np.full(n, "val", dtype=object)
    splits[order[:n_train]] = "train"
    return splits


def coco_json(rows: pd.DataFrame, info: dict) -> str:
    """The COCO document of ``rows`` as compact JSON text.

    Rows are formatted straight to text: building 2 x 289,222 dicts and encoding them costs about
    twice as much time and memory. Strings go through json's own escaper.
    """
    escape = json.encoder.encode_basestring_ascii
    ids = rows["image_id"].tolist()
    x1, y1, x2, y2 = (rows[c].to_numpy() for c in ("x_1", "y_1", "x_2", "y_2"))
    widths, heights = (x2 - x1).tolist(), (y2 - y1).tolist()
    images = ",".join(
        '{"id":%d,"file_name":%s,"width":%d,"height":%d}' % (i, escape(name), w, h)
        for i, name, w, h in zip(ids, rows["image_name"].tolist(), rows["width"].tolist(), rows["height"].tolist())
    )
    annotations = ",".join(
        '{"id":%d,"image_id":%d,"category_id":%d,"bbox":[%d,%d,%d,%d],"area":%d,"iscrowd":0,"deepfashion_category":%s}'
        % (i, i, t, x, y, bw, bh, bw * bh, escape(name))
        for i, t, x, y, bw, bh, name in zip(ids, rows["category_type"].tolist(), x1.tolist(), y1.tolist(), widths,
                                            heights, rows["category_name"].tolist())
    )
    return (f'{{"info":{json.dumps(info)},"licenses":[],"images":[{images}],"annotations":[{annotations}],'
            f'"categories":{json.dumps(layout.COCO_CATEGORIES)}}}')


def split_counts(rows: pd.DataFrame) -> dict:
    by_type = rows["category_type"].value_counts()
    return {
        "images": int(len(rows)),
        "boxes": int(len(rows)),
        "by_type": {name: int(by_type.get(type_id, 0)) for type_id, name in layout.CATEGORY_TYPE_NAMES.items()},
    }


def stored_image_root(root: Path, out_dir: Path) -> str:
    """The image root as written into the JSON: relative to ``out_dir`` when both share its parent
    (one data root that can move as a whole), absolute for an external DeepFashion folder."""
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()
    if root.is_relative_to(out_dir.parent):
        return os.path.relpath(root, out_dir)
    return str(root)


def convert(root: Path | str, out_dir: Path | str, options: ConvertOptions = ConvertOptions()) -> ConversionResult:
    """Convert the DeepFashion root into ``out_dir/{train,val,test}.json`` and ``out_dir/summary.json``."""
    started = time.perf_counter()
    root, out_dir = Path(root).resolve(), Path(out_dir)
    categories = read_categories(root)
    cat_img, bbox, partition = read_image_lists(root)
    skips = Skips()
    table = join_lists(cat_img, bbox, partition, skips, need_partition=options.split == "official")
    table = validate_images(root, table, categories, skips, options.workers)
    if options.on_bad == "fail" and skips.total:
        raise ConversionError(_skip_report(root, skips))
    splits = assign_splits(table, options)

    paths: dict[str, Path] = {}
    counts: dict[str, dict] = {}
    stored_root = stored_image_root(root, out_dir)
    for split in layout.SPLITS:
        rows = table[splits == split]
        info = {"description": "DeepFashion Category and Attribute Prediction, boxes by category_type",
                "image_root": stored_root, "split": split, "split_mode": options.split, "seed": options.seed}
        paths[split] = write_text(out_dir / f"{split}.json", coco_json(rows, info))
        counts[split] = split_counts(rows)
    summary = {
        "image_root": stored_root,
        "split_mode": options.split,
        "seed": options.seed,
        "images_listed": int(len(cat_img)),
        "images_kept": int(len(table)),
        "images_skipped": skips.total,
        "skipped": dict(skips.counts),
        "skipped_examples": skips.examples,
        "splits": counts,
        "categories": {name: int(t) for name, t in zip(categories["category_name"], categories["category_type"])},
        "seconds": round(time.perf_counter() - started, 3),
        "files": {split: path.name for split, path in paths.items()},
    }
    paths["summary"] = write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return ConversionResult(summary=summary, paths=paths)


def _skip_report(root: Path, skips: Skips) -> str:
    lines = [f"{skips.total} image(s) of {root} rejected (on_bad='fail'):"]
    for reason, count in skips.counts.most_common():
        lines.append(f"  {reason}: {count}")
        lines += [f"    {example}" for example in skips.examples.get(reason, [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="DeepFashion root (holds Anno/, Eval/, img/)")
    parser.add_argument("--out", required=True, help="output folder for {train,val,test}.json and summary.json")
    parser.add_argument("--split", choices=SPLIT_MODES, default="official",
                        help="official partition, or the thesis's seeded random 200,000/89,222 train/val ratio")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--on-bad", choices=BAD_INPUT_POLICIES, default="skip",
                        help="skip and count images with bad annotations or files, or fail on the first report")
    parser.add_argument("--workers", type=int, default=4, help="threads reading image headers")
    args = parser.parse_args(argv)
    try:
        result = convert(args.root, args.out, ConvertOptions(args.split, args.seed, args.on_bad, args.workers))
    except (ListFileError, ConversionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = result.summary
    for split, counts in summary["splits"].items():
        print(f"{split}: {counts['images']} images {counts['by_type']}")
    print(f"skipped {summary['images_skipped']}: {summary['skipped']}  ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
