"""Detector training tests on tiny images: every backbone trains a step and evaluates, a stopped
run resumes exactly, and the fashion_detector asset runs the CLI through Dagster Pipes."""
from __future__ import annotations

import json

import dagster as dg
import pytest
import torch

from fashion_pipeline.common.fingerprint import combine, file_sha256
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset
from fashion_pipeline.detector.evaluate import METRIC_KEYS, evaluate_model
from fashion_pipeline.detector.inference import load_detector, predict
from fashion_pipeline.detector.model import THESIS_BACKBONES, DetectorSpec, build_detector
from fashion_pipeline.detector.train import main as train_main
from fashion_pipeline_tests.detector_fixtures import TINY_MODEL_ARGS, TINY_SPEC, write_tiny_coco
from fashion_pipeline_tests.records import record, record_check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), train=8, val=4)


@pytest.mark.parametrize("backbone", THESIS_BACKBONES)
def test_each_thesis_backbone_trains_a_step_and_evaluates(backbone, coco_dir, tmp_path):
    torch.manual_seed(0)
    model = build_detector(DetectorSpec(backbone=backbone, norm="bn", trainable_backbone_layers=5, **TINY_SPEC))
    solver = engine.SolverConfig(max_iter=1, batch_size=2, num_workers=0, log_period=1, warmup_iters=0)
    dataset = CocoDetectionDataset(coco_dir / "train.json")
    before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    state = engine.train(model, dataset, solver, torch.device("cpu"), tmp_path, {"model_spec": {}})
    assert state.iteration == 1 and math_finite(state.history[-1]["loss"])
    assert not torch.equal(before, model.roi_heads.box_predictor.cls_score.weight)
    assert (tmp_path / engine.CHECKPOINT_NAME).is_file()
    metrics = evaluate_model(model, coco_dir / "val.json", torch.device("cpu"), batch_size=4)
    assert set(METRIC_KEYS) <= set(metrics) and all(-1.0 <= metrics[key] <= 1.0 for key in METRIC_KEYS)


def math_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _train_cli(coco_dir, output_dir, *extra):
    train_main(["--coco-dir", str(coco_dir), "--output-dir", str(output_dir), "--backbone", "resnet18", *TINY_MODEL_ARGS,
                "--max-iter", "4", "--batch-size", "2", "--num-workers", "0", "--log-period", "1",
                "--checkpoint-period", "1", "--warmup-iters", "2", "--base-lr", "0.01", "--lr-steps", "3", *extra])


def test_a_stopped_run_resumes_where_it_stopped(coco_dir, tmp_path):
    _train_cli(coco_dir, tmp_path / "straight")
    _train_cli(coco_dir, tmp_path / "resumed", "--stop-after", "2")
    stopped = torch.load(tmp_path / "resumed" / engine.CHECKPOINT_NAME, weights_only=False)
    assert stopped["state"]["iteration"] == 2 and not (tmp_path / "resumed" / "model_final.pt").exists()
    assert stopped["scheduler"]["last_epoch"] == 2 and stopped["optimizer"]["state"]  # momentum buffers saved
    _train_cli(coco_dir, tmp_path / "resumed")

    straight = torch.load(tmp_path / "straight" / engine.CHECKPOINT_NAME, weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / engine.CHECKPOINT_NAME, weights_only=False)
    assert resumed["state"]["iteration"] == 4 and resumed["scheduler"]["last_epoch"] == 4
    assert [w["iteration"] for w in resumed["state"]["history"]] == [1, 2, 3, 4]
    for name, tensor in straight["model"].items():  # same batches, flips, RNG and optimizer state
        assert torch.allclose(tensor.float(), resumed["model"][name].float(), atol=1e-6), name
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["resumed_from_iteration"] == 2 and metrics["iterations"] == 4


def test_changed_settings_restart_instead_of_resuming(coco_dir, tmp_path):
    _train_cli(coco_dir, tmp_path, "--stop-after", "1")
    _train_cli(coco_dir, tmp_path, "--base-lr", "0.005")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["resumed_from_iteration"] == 0 and metrics["iterations"] == 4


def test_predict_returns_boxes_in_original_pixels(coco_dir, tmp_path):
    _train_cli(coco_dir, tmp_path, "--box-score-thresh", "0.0")
    model = load_detector(tmp_path / "model_final.pt", "cpu")
    image = coco_dir / "img" / "val_01000.jpg"
    from PIL import Image

    big = Image.open(image).resize((240, 288))  # 3x the val image: boxes must follow, not stay at network size
    results = predict(model, [image, big], "cpu", batch_size=2)
    assert len(results) == 2
    for result, (width, height) in zip(results, [(80, 96), (240, 288)]):
        assert result["boxes"].dtype.name == "float32" and result["boxes"].shape[1:] == (4,)
        assert set(result["labels"].tolist()) <= {1, 2, 3}
        assert (result["boxes"][:, 2] <= width + 1e-3).all() and (result["boxes"][:, 3] <= height + 1e-3).all()
    assert len(results[1]["boxes"]) and results[1]["boxes"][:, 2].max() > 96  # uses the big image's range
    assert hasattr(model, "backbone")


TINY_TRAINING = {"max_iter": 3, "batch_size": 2, "num_workers": 0, "log_period": 1, "checkpoint_period": 2,
                 "warmup_iters": 1, "base_lr": 0.01, "lr_steps": [2], "min_size": 64, "max_size": 96, "fpn_channels": 32,
                 "returned_layers": [2, 3, 4], "representation_size": 64, "rpn_pre_nms_top_n_train": 100,
                 "rpn_post_nms_top_n_train": 50, "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20,
                 "box_batch_size_per_image": 32}


def _record_coco(instance, data_root, train: int, val: int, seed_shift: int = 0) -> str:
    """Write a tiny deepfashion_coco and record it as the asset would: paths, sha256 per split, data version."""
    coco = write_tiny_coco(data_root / "deepfashion_coco", train=train, val=val)
    digests = {split: file_sha256(coco / f"{split}.json") for split in ("train", "val")}
    version = combine(digests.values())
    record(instance, "deepfashion_coco", {"train_path": "deepfashion_coco/train.json", "val_path": "deepfashion_coco/val.json",
                                          "train_sha256": digests["train"], "val_sha256": digests["val"]},
           data_version=version)
    record_check(instance, "deepfashion_coco", "deepfashion_coco_valid", True)  # a check that passed on this one
    return version


def _stale_status(instance, key: str):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest
    from fashion_pipeline.definitions import defs

    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return resolver.get_status(dg.AssetKey(key), "resnet18")


def _detector_resources(data_root):
    from fashion_pipeline.detector import assets

    return {"data_root": DataRoot(root=str(data_root)), "compute": ComputeDevice(device="cpu"), **assets.resources()}


def _train(instance, data_root):
    from fashion_pipeline.detector import assets

    return dg.materialize([assets.fashion_detector], partition_key="resnet18", instance=instance,
                          resources=_detector_resources(data_root), run_config={"ops": {"fashion_detector": {"config": TINY_TRAINING}}})


def test_fashion_detector_and_best_detector_materialize_through_pipes(tmp_path):
    from fashion_pipeline.detector import assets

    data_root = tmp_path / "data"
    instance = dg.DagsterInstance.ephemeral()
    _record_coco(instance, data_root, train=8, val=4)
    result = _train(instance, data_root)
    assert result.success
    metadata = result.asset_materializations_for_node("fashion_detector")[0].metadata
    for key in METRIC_KEYS + ("AP_upper", "AP_lower", "AP_full", "training_seconds", "train_images_per_s"):
        assert isinstance(metadata[key], dg.FloatMetadataValue), key
    assert "Average Precision" in metadata["table_5_1"].value and "data:image/" in metadata["loss_curves"].value
    assert metadata["pretrained"].value is False and metadata["device"].value == "cpu"
    # Its own folder, named in the record, relative to the data root; the resume checkpoint stays in the resume cache.
    folder = data_root / metadata["folder"].value
    assert folder.parent == data_root / "fashion_detector" / "resnet18" / "v"
    assert metadata["checkpoint"].value == f"{metadata['folder'].value}/model_final.pt"
    assert {p.name for p in folder.iterdir()} == {"model_final.pt", "metrics.json", "loss_curves.png"}
    assert (data_root / metadata["resume_cache"].value / "checkpoint_last.pt").is_file()
    assert metadata["checkpoint_sha256"].value == file_sha256(folder / "model_final.pt")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["checkpoint"] == "model_final.pt" and not metrics["args"]["output_dir"].startswith("/")

    best = dg.materialize([assets.best_detector], instance=instance, resources=_detector_resources(data_root),
                          raise_on_error=False)
    best_metadata = best.asset_materializations_for_node("best_detector")[0].metadata
    record_ = json.loads((data_root / best_metadata["best_json"].value).read_text())
    assert record_["backbone"] == "resnet18" and record_["checkpoint"] == metadata["checkpoint"].value
    assert best_metadata["checkpoint_verified"].value is True
    assert best_metadata["AP"].value == pytest.approx(metadata["AP"].value) and "ResNet-18" in best_metadata["comparison"].value
    check = best.get_asset_check_evaluations()[0]
    assert check.passed == (record_["AP50"] >= assets.MIN_USABLE_AP50)

    # A rerun with nothing new (make demo again): the finished checkpoint is not retrained, the folders are reused.
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = _train(instance, data_root).asset_materializations_for_node("fashion_detector")[0].metadata
    assert again["folder"].value == metadata["folder"].value and again["folder_reused"].value is True
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    best_again = dg.materialize([assets.best_detector], instance=instance, resources=_detector_resources(data_root),
                                raise_on_error=False).asset_materializations_for_node("best_detector")[0].metadata
    assert best_again["folder"].value == best_metadata["folder"].value and best_again["folder_reused"].value is True


def test_swapping_deepfashion_data_retrains_instead_of_reusing_the_checkpoint(tmp_path):
    from fashion_pipeline.detector import assets

    data_root = tmp_path / "data"
    instance = dg.DagsterInstance.ephemeral()
    _record_coco(instance, data_root, train=8, val=4)
    first = _train(instance, data_root)
    first_meta = first.asset_materializations_for_node("fashion_detector")[0].metadata
    assert first_meta["iterations"].value == 3
    assert _stale_status(instance, "fashion_detector").value == "FRESH"

    # "Real" data replaces the demo's at the same paths: a new deepfashion_coco materialization.
    new_version = _record_coco(instance, data_root, train=10, val=6)
    assert _stale_status(instance, "fashion_detector").value == "STALE"  # the UI shows it stale
    best = dg.materialize([assets.best_detector], instance=instance, resources=_detector_resources(data_root),
                          raise_on_error=False)
    assert not best.success  # the old model was evaluated on the old val.json: it does not compete
    message = best.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "no trained detector evaluated on the current deepfashion_coco" in message
    assert "left out, evaluated on another val.json: fashion_detector[resnet18]" in message

    second = _train(instance, data_root)
    meta = second.asset_materializations_for_node("fashion_detector")[0].metadata
    assert meta["resumed_from_iteration"].value == 0 and meta["iterations"].value == 3  # trained again from scratch
    assert meta["val_json_sha256"].value == file_sha256(data_root / "deepfashion_coco" / "val.json")
    assert meta["deepfashion_coco_version"].value == new_version
    assert _stale_status(instance, "fashion_detector").value == "FRESH"


def test_fashion_detector_refuses_files_changed_since_the_recorded_materialization(tmp_path):
    data_root = tmp_path / "data"
    instance = dg.DagsterInstance.ephemeral()
    _record_coco(instance, data_root, train=8, val=4)
    write_tiny_coco(data_root / "deepfashion_coco", train=9, val=4)  # rewritten behind Dagster's back
    result = dg.materialize([__import__("fashion_pipeline.detector.assets", fromlist=["x"]).fashion_detector],
                            partition_key="resnet18", instance=instance, resources=_detector_resources(data_root),
                            raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "train.json changed after deepfashion_coco was materialized" in failure.description


def test_fashion_detector_names_the_missing_input(tmp_path):
    from fashion_pipeline.detector import assets

    result = dg.materialize([assets.fashion_detector], partition_key="resnet18", resources=_detector_resources(tmp_path),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "deepfashion_coco has never been materialized on this instance: materialize it first" in failure.description
    assert len(result.get_step_failure_events()) == 1  # an input problem is not retried
