"""tryon_showcase: the plain module (printing, runway inputs, scores, grid, bad input) and the asset through Dagster
on a tiny data root whose upstream records point at a generated pair set, a 2-step model and an untrained
pattern generator."""
from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.common.fingerprint import file_sha256
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.garments import grabcut
from fashion_pipeline.synthetic import tryon as synthetic_tryon
from fashion_pipeline.synthetic.parse import CIHP, UPPER_GARMENT_IDS
from fashion_pipeline.tryon import layout, showcase
from fashion_pipeline_tests.records import assert_light_metadata, record, record_check

HEIGHT, WIDTH = 64, 48


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs") / "dataset"
    synthetic_tryon.write_dataset(root, synthetic_tryon.Spec(HEIGHT, WIDTH, 6, 4, 0))
    return root


def _checker(side=16):
    pattern = np.zeros((side, side, 3), np.uint8)
    pattern[: side // 2, : side // 2] = pattern[side // 2:, side // 2:] = (250, 20, 20)
    pattern[: side // 2, side // 2:] = pattern[side // 2:, : side // 2] = (20, 20, 250)
    return pattern


class PastePredictor:
    """Stands in for a trained model: the product pasted where its mask is (an identity warp)."""

    def run(self, sample):
        mask = sample.cloth_mask
        return {"output": np.where(mask[..., None], sample.cloth, sample.person).astype(np.uint8),
                "warped_mask": mask.astype(np.float32)}


def _runway_crop(folder, name="look", side=120, mask_side=None):
    """A square 'crop': grey background, a skin-coloured head and arms, a green dress; and its garment mask."""
    image = np.full((side, side, 3), 120, np.uint8)
    skin = (224, 172, 140)
    image[5:25, 50:70] = skin  # head
    image[30:80, 30:40] = image[30:80, 80:90] = skin  # arms
    mask = np.zeros((side, side), bool)
    mask[25:110, 40:80] = True
    image[mask] = (30, 160, 60)
    crop, mask_path = folder / f"{name}.png", folder / f"{name}_mask.png"
    Image.fromarray(image).save(crop)
    if mask_side:
        mask = np.zeros((mask_side, mask_side), bool)
        mask[2:10, 2:10] = True
    grabcut.write_mask(mask_path, mask)
    return crop, mask_path


def test_printing_stays_inside_the_product_mask(pairs_root):
    sample = layout.Layout(pairs_root, "test", HEIGHT, WIDTH).load(layout.read_pairs(pairs_root, "test")[0])
    printed = showcase.print_garment(sample.cloth, sample.cloth_mask, _checker(), 0.2)
    assert printed.shape == sample.cloth.shape and printed.dtype == np.uint8
    assert np.array_equal(printed[~sample.cloth_mask], sample.cloth[~sample.cloth_mask])  # white stays white
    changed = np.abs(printed.astype(int) - sample.cloth.astype(int)).max(axis=2) > 0
    assert changed[sample.cloth_mask].mean() > 0.5  # the print covers the garment
    inside = printed[sample.cloth_mask].astype(int)
    assert (inside[:, 0] - inside[:, 2] > 80).any() and (inside[:, 2] - inside[:, 0] > 80).any()  # both colours


def test_the_template_is_the_training_persons_mean(pairs_root):
    template = showcase.Template.from_split(pairs_root, HEIGHT, WIDTH)
    assert template.keypoints.shape == (25, 3) and (template.height, template.width) == (HEIGHT, WIDTH)
    cx, top, width = template.anchor
    assert 0.3 * WIDTH < cx < 0.7 * WIDTH and 0 < top < template.hip_y < HEIGHT and 0 < width < WIDTH
    assert template.keypoints[1, 1] < template.hip_y  # the neck above the hips


def test_a_runway_crop_becomes_an_aligned_sample_with_a_parse(pairs_root, tmp_path):
    template = showcase.Template.from_split(pairs_root, HEIGHT, WIDTH)
    crop, mask = _runway_crop(tmp_path)
    made = showcase.runway_input(crop, mask, template, "look", "manifest row 0")
    sample = made.sample
    assert sample.person.shape == (HEIGHT, WIDTH, 3) and sample.parse.shape == (HEIGHT, WIDTH)
    assert np.array_equal(sample.keypoints, template.keypoints) and sample.truth is None
    aligned = showcase.garment_anchor(made.garment)
    assert abs(aligned[0] - template.anchor[0]) <= 1.5 and abs(aligned[1] - template.anchor[1]) <= 1.5
    assert abs(aligned[2] - template.anchor[2]) <= 2.5  # the garment's top band as wide as the training persons'
    assert np.array_equal(made.upper, np.isin(sample.parse, UPPER_GARMENT_IDS)) and made.upper.any()
    assert (sample.parse == CIHP["pants"]).any()  # the dress below the hip line
    assert np.isin(sample.parse, (CIHP["left_arm"], CIHP["right_arm"])).any()  # the skin beside it
    assert not (sample.parse[~made.garment] == CIHP["upper_clothes"]).any()


def test_bad_runway_input_names_the_file(pairs_root, tmp_path):
    template = showcase.Template.from_split(pairs_root, HEIGHT, WIDTH)
    crop, mask = _runway_crop(tmp_path)
    with pytest.raises(showcase.ShowcaseError, match="missing.png.*not a readable image.*row 3"):
        showcase.runway_input(tmp_path / "missing.png", mask, template, "x", "manifest row 3")
    with pytest.raises(showcase.ShowcaseError, match="gone.png: garment mask missing"):
        showcase.runway_input(crop, tmp_path / "gone.png", template, "x", "row 1")
    small, small_mask = _runway_crop(tmp_path, "small", mask_side=60)
    with pytest.raises(showcase.ShowcaseError, match="small_mask.png: mask is 60x60 but its crop small.png is 120x120"):
        showcase.runway_input(small, small_mask, template, "x", "row 2")
    empty = tmp_path / "empty_mask.png"
    grabcut.write_mask(empty, np.zeros((120, 120), bool))
    with pytest.raises(showcase.ShowcaseError, match="empty_mask.png.*empty"):
        showcase.runway_input(crop, empty, template, "x", "row 4")
    manifest = tmp_path / "not_masks.parquet"
    pd.DataFrame({"image_id": ["a"]}).to_parquet(manifest)
    with pytest.raises(showcase.ShowcaseError, match="not_masks.parquet: no column"):
        showcase.runway_choices(manifest, tmp_path, 2, 0.0)


def test_change_scores_say_where_the_output_changed():
    person = np.full((20, 16, 3), 100, np.uint8)
    garment = np.zeros((20, 16), bool)
    garment[5:15, 4:12] = True
    same = showcase.change_scores(person, person, garment, 1)
    assert same["changed_share"] == 0 and same["mean_change_outside"] == 0
    inside = person.copy()
    inside[garment] = 200
    assert showcase.change_scores(person, inside, garment, 1)["changed_in_garment"] == 1.0
    outside = person.copy()
    outside[0:2] = 200  # rows far from the garment
    scores = showcase.change_scores(person, outside, garment, 1)
    assert scores["changed_in_garment"] == 0.0 and scores["mean_change_outside"] > 0


def test_the_showcase_rows_grid_and_files(pairs_root, tmp_path):
    crop, mask = _runway_crop(tmp_path)
    patterns = [("checks", _checker(), 0.2), ("stripes", np.repeat(_checker()[:, :1], 16, axis=1), 0.2)]
    runway = [(crop, mask, "look", "manifest row 0")]
    rows = showcase.make_showcase(PastePredictor(), pairs_root, HEIGHT, patterns, runway,
                                  showcase.ShowcaseSettings(persons=3))
    assert [row.kind for row in rows] == ["person"] * 3 + ["runway"]
    assert [row.pattern_label for row in rows] == ["checks", "stripes", "checks", "stripes"]  # every category shows
    assert all(tile.shape == (HEIGHT, WIDTH, 3) for row in rows for tile in row.tiles)
    for row in rows[:3]:  # a pasted product: the warped mask is the product's, so its IoU with the truth is low
        assert 0 <= row.scores["warp_iou_truth"] <= 1 and 0 <= row.scores["warp_iou_old_garment"] <= 1
    assert "warp_iou_truth" not in rows[3].scores  # no truth for a runway crop
    result = showcase.write(rows, tmp_path / "out")
    assert result["summary"]["person"]["rows"] == 3 and result["summary"]["runway"]["rows"] == 1
    with Image.open(tmp_path / "out" / "grid.png") as picture:
        block = 4 * (2 * WIDTH + 2) + 2  # the persons' block and the runway block side by side
        assert picture.size == (2 * block + 12, 16 + 3 * (2 * HEIGHT + 2) + 2)
    assert len(list((tmp_path / "out" / "rows").glob("*.png"))) == 16


# ---------------------------------------------------------------- through Dagster

def _untrained_generator(path):
    import torch

    from fashion_pipeline.gan import dcgan

    torch.manual_seed(0)
    generator = dcgan.Generator(nz=10, ngf=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": generator.state_dict(), "nz": 10, "ngf": 8, "image_size": 64}, path)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """A data root as the upstream assets leave it: generated pairs, a 2-step viton model (the trainer's CLI), an
    untrained pattern generator and a garment_masks folder with one crop."""
    root = tmp_path_factory.mktemp("showcase_root")
    pairs_folder = "tryon_pairs/v/p1/dataset"
    synthetic_tryon.write_dataset(root / pairs_folder, synthetic_tryon.Spec(HEIGHT, WIDTH, 4, 3, 0))
    model_dir = root / "tryon_model" / "viton" / "v" / "m1"
    subprocess.run([sys.executable, "-m", "fashion_pipeline.tryon.train", "--root", str(root / pairs_folder),
                    "--height", str(HEIGHT), "--out", str(model_dir), "--method", "viton", "--steps", "2",
                    "--gmm-steps", "2", "--batch-size", "2", "--ngf", "4", "--max-channels", "16",
                    "--agnostic-image", "true", "--threads", "1", "--device", "cpu"], check=True, capture_output=True)
    generator = root / "pattern_dcgan" / "checks" / "v" / "g1" / "generator.pt"
    _untrained_generator(generator)
    masks = root / "garment_masks" / "v" / "k1"
    (masks / "masks").mkdir(parents=True)
    crop, mask = _runway_crop(masks / "masks")
    manifest = masks / "manifest.parquet"
    pd.DataFrame({"image_id": ["look"], "crop_path": [str(crop.relative_to(root))],
                  "mask_path": [str(mask.relative_to(root))], "area_fraction": [0.24],
                  "skip_reason": [""]}).to_parquet(manifest)
    return {"root": root, "pairs": root / pairs_folder, "model": model_dir / "model.pt", "generator": generator,
            "manifest": manifest}


def test_the_command_line_writes_the_grid_and_scores(upstream, tmp_path):
    out = tmp_path / "out"
    assert showcase.main(["--pairs-root", str(upstream["pairs"]), "--height", str(HEIGHT), "--model",
                          str(upstream["model"]), "--generator", f"checks={upstream['generator']}:0.15",
                          "--masks-manifest", str(upstream["manifest"]), "--data-root", str(upstream["root"]),
                          "--persons", "2", "--crops", "1", "--out", str(out)]) == 0
    result = json.loads((out / "scores.json").read_text())
    assert [row["kind"] for row in result["rows"]] == ["person", "person", "runway"]
    assert all(row["pattern"] == "checks" for row in result["rows"]) and (out / "grid.png").is_file()


def _records(upstream):
    """What tryon_pairs, tryon_model[viton], pattern_dcgan[checks] and garment_masks would have recorded."""
    root = upstream["root"]
    instance = dg.DagsterInstance.ephemeral()
    record(instance, "tryon_pairs", {"dataset_root": str(upstream["pairs"].relative_to(root)), "height": HEIGHT,
                                     "width": WIDTH}, data_version="pairs-v1")
    record_check(instance, "tryon_pairs", "tryon_pairs_valid", True)
    model = upstream["model"]
    record(instance, "tryon_model", {"model": str(model.relative_to(root)), "model_sha256": file_sha256(model)},
           partition="viton", data_version="model-v1")
    record_check(instance, "tryon_model", "tryon_model_finite_losses", True, partition="viton")
    generator = upstream["generator"]
    record(instance, "pattern_dcgan", {"generator": str(generator.relative_to(root)),
                                       "generator_sha256": file_sha256(generator), "print_fraction": 0.15},
           partition="checks", data_version="generator-v1")
    record_check(instance, "pattern_dcgan", "finite_losses", True, partition="checks")
    manifest = upstream["manifest"]
    record(instance, "garment_masks", {"manifest": str(manifest.relative_to(root)),
                                       "manifest_sha256": file_sha256(manifest)}, data_version="masks-v1")
    record_check(instance, "garment_masks", "masks_not_degenerate", True)
    return instance


def _materialize(instance, root, **config):
    from fashion_pipeline.tryon import showcase_assets

    return dg.materialize([showcase_assets.tryon_showcase], instance=instance, resources={"data_root": DataRoot(root=str(root))},
                          run_config={"ops": {"tryon_showcase": {"config": {"persons": 2, "crops": 1, **config}}}},
                          raise_on_error=False)


def test_the_asset_publishes_its_folder_records_versions_and_reuses_it(upstream):
    root = upstream["root"]
    instance = _records(upstream)
    result = _materialize(instance, root)
    assert result.success
    assert_light_metadata(result)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("tryon_showcase")[0].metadata.items()}
    assert meta["folder"].startswith("tryon_showcase/v/") and not meta["folder_reused"]
    assert meta["person_rows"] == 2 and meta["runway_rows"] == 1 and meta["method"] == "viton"
    assert meta["pattern_versions"] == {"checks": "generator-v1"} and meta["garment_masks_version"] == "masks-v1"
    assert 0 <= meta["person_warp_iou_truth"] <= 1 and 0 <= meta["runway_changed_in_garment"] <= 1
    assert "base64" in meta["preview"] and "synthetic" in meta["transfer"]
    folder = root / meta["folder"]
    with Image.open(folder / "grid.png") as picture:
        assert picture.size[0] == 2 * (4 * (2 * WIDTH + 2) + 2) + 12
    again = _materialize(instance, root)
    meta_again = {k: v.value for k, v in again.asset_materializations_for_node("tryon_showcase")[0].metadata.items()}
    assert meta_again["folder"] == meta["folder"] and meta_again["folder_reused"]  # same inputs: the same folder

    refused = _materialize(instance, root, method="cagan")
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "y_i" in failure.event_specific_data.error.message
