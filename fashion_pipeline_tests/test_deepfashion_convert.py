"""The DeepFashion -> COCO converter on small crafted roots, including every kind of bad input."""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.convert import ConversionError, ConvertOptions, convert, main
from fashion_pipeline.deepfashion.image_headers import header_size, header_sizes
from fashion_pipeline.deepfashion.layout import LayoutError
from fashion_pipeline.deepfashion.listfiles import ListFileError

# name, category_label, (x1, y1, x2, y2), status, image size (None = no file on disk)
GOOD = [
    ("img/Sheer_Pleated-Front_Blouse/img_00000001.jpg", 3, (10, 20, 110, 150), "train", (200, 300)),  # Blouse: upper
    ("img/Sheer_Pleated-Front_Blouse/img_00000002.jpg", 3, (0, 0, 200, 300), "val", (200, 300)),
    ("img/Classic_Wrap_Skirt/img_00000001.jpg", 33, (30, 40, 170, 250), "train", (300, 300)),  # Skirt: lower
    ("img/Floral_Slit_Dress/img_00000001.jpg", 41, (5, 6, 105, 206), "test", (240, 300)),  # Dress: full
]


def _rows(entries, column):
    out = []
    for name, label, box, status, _ in entries:
        value = {"label": str(label), "box": " ".join(f"{v:03d}" for v in box), "status": status}[column]
        out.append(f"{name.ljust(71)}{value}")
    return out


def _list_text(header: str, rows: list[str], count: int | None = None) -> str:
    return f"{len(rows) if count is None else count}\n{header}\n" + "".join(r + "\n" for r in rows)


# The list files' paths in today's download (make_root's default layout).
CLOTH, IMG, BBOX = (f"Anno_coarse/{name}" for name in (layout.CATEGORY_CLOTH_FILE, layout.CATEGORY_IMG_FILE, layout.BBOX_FILE))


def image_path(root: Path, name: str, images: str = "Img/img") -> Path:
    """Where the file of list-file name ``img/<Folder>/x.jpg`` lies in each image layout."""
    return {"Img/img": root / "Img" / name, "img": root / name, "Img": root / "Img" / name[len("img/"):]}[images]


def make_root(tmp_path: Path, entries=GOOD, anno: str = "Anno_coarse", images: str = "Img/img", **override_text) -> Path:
    """A DeepFashion root holding ``entries`` in the layout ``anno`` (list files) + ``images`` (Img/img, img or Img);
    ``override_text`` replaces a list file's text (keys: cloth, img, bbox, eval)."""
    root = tmp_path / "deepfashion"
    texts = {
        "cloth": _list_text("category_name  category_type", [f"{n.ljust(15)}{t}" for n, t in layout.CATEGORIES]),
        "img": _list_text("image_name  category_label", _rows(entries, "label")),
        "bbox": _list_text("image_name  x_1  y_1  x_2  y_2", _rows(entries, "box")),
        "eval": _list_text("image_name  evaluation_status", _rows(entries, "status")),
    }
    texts.update(override_text)
    files = {"cloth": f"{anno}/{layout.CATEGORY_CLOTH_FILE}", "img": f"{anno}/{layout.CATEGORY_IMG_FILE}",
             "bbox": f"{anno}/{layout.BBOX_FILE}", "eval": layout.EVAL_PARTITION}
    for key, relative in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(texts[key])
    for name, _, _, _, size in entries:
        if size is not None:
            path = image_path(root, name, images)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (120, 60, 30)).save(path, quality=80)
    return root


def load(out: Path, split: str) -> dict:
    return json.loads((out / f"{split}.json").read_text())


def test_converts_the_official_partition_to_coco(tmp_path):
    root = make_root(tmp_path)
    out = tmp_path / "coco"
    result = convert(root, out)
    train = load(out, "train")
    assert [c["name"] for c in train["categories"]] == ["upper", "lower", "full"]
    # both under tmp_path, as the sample and deepfashion_coco under one data root: stored relative to the JSON;
    # the list files' names resolve against Img/, as in the download
    assert train["info"]["image_root"] == os.path.relpath((root / "Img").resolve(), out.resolve())
    assert (out / train["info"]["image_root"]).resolve() == (root / "Img").resolve()
    assert train["info"]["annotation_set"] == "coarse" and "Anno_coarse/" in train["info"]["layout"]
    by_name = {image["file_name"]: image for image in train["images"]}
    blouse = by_name["img/Sheer_Pleated-Front_Blouse/img_00000001.jpg"]
    assert (blouse["width"], blouse["height"]) == (200, 300)
    annotation = next(a for a in train["annotations"] if a["image_id"] == blouse["id"])
    assert annotation["bbox"] == [10, 20, 100, 130]
    assert annotation["area"] == 100 * 130 and annotation["iscrowd"] == 0
    assert annotation["category_id"] == 1 and annotation["deepfashion_category"] == "Blouse"
    skirt = next(a for a in train["annotations"] if a["deepfashion_category"] == "Skirt")
    assert skirt["category_id"] == 2
    assert load(out, "test")["annotations"][0]["category_id"] == 3
    assert result.summary["splits"]["train"]["by_type"] == {"upper": 1, "lower": 1, "full": 0}
    assert result.summary["splits"]["val"]["images"] == 1
    assert result.summary["images_skipped"] == 0
    assert json.loads((out / "summary.json").read_text())["images_kept"] == 4


def test_every_output_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "coco"
    convert(make_root(tmp_path), out)
    for split in layout.SPLITS:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(out / f"{split}.json"))
        assert len(coco.getImgIds()) == len(coco.getAnnIds())
        assert sorted(coco.getCatIds()) == [1, 2, 3]


def test_random_split_keeps_the_thesis_ratio_and_is_seeded(tmp_path):
    entries = [(f"img/Classic_Wrap_Skirt/img_{i:08d}.jpg", 33, (1, 1, 50, 50), "train", (64, 64)) for i in range(1, 21)]
    root = make_root(tmp_path, entries)
    first = convert(root, tmp_path / "a", ConvertOptions(split="random", seed=3)).summary
    assert first["splits"]["train"]["images"] == round(20 * 200_000 / 289_222) == 14
    assert first["splits"]["val"]["images"] == 6 and first["splits"]["test"]["images"] == 0
    convert(root, tmp_path / "b", ConvertOptions(split="random", seed=3))
    convert(root, tmp_path / "c", ConvertOptions(split="random", seed=4))
    ids = {name: sorted(i["id"] for i in load(tmp_path / name, "train")["images"]) for name in "abc"}
    assert ids["a"] == ids["b"]
    assert ids["a"] != ids["c"]


# ----------------------------------------------------------------------------- structural errors: file:line


def test_too_many_fields_names_file_and_line(tmp_path):
    rows = _rows(GOOD, "box")
    rows[1] += " 999"
    root = make_root(tmp_path, bbox=_list_text("image_name  x_1  y_1  x_2  y_2", rows))
    with pytest.raises(ListFileError, match=r"list_bbox\.txt:4: expected 5 fields, found 6 fields"):
        convert(root, tmp_path / "coco")
    assert not (tmp_path / "coco").exists() or not any((tmp_path / "coco").iterdir())  # nothing half-written


def test_too_few_fields_names_file_and_line(tmp_path):
    rows = _rows(GOOD, "box")
    rows[2] = rows[2].rsplit(" ", 1)[0]
    root = make_root(tmp_path, bbox=_list_text("image_name  x_1  y_1  x_2  y_2", rows))
    with pytest.raises(ListFileError, match=r"list_bbox\.txt:5: expected 5 fields .*found 4 fields"):
        convert(root, tmp_path / "coco")


def test_blank_line_in_the_middle_is_malformed(tmp_path):
    rows = _rows(GOOD, "label")
    rows.insert(2, "")
    root = make_root(tmp_path, img=_list_text("image_name  category_label", rows, count=4))
    with pytest.raises(ListFileError, match=r"list_category_img\.txt:5: .*blank line"):
        convert(root, tmp_path / "coco")


def test_non_integer_coordinate_names_file_and_line(tmp_path):
    rows = _rows(GOOD, "box")
    rows[3] = rows[3].replace(" 206", " 2o6")
    root = make_root(tmp_path, bbox=_list_text("image_name  x_1  y_1  x_2  y_2", rows))
    with pytest.raises(ListFileError, match=r"list_bbox\.txt:6: column y_2 must be an integer, found '2o6'"):
        convert(root, tmp_path / "coco")


def test_count_line_disagreeing_with_rows_is_an_error(tmp_path):
    root = make_root(tmp_path, eval=_list_text("image_name  evaluation_status", _rows(GOOD, "status"), count=5))
    with pytest.raises(ListFileError, match=r"list_eval_partition\.txt:1: count line says 5 rows but 4 rows follow"):
        convert(root, tmp_path / "coco")


def test_count_line_that_is_not_a_number(tmp_path):
    root = make_root(tmp_path, img="four\nimage_name  category_label\n")
    with pytest.raises(ListFileError, match=r"list_category_img\.txt:1: expected the number of rows"):
        convert(root, tmp_path / "coco")


def test_wrong_header_is_an_error(tmp_path):
    root = make_root(tmp_path, bbox=_list_text("image_name  x_1  y_1", _rows(GOOD, "box")))
    with pytest.raises(ListFileError, match=r"list_bbox\.txt:2: expected the 5 column names"):
        convert(root, tmp_path / "coco")


def test_unknown_evaluation_status_is_an_error(tmp_path):
    rows = _rows(GOOD, "status")
    rows[0] = rows[0].replace("train", "training")
    root = make_root(tmp_path, eval=_list_text("image_name  evaluation_status", rows))
    with pytest.raises(ListFileError, match=r"list_eval_partition\.txt:3: evaluation_status must be"):
        convert(root, tmp_path / "coco")


def test_duplicate_image_is_an_error(tmp_path):
    rows = _rows(GOOD, "label")
    rows[3] = rows[0]
    root = make_root(tmp_path, img=_list_text("image_name  category_label", rows))
    with pytest.raises(ListFileError, match=r"list_category_img\.txt:6: .*listed twice"):
        convert(root, tmp_path / "coco")


def test_category_type_outside_1_to_3_is_an_error(tmp_path):
    rows = [f"{n.ljust(15)}{t}" for n, t in layout.CATEGORIES]
    rows[4] = "Button-Down    4"
    root = make_root(tmp_path, cloth=_list_text("category_name  category_type", rows))
    with pytest.raises(ListFileError, match=r"list_category_cloth\.txt:7: category_type must be 1, 2 or 3"):
        convert(root, tmp_path / "coco")


def test_missing_list_file_is_an_error(tmp_path):
    root = make_root(tmp_path)
    (root / BBOX).unlink()
    with pytest.raises(LayoutError, match=r"Anno_coarse/ holds list_category_cloth.txt, list_category_img.txt but lacks "
                                          r"list_bbox.txt"):
        convert(root, tmp_path / "coco")


# ----------------------------------------------------------------------------- per-image problems: skipped and counted

BAD = GOOD + [
    ("img/Boxy_Zippered_Jacket/img_00000001.jpg", 11, (10, 10, 250, 100), "train", (200, 300)),  # x2 beyond width
    ("img/Boxy_Zippered_Jacket/img_00000002.jpg", 11, (10, 10, 100, 100), "train", None),  # no image file
    ("img/Boxy_Zippered_Jacket/img_00000003.jpg", 51, (10, 10, 100, 100), "train", (200, 300)),  # label 51 of 50
    ("img/Boxy_Zippered_Jacket/img_00000004.jpg", 11, (90, 10, 90, 100), "val", (200, 300)),  # zero width
]


def test_bad_images_are_skipped_and_counted_by_reason(tmp_path):
    root = make_root(tmp_path, BAD)
    summary = convert(root, tmp_path / "coco").summary
    assert summary["skipped"] == {"bbox outside image": 1, "missing image file": 1, "unknown category label": 1,
                                  "empty bbox": 1}
    assert summary["images_kept"] == 4 and summary["images_skipped"] == 4
    assert summary["skipped_examples"]["bbox outside image"] == [
        "Anno_coarse/list_bbox.txt:7: img/Boxy_Zippered_Jacket/img_00000001.jpg"]
    assert summary["skipped_examples"]["unknown category label"] == [
        "Anno_coarse/list_category_img.txt:9: img/Boxy_Zippered_Jacket/img_00000003.jpg"]
    kept = {i["file_name"] for s in layout.SPLITS for i in load(tmp_path / "coco", s)["images"]}
    assert kept == {name for name, *_ in GOOD}


def test_fail_policy_reports_every_reason(tmp_path):
    root = make_root(tmp_path, BAD)
    with pytest.raises(ConversionError) as raised:
        convert(root, tmp_path / "coco", ConvertOptions(on_bad="fail"))
    message = str(raised.value)
    for reason in ("bbox outside image", "missing image file", "unknown category label", "empty bbox"):
        assert reason in message
    assert "Anno_coarse/list_bbox.txt:7" in message
    assert not (tmp_path / "coco" / "summary.json").exists()


def test_images_missing_from_one_list_are_skipped(tmp_path):
    root = make_root(tmp_path)
    extra = ("img/Only_In_Bbox_Tee/img_00000001.jpg", 18, (1, 1, 2, 2), "train", None)
    box_rows = _rows(GOOD[:3] + [extra], "box")  # the dress has no box; the tee only a box
    make_root(tmp_path, bbox=_list_text("image_name  x_1  y_1  x_2  y_2", box_rows))
    summary = convert(root, tmp_path / "coco").summary
    assert summary["skipped"] == {"no bbox": 1, "no category label": 1}
    assert summary["skipped_examples"]["no category label"] == [
        "Anno_coarse/list_bbox.txt:6: img/Only_In_Bbox_Tee/img_00000001.jpg"]
    assert summary["skipped_examples"]["no bbox"] == ["Anno_coarse/list_category_img.txt:6: img/Floral_Slit_Dress/img_00000001.jpg"]
    assert summary["images_kept"] == 3


def test_partition_naming_an_image_the_list_file_lacks_is_an_error(tmp_path):
    extra = ("img/Only_In_Partition_Tee/img_00000001.jpg", 18, (1, 1, 2, 2), "train", None)
    root = make_root(tmp_path, eval=_list_text("image_name  evaluation_status", _rows(GOOD[:2] + [extra] + GOOD[2:], "status")))
    with pytest.raises(ListFileError, match=r"Eval/list_eval_partition\.txt:5: img/Only_In_Partition_Tee/img_00000001\.jpg "
                                            r"is not in Anno_coarse/list_category_img\.txt \(1 such image"):
        convert(root, tmp_path / "coco")


def test_options_are_validated():
    with pytest.raises(ValueError, match="split"):
        ConvertOptions(split="kfold")
    with pytest.raises(ValueError, match="on_bad"):
        ConvertOptions(on_bad="ignore")
    with pytest.raises(ValueError, match="annotations"):
        ConvertOptions(annotations="medium")


# ----------------------------------------------------------------------------- header sizes and CLI


def test_header_size_matches_pil_without_decoding(tmp_path):
    baseline, progressive, png = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.png"
    Image.new("RGB", (123, 45)).save(baseline)
    Image.new("RGB", (67, 89)).save(progressive, progressive=True)
    Image.new("RGB", (10, 11)).save(png)
    (tmp_path / "not_an_image.jpg").write_bytes(b"hello")
    assert header_size(baseline) == (123, 45)
    assert header_size(progressive) == (67, 89)
    assert header_size(png) == (10, 11)  # not a JPEG: PIL reads the header
    assert header_size(tmp_path / "missing.jpg") is None
    assert header_size(tmp_path / "not_an_image.jpg") is None
    paths = [str(baseline), str(progressive)] * 3000
    assert header_sizes(paths, workers=3) == [(123, 45), (67, 89)] * 3000


def test_cli_converts_and_reports_errors(tmp_path, capsys):
    root = make_root(tmp_path)
    assert main(["--root", str(root), "--out", str(tmp_path / "coco"), "--split", "random", "--seed", "1"]) == 0
    assert "train:" in capsys.readouterr().out
    (root / IMG).write_text("3\nimage_name  category_label\n")
    assert main(["--root", str(root), "--out", str(tmp_path / "coco2")]) == 2
    assert "list_category_img.txt:1: count line says 3 rows but 0 rows follow" in capsys.readouterr().err


def test_source_fingerprint_changes_with_what_the_conversion_reads(tmp_path):
    """The deepfashion_coco folder's key: unchanged root -> same; an image added, replaced or a list file edited -> new."""
    from fashion_pipeline.deepfashion.convert import source_fingerprint

    root = make_root(tmp_path)
    first = source_fingerprint(root)
    assert source_fingerprint(root) == first
    image = root / "Img" / "img" / "Classic_Wrap_Skirt" / "img_00000001.jpg"
    image.write_bytes(image.read_bytes() + b"\0")  # same name, other bytes (size and mtime change)
    replaced = source_fingerprint(root)
    assert replaced != first
    (root / "Img" / "img" / "Classic_Wrap_Skirt" / "img_00000009.jpg").write_bytes(image.read_bytes())
    added = source_fingerprint(root)
    assert added not in (first, replaced)
    bbox = root / "Anno_coarse" / layout.BBOX_FILE
    bbox.write_text(bbox.read_text().replace("010 020 110 150", "011 020 110 150"))
    assert source_fingerprint(root) not in (first, replaced, added)
    assert source_fingerprint(root, "coarse") == source_fingerprint(root)  # auto = coarse here
