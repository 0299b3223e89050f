"""Every published DeepFashion layout loads; a root matching none, or mixing two, is one clear error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fashion_pipeline.deepfashion import layout
from fashion_pipeline.deepfashion.convert import ConvertOptions, convert, main
from fashion_pipeline.deepfashion.layout import Layout, LayoutError, detect_layout
from fashion_pipeline.deepfashion.listfiles import ListFileError
from fashion_pipeline_tests.test_deepfashion_convert import GOOD, make_root

# (anno, images) -> the Layout detected and where COCO's image_root points, relative to the root
LAYOUTS = {
    ("Anno_coarse", "Img/img"): (Layout("coarse", "Anno_coarse", "Img", False), "Img"),  # today's download
    ("Anno", "Img/img"): (Layout("coarse", "Anno", "Img", False), "Img"),  # the 2016 download
    ("Anno", "img"): (Layout("coarse", "Anno", ".", False), "."),  # img/ moved up, as some published code expects
    ("Anno_coarse", "Img"): (Layout("coarse", "Anno_coarse", "Img", True), "Img"),  # item folders straight under Img/
}


def load(out: Path, split: str) -> dict:
    return json.loads((out / f"{split}.json").read_text())


def fine_root(root: Path, train=(GOOD[0],), val=(), test=(GOOD[3],), trailing: str = " ") -> Path:
    """Add Anno_fine/ to ``root``: per split, names / labels / boxes on the same line (boxes with a trailing
    space, as mmfashion's split script writes them)."""
    fine = root / "Anno_fine"
    fine.mkdir(parents=True, exist_ok=True)
    (fine / "list_category_cloth.txt").write_text(
        "50\ncategory_name  category_type\n" + "".join(f"{n.ljust(15)}{t}\n" for n, t in layout.CATEGORIES))
    for split, entries in (("train", train), ("val", val), ("test", test)):
        (fine / f"{split}.txt").write_text("".join(f"{name}\n" for name, *_ in entries))
        (fine / f"{split}_cate.txt").write_text("".join(f"{label}\n" for _, label, *_ in entries))
        (fine / f"{split}_bbox.txt").write_text("".join(" ".join(map(str, box)) + f"{trailing}\n" for _, _, box, *_ in entries))
    return root


# ----------------------------------------------------------------------------- each layout loads


@pytest.mark.parametrize(("anno", "images"), list(LAYOUTS))
def test_each_coarse_layout_loads(tmp_path, anno, images):
    root = make_root(tmp_path, anno=anno, images=images)
    expected, image_root = LAYOUTS[(anno, images)]
    assert detect_layout(root) == expected
    out = tmp_path / "coco"
    summary = convert(root, out).summary
    assert summary["images_kept"] == 4 and summary["images_skipped"] == 0
    assert summary["layout"]["annotation_dir"] == anno and summary["layout"]["image_dir"] == images
    train = load(out, "train")
    assert (out / train["info"]["image_root"]).resolve() == (root / image_root).resolve()
    for image in train["images"]:  # image_root + file_name is the file, as the detector reads it
        assert (out / train["info"]["image_root"] / image["file_name"]).is_file()
    names = {image["file_name"] for image in train["images"]}
    blouse = "Sheer_Pleated-Front_Blouse/img_00000001.jpg"  # Img/<Folder>/...: the list files' img/ is dropped
    assert names == ({blouse, "Classic_Wrap_Skirt/img_00000001.jpg"} if images == "Img" else
                     {f"img/{blouse}", "img/Classic_Wrap_Skirt/img_00000001.jpg"})
    assert train["info"]["layout"] == expected.description


def test_fine_layout_loads_with_its_own_splits_and_categories(tmp_path):
    root = fine_root(tmp_path / "deepfashion", train=GOOD[:2], val=GOOD[2:3], test=GOOD[3:])
    for name, *_, size in GOOD:
        (root / "Img" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(root / "Img" / name)
    assert detect_layout(root) == Layout("fine", "Anno_fine", "Img", False)
    out = tmp_path / "coco"
    summary = convert(root, out).summary
    assert summary["images_listed"] == 4 and summary["images_kept"] == 4
    assert {split: counts["images"] for split, counts in summary["splits"].items()} == {"train": 2, "val": 1, "test": 1}
    dress = load(out, "test")["annotations"][0]  # label 41 of Anno_fine/list_category_cloth.txt: Dress, type 3
    assert dress["deepfashion_category"] == "Dress" and dress["category_id"] == 3 and dress["bbox"] == [5, 6, 100, 200]
    assert load(out, "val")["annotations"][0]["category_id"] == 2  # Skirt
    assert load(out, "train")["info"]["annotation_set"] == "fine"


def test_both_sets_present_config_chooses(tmp_path):
    root = fine_root(make_root(tmp_path))  # coarse: 4 images; fine: 2 of them
    assert detect_layout(root).annotation_set == "coarse"  # auto: the full set the thesis used
    assert detect_layout(root, "fine").annotation_set == "fine"
    assert convert(root, tmp_path / "a", ConvertOptions(annotations="coarse")).summary["images_kept"] == 4
    fine = convert(root, tmp_path / "b", ConvertOptions(annotations="fine")).summary
    assert fine["images_kept"] == 2 and fine["layout"]["annotation_dir"] == "Anno_fine"


def test_cli_takes_the_annotation_set(tmp_path, capsys):
    root = fine_root(make_root(tmp_path))
    assert main(["--root", str(root), "--out", str(tmp_path / "coco"), "--annotations", "fine"]) == 0
    assert "layout: Anno_fine/ + Img/img/ (fine-grained subset)" in capsys.readouterr().out
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "coco2")]) == 2
    assert "matches no published layout" in capsys.readouterr().err


def test_real_folder_names_are_kept_verbatim(tmp_path):
    entries = [("img/Ombr&eacute;_Dolman_Button-Down_Blouse/img_00000054.jpg", 3, (19, 48, 165, 300), "train", (200, 300)),
               ("img/Young,_Beautiful,_&_Glamorous_Sweater/img_00000029.jpg", 16, (61, 99, 182, 205), "train", (300, 300)),
               ("img/There's_A_Will_Racerback_Tank/img_00000022.jpg", 17, (59, 70, 195, 263), "train", (300, 300))]
    root = make_root(tmp_path, entries)
    assert (root / "Img" / entries[0][0]).is_file()  # the folder on disk carries the entity, not an é
    out = tmp_path / "coco"
    convert(root, out)
    text = (out / "train.json").read_text()
    assert "Ombr&eacute;_Dolman_Button-Down_Blouse" in text and "\\u00e9" not in text
    assert {i["file_name"] for i in json.loads(text)["images"]} == {name for name, *_ in entries}


# ----------------------------------------------------------------------------- a root that is no layout, or two


def test_root_matching_no_layout_lists_what_was_found_and_what_loads(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "list_bbox.txt").write_text("0\nimage_name  x_1  y_1  x_2  y_2\n")
    (tmp_path / "img.zip").write_bytes(b"PK")
    with pytest.raises(LayoutError) as raised:
        detect_layout(tmp_path)
    message = str(raised.value)
    assert "matches no published layout" in message
    assert "Found: Annotations/ (list_bbox.txt), img.zip" in message
    assert "Anno_coarse/ (today's download) or Anno/ (2016)" in message and "Anno_fine/" in message
    assert "Img/img/, img/ or Img/" in message


def test_anno_and_anno_coarse_together_are_a_mix(tmp_path):
    root = make_root(tmp_path)
    (root / "Anno").mkdir()
    (root / "Anno" / "list_bbox.txt").write_text((root / "Anno_coarse" / "list_bbox.txt").read_text())
    with pytest.raises(LayoutError, match=r"mixes layouts: Anno_coarse/ holds list_category_cloth.txt, list_category_img.txt, "
                                          r"list_bbox.txt; Anno/ holds list_bbox.txt. Keep one of Anno_coarse/ or Anno/"):
        convert(root, tmp_path / "coco")


def test_two_image_folders_are_a_mix(tmp_path):
    root = make_root(tmp_path)
    (root / "img" / "Classic_Wrap_Skirt").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"mixes layouts: images under Img/img/ and img/"):
        detect_layout(root)


def test_partial_fine_set_names_what_it_lacks(tmp_path):
    root = fine_root(make_root(tmp_path))
    (root / "Anno_fine" / "val_bbox.txt").unlink()
    with pytest.raises(LayoutError, match=r"Anno_fine/ lacks val_bbox.txt"):
        detect_layout(root)


def test_coarse_lists_without_the_partition_are_an_error(tmp_path):
    root = make_root(tmp_path)
    (root / layout.EVAL_PARTITION).unlink()
    with pytest.raises(LayoutError, match=r"has Anno_coarse/ but no Eval/list_eval_partition.txt"):
        detect_layout(root)


def test_asking_for_a_set_the_root_lacks_is_an_error(tmp_path):
    root = make_root(tmp_path)
    with pytest.raises(LayoutError, match=r"annotations='fine' but .* has no Anno_fine/"):
        detect_layout(root, "fine")
    with pytest.raises(ValueError, match="annotations must be one of"):
        detect_layout(root, "medium")


def test_image_folder_holding_none_of_the_listed_images_is_an_error(tmp_path):
    root = make_root(tmp_path)
    (root / "Img").rename(root / "Img_other")
    (root / "Img" / "img" / "Unrelated_Folder").mkdir(parents=True)  # an Img/img/ without these images
    with pytest.raises(LayoutError, match=r"none of the 4 images named in Anno_coarse/list_category_img.txt is under "
                                          r".*/Img \(e.g. .*/Img/img/Sheer_Pleated-Front_Blouse/img_00000001.jpg does not exist"):
        convert(root, tmp_path / "coco")


# ----------------------------------------------------------------------------- the fine set's own bad input


def test_fine_files_of_different_lengths_name_file_and_line(tmp_path):
    root = fine_root(make_root(tmp_path), train=GOOD[:2])
    (root / "Anno_fine" / "train_cate.txt").write_text("3\n")  # one label for two images
    with pytest.raises(ListFileError, match=r"Anno_fine/train.txt:2: Anno_fine/train_cate.txt has 1 rows but "
                                            r"Anno_fine/train.txt has 2"):
        convert(root, tmp_path / "coco", ConvertOptions(annotations="fine"))


def test_fine_bad_box_line_names_file_and_line(tmp_path):
    root = fine_root(make_root(tmp_path), train=GOOD[:2])
    (root / "Anno_fine" / "train_bbox.txt").write_text("10 20 110 150\n0 0 200\n")
    with pytest.raises(ListFileError, match=r"train_bbox.txt:2: expected 4 fields"):
        convert(root, tmp_path / "coco", ConvertOptions(annotations="fine"))


def test_fine_image_in_two_splits_is_an_error(tmp_path):
    root = fine_root(make_root(tmp_path), train=GOOD[:1], test=GOOD[:1])
    with pytest.raises(ListFileError, match=r"Anno_fine/test.txt:1: img/Sheer_Pleated-Front_Blouse/img_00000001.jpg is "
                                            r"listed twice \(first at Anno_fine/train.txt:1\)"):
        convert(root, tmp_path / "coco", ConvertOptions(annotations="fine"))


def test_fine_unknown_label_is_skipped_with_the_label_files_line(tmp_path):
    bad = (GOOD[1][0], 0, GOOD[1][2], "train", GOOD[1][4])  # label 0: the labels are 1-based
    root = fine_root(make_root(tmp_path), train=(GOOD[0], bad), trailing="")
    summary = convert(root, tmp_path / "coco", ConvertOptions(annotations="fine")).summary
    assert summary["skipped_examples"]["unknown category label"] == [f"Anno_fine/train_cate.txt:2: {GOOD[1][0]}"]
    assert summary["images_kept"] == 2
