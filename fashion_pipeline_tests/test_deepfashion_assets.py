"""deepfashion_coco materialized through Dagster on a temporary data root and instance."""
from __future__ import annotations

import json

import dagster as dg
import pytest

from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.deepfashion import assets
from fashion_pipeline.deepfashion.resources import EmbeddedDeepFashionSample, LocalDeepFashion, source_from_env
from fashion_pipeline.deepfashion.layout import LayoutError
from fashion_pipeline_tests.test_deepfashion_convert import BAD, make_root
from fashion_pipeline_tests.test_deepfashion_layouts import fine_root


def materialize(tmp_path, source, config: dict):
    return dg.materialize(
        [assets.deepfashion_coco, assets.deepfashion_coco_valid],
        resources={"data_root": DataRoot(root=str(tmp_path / "data")), "deepfashion": source},
        run_config={"ops": {"deepfashion_coco": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )


@pytest.mark.slow
def test_materializes_the_embedded_sample_with_metadata(tmp_path):
    result = materialize(tmp_path, EmbeddedDeepFashionSample(), {"sample_images": 60, "preview_images": 4})
    assert result.success
    metadata = result.asset_materializations_for_node("deepfashion_coco")[0].metadata
    data = tmp_path / "data"
    summary = json.loads((data / "deepfashion_coco" / "summary.json").read_text())
    assert metadata["images_total"].value == 60 == summary["images_kept"]
    assert isinstance(metadata["train_images"].value, int)
    assert sum(metadata[f"{split}_images"].value for split in ("train", "val", "test")) == 60
    assert sum(metadata[f"{t}_boxes"].value for t in ("upper", "lower", "full")) == 60
    assert metadata["train_upper_boxes"].value + metadata["train_lower_boxes"].value + metadata["train_full_boxes"].value \
        == metadata["train_images"].value
    assert metadata["images_skipped"].value == 0 and metadata["skipped_missing_image_file"].value == 0
    assert metadata["preview"].value.startswith("![train images with boxes](data:image/")
    assert metadata["train_path"].value == "deepfashion_coco/train.json"
    assert (data / "deepfashion_sample" / "Anno_coarse" / "list_bbox.txt").is_file()
    assert metadata["layout"].value == "Anno_coarse/ + Eval/ + Img/img/ (today's download)"
    assert metadata["annotation_set"].value == "coarse" and metadata["image_dir"].value == "Img/img"
    train = json.loads((data / "deepfashion_coco" / "train.json").read_text())
    # the sample lies under the same data root: stored relative to deepfashion_coco/, so the root can move
    assert train["info"]["image_root"] == "../deepfashion_sample/Img"
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_materializes_a_real_root_and_reports_skips(tmp_path):
    root = make_root(tmp_path, BAD)
    result = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"split": "random", "seed": 1, "preview_images": 0})
    assert result.success
    metadata = result.asset_materializations_for_node("deepfashion_coco")[0].metadata
    assert metadata["split_mode"].value == "random"
    assert metadata["images_skipped"].value == 4
    assert metadata["skipped_bbox_outside_image"].value == 1
    assert metadata["skipped_missing_image_file"].value == 1
    assert metadata["skipped_unknown_category_label"].value == 1
    assert metadata["skipped_empty_bbox"].value == 1
    assert metadata["test_images"].value == 0 and metadata["train_images"].value == 3  # round(4 * 200000/289222)
    assert metadata["skipped_examples"].value["examples"]["missing image file"]
    assert "preview" not in metadata


def test_fail_policy_fails_the_run(tmp_path):
    root = make_root(tmp_path, BAD)
    with pytest.raises(Exception, match="rejected"):
        materialize(tmp_path, LocalDeepFashion(root=str(root)), {"on_bad": "fail"})


def test_real_root_without_list_files_is_a_clear_error(tmp_path):
    (tmp_path / "Downloads").mkdir()
    with pytest.raises(LayoutError, match=r"matches no published layout\. Found: Downloads/; expected one of: "
                                          r"Anno_coarse/ .*DEEPFASHION_ROOT"):
        LocalDeepFashion(root=str(tmp_path)).prepare(tmp_path, None)


def test_annotation_set_is_chosen_by_config_and_reported(tmp_path):
    root = make_root(tmp_path)
    fine_root(root)
    result = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"annotations": "fine", "preview_images": 0})
    metadata = result.asset_materializations_for_node("deepfashion_coco")[0].metadata
    assert metadata["annotation_set"].value == "fine" and metadata["annotation_dir"].value == "Anno_fine"
    assert metadata["layout"].value.startswith("Anno_fine/ + Img/img/")
    assert metadata["images_total"].value == 2  # the fine subset, not the coarse set's 4
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_source_is_chosen_by_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DEEPFASHION_ROOT", raising=False)
    assert isinstance(source_from_env(), EmbeddedDeepFashionSample)
    monkeypatch.setenv("DEEPFASHION_ROOT", str(tmp_path))
    assert isinstance(source_from_env(), LocalDeepFashion)
    assert isinstance(assets.resources()["deepfashion"], LocalDeepFashion)


def test_demo_config_is_valid_for_the_asset():
    config = assets.DEMO_RUN_CONFIG["ops"]["deepfashion_coco"]["config"]
    assert set(config) <= set(assets.DeepFashionCocoConfig.model_fields)
