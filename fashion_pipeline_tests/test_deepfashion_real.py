"""The converter on real DeepFashion annotation lines (fixtures/real/deepfashion, see its PROVENANCE.md).

The 24 image rows were committed by others from the real list files; here they are written back in
the published format, in the real files' order, and converted in today's layout, in the 2016 one and
as the fine set. Two real files are also fed as they are, each a real case of bad input.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.convert import ConvertOptions, convert
from fashion_pipeline.deepfashion.listfiles import ListFileError

REAL = Path(__file__).parent / "fixtures" / "real" / "deepfashion"
NAME_WIDTH = 71  # the real files pad image names to 71 columns


def real_rows() -> list[dict]:
    """The excerpt's rows in the order of the real list files (their 0-based row, ``image_id``)."""
    with (REAL / "cathyliu0408_rows.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return sorted(rows, key=lambda row: int(row["image_id"]))


def real_cloth_text() -> str:
    """The real list_category_cloth.txt: the copy's 50 rows, with the count line its first line lost."""
    text = (REAL / "cathyliu0408_list_category_cloth.txt").read_text()
    assert text.startswith("\n")
    return "50" + text


def write_real_root(root: Path, anno: str) -> list[dict]:
    """A root in layout ``anno`` + Eval/ + Img/img/ holding the real rows; placeholder 300 x 300 images."""
    rows = real_rows()
    lines = {
        f"{anno}/list_category_cloth.txt": real_cloth_text(),
        f"{anno}/list_category_img.txt": _list(f"{'image_name'.ljust(NAME_WIDTH)}category_label",
                                               [f"{r['image_path'].ljust(NAME_WIDTH)}{r['category_old']}" for r in rows]),
        f"{anno}/list_bbox.txt": _list("image_name  x_1  y_1  x_2  y_2",
                                       [r["image_path"].ljust(NAME_WIDTH) + " ".join(f"{int(r[c]):03d}" for c in ("x1", "y1", "x2", "y2"))
                                        for r in rows]),
        "Eval/list_eval_partition.txt": _list("image_name  evaluation_status",
                                              [f"{r['image_path'].ljust(NAME_WIDTH)}{r['split']}" for r in rows]),
    }
    for relative, text in lines.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    _write_images(root, rows)
    return rows


def write_real_fine_root(root: Path) -> list[dict]:
    """The same rows as the fine set's per-split files."""
    rows = real_rows()
    fine = root / "Anno_fine"
    fine.mkdir(parents=True)
    (fine / "list_category_cloth.txt").write_text(real_cloth_text())
    for split in layout.SPLITS:
        mine = [r for r in rows if r["split"] == split]
        (fine / f"{split}.txt").write_text("".join(f"{r['image_path']}\n" for r in mine))
        (fine / f"{split}_cate.txt").write_text("".join(f"{r['category_old']}\n" for r in mine))
        (fine / f"{split}_bbox.txt").write_text("".join(f"{r['x1']} {r['y1']} {r['x2']} {r['y2']}\n" for r in mine))
    _write_images(root, rows)
    return rows


def _list(header: str, rows: list[str]) -> str:
    return f"{len(rows)}\n{header}\n" + "".join(row + "\n" for row in rows)


def _write_images(root: Path, rows: list[dict]) -> None:
    for row in rows:
        path = root / "Img" / row["image_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (300, 300), (90, 90, 90)).save(path, quality=70)


def _check_against_the_rows(out: Path, rows: list[dict], root: Path) -> None:
    by_name = {row["image_path"]: row for row in rows}
    cloth = [line.split() for line in real_cloth_text().splitlines()[2:]]
    seen = set()
    for split in layout.SPLITS:
        coco = json.loads((out / f"{split}.json").read_text())
        images = {image["id"]: image for image in coco["images"]}
        for annotation in coco["annotations"]:
            image = images[annotation["image_id"]]
            row = by_name[image["file_name"]]  # the real name, verbatim (entities, &, commas, apostrophes)
            seen.add(image["file_name"])
            assert row["split"] == split
            x1, y1, x2, y2 = (int(row[c]) for c in ("x1", "y1", "x2", "y2"))
            assert annotation["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            name, category_type = cloth[int(row["category_old"]) - 1]
            assert annotation["deepfashion_category"] == name and annotation["category_id"] == int(category_type)
            assert (out / coco["info"]["image_root"] / image["file_name"]).resolve() == (root / "Img" / row["image_path"]).resolve()
    assert seen == set(by_name)


@pytest.mark.parametrize("anno", ["Anno_coarse", "Anno"])
def test_real_excerpt_converts_in_todays_and_the_2016_layout(tmp_path, anno):
    root = tmp_path / "Category and Attribute Prediction Benchmark"  # the download's folder name, spaces included
    rows = write_real_root(root, anno)
    out = tmp_path / "coco"
    summary = convert(root, out).summary
    assert summary["images_skipped"] == 0 and summary["images_kept"] == len(rows) == 24
    assert summary["layout"]["annotation_dir"] == anno and summary["layout"]["image_dir"] == "Img/img"
    assert {split: c["images"] for split, c in summary["splits"].items()} == {"train": 12, "val": 6, "test": 6}
    assert summary["splits"]["train"]["by_type"] == {"upper": 12, "lower": 0, "full": 0}  # the excerpt is all tops
    _check_against_the_rows(out, rows, root)
    names = {image["file_name"] for image in json.loads((out / "test.json").read_text())["images"]}
    assert "img/Ombr&eacute;_Dolman_Button-Down_Blouse/img_00000083.jpg" in names


def test_real_excerpt_converts_as_the_fine_set(tmp_path):
    root = tmp_path / "Category and Attribute Prediction Benchmark"
    rows = write_real_fine_root(root)
    out = tmp_path / "coco"
    summary = convert(root, out, ConvertOptions(annotations="fine")).summary
    assert summary["images_kept"] == 24 and summary["layout"]["annotation_set"] == "fine"
    _check_against_the_rows(out, rows, root)


def test_real_category_list_without_its_count_line_is_an_error(tmp_path):
    root = tmp_path / "df"
    write_real_root(root, "Anno_coarse")
    (root / "Anno_coarse" / "list_category_cloth.txt").write_bytes((REAL / "cathyliu0408_list_category_cloth.txt").read_bytes())
    with pytest.raises(ListFileError, match=r"Anno_coarse/list_category_cloth\.txt:1: expected the number of rows, found ''"):
        convert(root, tmp_path / "coco")


def test_real_list_head_with_the_full_sets_count_is_an_error(tmp_path):
    root = tmp_path / "df"
    write_real_root(root, "Anno")
    (root / "Anno" / "list_category_img.txt").write_bytes((REAL / "abhishekrana_list_category_img_head.txt").read_bytes())
    with pytest.raises(ListFileError, match=r"Anno/list_category_img\.txt:1: count line says 289222 rows but 6 rows follow"):
        convert(root, tmp_path / "coco")
