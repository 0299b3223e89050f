"""deepfashion_coco materialized through Dagster on a temporary data root and instance."""
from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from fashion_pipeline.common import lineage
from fashion_pipeline.common.resources import DataRoot
from fashion_pipeline.deepfashion import assets
from fashion_pipeline.deepfashion.resources import EmbeddedDeepFashionSample, LocalDeepFashion, source_from_env
from fashion_pipeline.deepfashion.layout import LayoutError
from fashion_pipeline_tests.test_deepfashion_convert import BAD, GOOD, make_root
from fashion_pipeline_tests.test_deepfashion_layouts import fine_root


def materialize(tmp_path, source, config: dict, instance=None, raise_on_error=True):
    return dg.materialize(
        [assets.deepfashion_coco, assets.deepfashion_coco_valid],
        resources={"data_root": DataRoot(root=str(tmp_path / "data")), "deepfashion": source},
        run_config={"ops": {"deepfashion_coco": {"config": config}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def recorded_folder(tmp_path, result) -> Path:
    """The folder a materialization recorded, absolute (its metadata names it relative to the data root)."""
    metadata = result.asset_materializations_for_node("deepfashion_coco")[0].metadata
    return tmp_path / "data" / metadata["folder"].value


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.slow
def test_materializes_the_embedded_sample_with_metadata(tmp_path):
    result = materialize(tmp_path, EmbeddedDeepFashionSample(), {"sample_images": 60, "preview_images": 4})
    assert result.success
    metadata = result.asset_materializations_for_node("deepfashion_coco")[0].metadata
    data = tmp_path / "data"
    folder = metadata["folder"].value
    assert folder.startswith("deepfashion_coco/v/") and metadata["folder_reused"].value is False
    summary = json.loads((data / folder / "summary.json").read_text())
    assert metadata["images_total"].value == 60 == summary["images_kept"]
    assert isinstance(metadata["train_images"].value, int)
    assert sum(metadata[f"{split}_images"].value for split in ("train", "val", "test")) == 60
    assert sum(metadata[f"{t}_boxes"].value for t in ("upper", "lower", "full")) == 60
    assert metadata["train_upper_boxes"].value + metadata["train_lower_boxes"].value + metadata["train_full_boxes"].value \
        == metadata["train_images"].value
    assert metadata["images_skipped"].value == 0 and metadata["skipped_missing_image_file"].value == 0
    assert metadata["preview"].value.startswith("![train images with boxes](data:image/")
    assert metadata["train_path"].value == f"{folder}/train.json"
    assert (data / "deepfashion_sample" / "Anno_coarse" / "list_bbox.txt").is_file()
    assert metadata["layout"].value == "Anno_coarse/ + Eval/ + Img/img/ (today's download)"
    assert metadata["annotation_set"].value == "coarse" and metadata["image_dir"].value == "Img/img"
    train = json.loads((data / folder / "train.json").read_text())
    # the sample lies under the same data root: stored relative to the split files' folder, so the root can move
    assert train["info"]["image_root"] == "../../../deepfashion_sample/Img"
    assert (data / folder / train["info"]["image_root"]).resolve() == (data / "deepfashion_sample" / "Img").resolve()
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


# ---------------------------------------------------------------- issue 19: never overwrite a recorded materialization

def _versions(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "data" / "deepfashion_coco" / "v").iterdir())


def test_rerun_with_nothing_new_reuses_the_folder_and_writes_nothing(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    root = make_root(tmp_path)
    first = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"preview_images": 0}, instance)
    folder = recorded_folder(tmp_path, first)
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    second = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"preview_images": 2}, instance)  # preview only
    metadata = second.asset_materializations_for_node("deepfashion_coco")[0].metadata
    assert metadata["folder_reused"].value is True and recorded_folder(tmp_path, second) == folder
    assert _versions(tmp_path) == [folder.name]  # no new folder, no staging left
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == stamps  # nothing rewritten
    assert metadata["train_sha256"].value == first.asset_materializations_for_node("deepfashion_coco")[0].metadata[
        "train_sha256"].value
    # an image replaced (same name, other bytes) is new input: a new folder, the old one kept
    image = root / "Img" / "img" / "Classic_Wrap_Skirt" / "img_00000001.jpg"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    third = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"preview_images": 0}, instance)
    assert recorded_folder(tmp_path, third) != folder and len(_versions(tmp_path)) == 2
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == stamps


def _missing_images(entries):
    return [(name, label, box, status, None) for name, label, box, status, _ in entries]  # listed, no file


def _empty_boxes(entries):
    return [(name, label, (10, 10, 10, 10), status, size) for name, label, _, status, size in entries]


@pytest.mark.slow
def test_a_root_with_every_image_missing_fails_and_leaves_the_good_files(tmp_path):
    """Issue 19's "done when": after a good materialization, a run on a root where every image is missing fails,
    the files the good materialization names are byte-identical, and the detector still trains on them."""
    from fashion_pipeline.detector.assets import current_training_data

    instance = dg.DagsterInstance.ephemeral()
    good = materialize(tmp_path, EmbeddedDeepFashionSample(), {"sample_images": 60, "preview_images": 0}, instance)
    folder = recorded_folder(tmp_path, good)
    before = file_bytes(folder)
    missing = make_root(tmp_path / "missing", _missing_images(GOOD))
    (missing / "Img" / "img" / "Floral_Slit_Dress").mkdir(parents=True, exist_ok=True)  # folders there, images not
    failed = materialize(tmp_path, LocalDeepFashion(root=str(missing)), {"preview_images": 0}, instance,
                         raise_on_error=False)
    assert not failed.success
    assert "none of the 4 images named in" in str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert file_bytes(folder) == before
    assert _versions(tmp_path) == [folder.name]  # the failed run's staging folder is gone
    data_root = tmp_path / "data"
    assert lineage.latest(instance, "deepfashion_coco").run_id == good.run_id  # the failed run recorded nothing
    # lineage's rule (issue 19.2, test_lineage_checks): the failed run's check is PLANNED, but that run
    # materialized nothing, so its record is about no materialization: the good one stays usable as it was
    recorded = current_training_data(instance, data_root)  # checks passed on it, sha256 verified
    assert recorded.run_id == good.run_id and recorded.path(data_root, "train_path").parent == folder
    assert file_bytes(folder) == before


def test_a_recorded_materialization_whose_check_fails_is_refused_and_the_old_files_stay(tmp_path):
    """The latest materialization is recorded, then its blocking check fails (every box empty: train is empty).
    The earlier folder is untouched, and the detector refuses the latest one, naming the check, rather than
    reading another."""
    from fashion_pipeline.detector.assets import current_training_data

    instance = dg.DagsterInstance.ephemeral()
    good = materialize(tmp_path, LocalDeepFashion(root=str(make_root(tmp_path / "good"))), {"preview_images": 0}, instance)
    folder = recorded_folder(tmp_path, good)
    before = file_bytes(folder)
    bad = make_root(tmp_path / "bad", _empty_boxes(GOOD))
    result = materialize(tmp_path, LocalDeepFashion(root=str(bad)), {"preview_images": 0}, instance, raise_on_error=False)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and "train split is empty" in check.metadata["problems"].value
    latest_folder = recorded_folder(tmp_path, result)
    assert latest_folder != folder and check.metadata["folder"].value == str(latest_folder.relative_to(tmp_path / "data"))
    assert file_bytes(folder) == before
    with pytest.raises(dg.Failure, match=r"check 'deepfashion_coco_valid' failed in run " + result.run_id):
        current_training_data(instance, tmp_path / "data")


def test_a_crash_while_writing_leaves_no_folder_behind(tmp_path, monkeypatch):
    from fashion_pipeline.deepfashion import convert as convert_module

    instance = dg.DagsterInstance.ephemeral()
    root = make_root(tmp_path)
    good = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"preview_images": 0}, instance)
    folder = recorded_folder(tmp_path, good)
    before = file_bytes(folder)
    written = []

    def crash_after_train(path, text):  # the run dies after writing train.json into its staging folder
        written.append(Path(path))
        if Path(path).name == "val.json":
            raise OSError("disk full")
        Path(path).write_text(text)
        return Path(path)

    monkeypatch.setattr(convert_module, "write_text", crash_after_train)
    result = materialize(tmp_path, LocalDeepFashion(root=str(root)), {"split": "random", "preview_images": 0}, instance,
                         raise_on_error=False)
    assert not result.success and written[0].parent.name.startswith(".staging-")
    assert _versions(tmp_path) == [folder.name] and file_bytes(folder) == before
