"""The synthetic DeepFashion sample: today's download layout, real categories, deterministic, converts cleanly."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.convert import convert
from fashion_pipeline.deepfashion.listfiles import read_list_file
from fashion_pipeline.deepfashion.sample import SampleSpec, ensure_sample, main

CLOTH, IMG, BBOX = (f"Anno_coarse/{name}" for name in (layout.CATEGORY_CLOTH_FILE, layout.CATEGORY_IMG_FILE, layout.BBOX_FILE))


def digest(root: Path) -> str:
    """Hash of every file of a sample (names and bytes)."""
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(root)).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def test_sample_is_deterministic_from_its_seed(tmp_path):
    ensure_sample(tmp_path / "a", SampleSpec(images=24, seed=5))
    ensure_sample(tmp_path / "b", SampleSpec(images=24, seed=5))
    ensure_sample(tmp_path / "c", SampleSpec(images=24, seed=6))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_sample_is_written_in_the_layout_of_todays_download(tmp_path):
    root = tmp_path / "sample"
    ensure_sample(root, SampleSpec(images=60, seed=1))
    assert sorted(p.name for p in root.iterdir()) == ["Anno_coarse", "Eval", "Img", "sample.json"]
    assert layout.detect_layout(root) == layout.Layout("coarse", "Anno_coarse", "Img", False)
    cloth_lines = (root / CLOTH).read_text().splitlines()
    assert cloth_lines[:3] == ["50", "category_name  category_type", "Anorak         1"]  # the real file's padding
    cloth = read_list_file(root / CLOTH, layout.CLOTH_COLUMNS, ("category_type",))
    assert len(cloth) == 50
    assert list(zip(cloth["category_name"], cloth["category_type"])) == list(layout.CATEGORIES)
    names = read_list_file(root / IMG, layout.CATEGORY_IMG_COLUMNS, ("category_label",))["image_name"]
    assert all(name.startswith("img/") and (root / "Img" / name).is_file() for name in names)  # relative to Img/
    lines = (root / BBOX).read_text().splitlines()
    assert lines[0] == "60" and lines[1].split() == ["image_name", "x_1", "y_1", "x_2", "y_2"]
    assert all(re.fullmatch(r"img/[A-Za-z-]+_[A-Za-z-]+_[A-Za-z-]+/img_\d{8}\.jpg +\d{3} \d{3} \d{3} \d{3}", line)
               for line in lines[2:])
    statuses = (root / layout.EVAL_PARTITION).read_text().split()[4::2]
    assert statuses.count("train") == 60 - 2 * round(60 * 0.14) and statuses.count("val") == round(60 * 0.14)


def test_sample_boxes_are_true_and_inside_images(tmp_path):
    root = tmp_path / "sample"
    ensure_sample(root, SampleSpec(images=30, seed=2))
    boxes = read_list_file(root / BBOX, layout.BBOX_COLUMNS, ("x_1", "y_1", "x_2", "y_2"))
    for row in boxes.itertuples():
        with Image.open(root / "Img" / row.image_name) as image:
            width, height = image.size
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert 0 <= row.x_1 < row.x_2 <= width and 0 <= row.y_1 < row.y_2 <= height
        assert pixels[row.y_1:row.y_2, row.x_1:row.x_2].std() > 3  # something is drawn inside the box
    summary = convert(root, tmp_path / "coco").summary
    assert summary["images_skipped"] == 0 and summary["images_kept"] == 30
    assert summary["layout"]["description"] == "Anno_coarse/ + Eval/ + Img/img/ (today's download)"
    assert all(summary["splits"]["train"]["by_type"][name] > 0 for name in ("upper", "lower", "full"))


def test_identical_sample_is_reused_and_a_changed_one_replaced(tmp_path):
    root = tmp_path / "sample"
    assert ensure_sample(root, SampleSpec(images=6, seed=0)) is True
    assert ensure_sample(root, SampleSpec(images=6, seed=0)) is False
    assert ensure_sample(root, SampleSpec(images=9, seed=0)) is True
    assert (root / IMG).read_text().startswith("9\n")
    assert not any(p.name.startswith(".sample.") for p in tmp_path.iterdir())  # no staging leftovers


def test_cli(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "s"), "--images", "5", "--seed", "3"]) == 0
    assert "generated sample of 5 images" in capsys.readouterr().out
    assert len(list((tmp_path / "s" / "Img" / "img").rglob("*.jpg"))) == 5


def test_every_category_has_a_garment_style_of_its_type():
    from fashion_pipeline.deepfashion.sample import CATEGORY_STYLES
    from fashion_pipeline.synthetic.figures import FULL_STYLES, LOWER_STYLES, UPPER_STYLES

    styles_of_type = {1: UPPER_STYLES, 2: LOWER_STYLES, 3: FULL_STYLES}
    assert set(CATEGORY_STYLES) == {name for name, _ in layout.CATEGORIES}
    for name, category_type in layout.CATEGORIES:
        assert CATEGORY_STYLES[name] in styles_of_type[category_type]
