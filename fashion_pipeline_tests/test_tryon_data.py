"""The synthetic try-on generator and the VITON-HD layout reader, with each bad input users make."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_pipeline.synthetic import figures
from fashion_pipeline.synthetic import tryon as synthetic
from fashion_pipeline.synthetic.parse import CIHP, UPPER_GARMENT_IDS, parse_image
from fashion_pipeline.tryon import layout

FIXTURE = Path(__file__).parent / "fixtures" / "real" / "tryon" / "00891_00_keypoints.json"
H, W = 64, 48


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tryon")
    summary = synthetic.write_dataset(root, synthetic.Spec(H, W, train=10, test=8, seed=3))
    return root, summary


def test_same_person_in_two_garments_differs_only_where_the_garments_are():
    rng = np.random.default_rng(0)
    person = synthetic.random_person(rng, 128, 96)
    a = synthetic.dress(person, synthetic.random_garment(rng, 128, 96, style="tank", kind="stripes"))
    b = synthetic.dress(person, synthetic.random_garment(rng, 128, 96, style="sweater", kind="dots"))
    same_label = (a.parse == b.parse) & ~np.isin(a.parse, UPPER_GARMENT_IDS)
    assert same_label.mean() > 0.7
    np.testing.assert_array_equal(a.image[same_label], b.image[same_label])  # identity kept, bit for bit
    garment = np.isin(b.parse, UPPER_GARMENT_IDS)
    assert np.abs(a.image[garment].astype(int) - b.image[garment].astype(int)).mean() > 20
    # the sweater's long sleeves cover arm pixels that the tank leaves bare
    arms = np.isin(a.parse, (CIHP["left_arm"], CIHP["right_arm"])) & garment
    assert arms.sum() > 50


def test_the_true_warp_maps_worn_pixels_onto_the_product():
    rng = np.random.default_rng(1)
    person = synthetic.random_person(rng, 128, 96)
    garment = synthetic.random_garment(rng, 128, 96, style="tee", kind="checks")
    dressed = synthetic.dress(person, garment)
    _, product_mask = synthetic.product_image(garment, 128, 96)
    ys, xs = np.nonzero(dressed.parse == CIHP["upper_clothes"])
    mapped = synthetic.fit_tps(*dressed.warp)(np.stack([xs, ys], axis=1).astype(float))
    inside = product_mask[np.clip(np.rint(mapped[:, 1]).astype(int), 0, 127), np.clip(np.rint(mapped[:, 0]).astype(int), 0, 95)]
    assert inside.mean() > 0.9  # worn pixels sample the product, not the white around it


def test_keypoints_are_body_25_in_order_and_person_left_is_image_right():
    rng = np.random.default_rng(2)
    person = synthetic.random_person(rng, 128, 96)
    points = synthetic.keypoints(person.body, 128, 96)
    assert points.shape == (25, 3)
    names = synthetic.BODY_25
    assert names[2] == "RShoulder" and names[5] == "LShoulder" and names[8] == "MidHip" and names[24] == "RHeel"
    assert points[2, 0] < points[1, 0] < points[5, 0]  # facing the camera: the right shoulder on the image's left
    assert points[0, 1] < points[1, 1] < points[8, 1]  # nose above neck above mid-hip
    assert (points[11] == 0).all()  # ankles out of a waist-to-thigh frame: written as 0, 0, 0 like OpenPose


def test_splits_have_disjoint_persons_and_garments_and_every_test_pair_has_its_truth(dataset):
    root, summary = dataset
    names = {split: {p.name for p in (root / split / "image").glob("*.jpg") if "__" not in p.name} for split in ("train", "test")}
    assert names["train"].isdisjoint(names["test"])
    cloth = {split: {p.name for p in (root / split / "cloth").glob("*.jpg")} for split in ("train", "test")}
    assert cloth["train"].isdisjoint(cloth["test"])
    test_pairs = layout.read_pairs(root, "test")
    assert all(not pair.paired for pair in test_pairs)
    reader = layout.Layout(root, "test", H, W)
    assert all(reader.truth_files(pair) is not None for pair in test_pairs)
    assert all(pair.paired for pair in layout.read_pairs(root, "train"))
    assert summary["counts"]["test"]["pairs"] == 8


def test_garments_vary_enough_that_copying_the_input_scores_badly():
    spec_rng = np.random.default_rng(5)
    garments = [synthetic.random_garment(spec_rng, 64, 48) for _ in range(40)]
    assert len({g.shape.style for g in garments}) >= 4 and len({g.kind for g in garments}) >= 4
    from fashion_pipeline.tryon import metrics

    rng = np.random.default_rng(6)
    scores = []
    for _ in range(12):
        person = synthetic.random_person(rng, 128, 96)
        a = synthetic.dress(person, synthetic.random_garment(rng, 128, 96))
        b = synthetic.dress(person, synthetic.random_garment(rng, 128, 96))
        region = metrics.changed_region(a.parse, b.parse, UPPER_GARMENT_IDS)
        scores.append(metrics.ssim(a.image, b.image, region))
    assert np.mean(scores) < 0.3


def test_reader_loads_a_pair_at_the_configured_4_3_size(dataset):
    root, _ = dataset
    pair = layout.read_pairs(root, "test")[0]
    sample = layout.Layout(root, "test", 32, 24).load(pair)
    assert sample.person.shape == (32, 24, 3) and sample.cloth.shape == (32, 24, 3)
    assert sample.parse.shape == (32, 24) and sample.cloth_mask.dtype == bool and sample.cloth_mask.any()
    assert set(np.unique(sample.parse)) <= set(range(20)) and CIHP["upper_clothes"] in sample.parse
    assert sample.keypoints[1, 0] < 24 and sample.truth.shape == (32, 24, 3)
    assert sample.truth_warp["person_points"].max() < 48  # rescaled with the pictures
    with pytest.raises(ValueError, match="4:3"):
        layout.Layout(root, "test", 32, 32)


def test_the_real_viton_hd_keypoint_file_reads_as_body_25():
    points = layout.read_keypoints(FIXTURE)
    assert points.shape == (25, 3)
    assert points[2, 0] < points[5, 0]  # RShoulder on the image's left, as in our generator
    assert (points[4] == 0).all()  # an undetected wrist: 0, 0, 0


@pytest.fixture
def broken(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset[0], root)
    pairs = layout.read_pairs(root, "test")
    return root, pairs, layout.Layout(root, "test", H, W)


def _error(reader, pair) -> layout.LayoutError:
    with pytest.raises(layout.LayoutError) as info:
        reader.load(pair)
    return info.value


def test_rgb_parse_is_refused_naming_the_file(broken):
    root, pairs, reader = broken
    path = root / "test" / "image-parse" / f"{pairs[0].person_stem}.png"
    Image.open(path).convert("RGB").save(path)
    error = _error(reader, pairs[0])
    assert error.reason == "parse_not_palette" and str(path) in str(error) and "mode RGB" in str(error)


def test_coco_18_keypoints_and_the_old_key_are_refused(broken):
    root, pairs, reader = broken
    path = root / "test" / "openpose-json" / f"{pairs[0].person_stem}_keypoints.json"
    data = json.loads(path.read_text())
    data["people"][0]["pose_keypoints_2d"] = data["people"][0]["pose_keypoints_2d"][:54]
    path.write_text(json.dumps(data))
    error = _error(reader, pairs[0])
    assert error.reason == "coco_18_keypoints" and str(path) in str(error) and "BODY_25" in str(error)
    data["people"][0]["pose_keypoints"] = data["people"][0].pop("pose_keypoints_2d")
    path.write_text(json.dumps(data))
    assert _error(reader, pairs[0]).reason == "old_pose_key"


def test_missing_cloth_mask_and_a_pair_naming_an_absent_file(broken):
    root, pairs, reader = broken
    (root / "test" / "cloth-mask" / pairs[0].cloth).unlink()
    error = _error(reader, pairs[0])
    assert error.reason == "missing_cloth_mask" and pairs[0].cloth in str(error) and "line 1" in str(error)
    with open(root / "test_pairs.txt", "a") as handle:
        handle.write("99999_00.jpg 00010_00.jpg\n")
    ghost = layout.read_pairs(root, "test")[-1]
    error = _error(reader, ghost)
    assert error.reason == "missing_image" and "99999_00.jpg" in str(error) and f"line {ghost.line}" in str(error)


def test_mismatched_sizes_and_non_4_3_pictures(broken):
    root, pairs, reader = broken
    parse_path = root / "test" / "image-parse" / f"{pairs[1].person_stem}.png"
    parse_image(np.zeros((H * 2, W * 2), np.uint8)).save(parse_path)
    error = _error(reader, pairs[1])
    assert error.reason == "size_mismatch" and str(parse_path) in str(error)
    image_path = root / "test" / "image" / pairs[2].person
    Image.new("RGB", (W, W)).save(image_path)
    error = _error(reader, pairs[2])
    assert error.reason == "not_4_3" and str(image_path) in str(error)


def test_validation_counts_every_bad_pair_by_reason(broken):
    root, pairs, reader = broken
    (root / "test" / "cloth-mask" / pairs[0].cloth).unlink()
    path = root / "test" / "image-parse" / f"{pairs[3].person_stem}.png"
    Image.open(path).convert("RGB").save(path)
    result = layout.validate(reader, layout.read_pairs(root, "test"))
    assert result.pairs == 8 and result.usable == 6
    assert result.by_reason == {"missing_cloth_mask": 1, "parse_not_palette": 1}
    assert result.bad_share == pytest.approx(0.25)


def test_figures_body_helpers_used_by_the_generator_still_exist():
    # the generator draws with figures' private helpers; a rename there must fail here, not in the demo
    for name in ("_limb_polygon", "_torso_band", "_ellipse", "_draw_upper_part", "_draw_sleeves", "_draw_legwear"):
        assert callable(getattr(figures, name))


def test_a_folder_under_the_hr_viton_release_name_is_named_in_the_error(broken):
    root, pairs, reader = broken
    (root / "test" / "openpose-json").rename(root / "test" / "openpose_json")
    error = _error(reader, pairs[0])
    assert error.reason == "folder_named_differently" and "openpose_json/" in str(error)
    assert str(root / "test" / "openpose-json") in str(error)
