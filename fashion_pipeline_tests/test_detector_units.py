"""Detector plain-module tests that need no training: COCO numbers by hand, schedule, sampler, selection."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset, GroupedBatchSampler, aspect_ratio_groups, hflip, load_coco_json
from fashion_pipeline.detector.evaluate import coco_metrics
from fashion_pipeline.detector.model import DetectorSpec, build_detector, find_pretrained_weights, resolve_spec
from fashion_pipeline.detector.selection import (
    NoTrainedDetector, pick_best, rank_candidates, read_candidates, select, split_by_validation_set,
)
from fashion_pipeline_tests.detector_fixtures import write_tiny_coco

CATEGORIES = [{"id": 1, "name": "upper"}, {"id": 2, "name": "lower"}, {"id": 3, "name": "full"}]


def hand_made_ground_truth() -> dict:
    # Both boxes are 100x100 = 10000 px > 96^2, so every object is "large".
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 300, "height": 300}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [150, 150, 100, 100], "area": 10000, "iscrowd": 0},
        ],
        "categories": CATEGORIES,
    }


def test_coco_numbers_match_hand_computation():
    detections = [
        # upper: one box of IoU 0.78 -> a hit at IoU .50-.75 (6 of 10 thresholds), a miss at .80-.95
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 78], "score": 0.9},
        # lower: a false positive ranked above an exact hit -> precision 1/2 at recall 1, at every threshold
        {"image_id": 1, "category_id": 2, "bbox": [0, 150, 100, 100], "score": 0.9},
        {"image_id": 1, "category_id": 2, "bbox": [150, 150, 100, 100], "score": 0.8},
    ]
    metrics = coco_metrics(hand_made_ground_truth(), detections)
    expected = {
        "AP": (0.6 + 0.5) / 2, "AP50": (1.0 + 0.5) / 2, "AP75": (1.0 + 0.5) / 2,
        "APs": -1.0, "APm": -1.0, "APl": (0.6 + 0.5) / 2,
        # with 1 detection per image, lower keeps only its false positive: recall 0
        "AR1": (0.6 + 0.0) / 2, "AR10": (0.6 + 1.0) / 2, "AR100": (0.6 + 1.0) / 2,
        "ARs": -1.0, "ARm": -1.0, "ARl": (0.6 + 1.0) / 2,
        "AP_upper": 0.6, "AP_lower": 0.5, "AP_full": -1.0,
    }
    assert metrics == pytest.approx(expected, abs=1e-9)


def test_no_detections_scores_zero():
    metrics = coco_metrics(hand_made_ground_truth(), [])
    assert metrics["AP"] == 0.0 and metrics["AR100"] == 0.0


def test_lr_schedule_warms_up_then_steps():
    solver = engine.SolverConfig(base_lr=0.0025, lr_steps=(20_000, 40_000), gamma=0.1, warmup_iters=1000, warmup_factor=0.001)
    assert engine.lr_factor(0, solver) == pytest.approx(0.001)
    assert engine.lr_factor(500, solver) == pytest.approx(0.001 * 0.5 + 0.5)
    assert engine.lr_factor(1000, solver) == 1.0
    assert engine.lr_factor(19_999, solver) == 1.0
    assert engine.lr_factor(20_000, solver) == pytest.approx(0.1)
    assert engine.lr_factor(45_000, solver) == pytest.approx(0.01)


def test_grouped_sampler_keeps_groups_and_resumes_exactly():
    ratios = [0.5, 2.0] * 10
    groups = aspect_ratio_groups(ratios, 3)
    sampler = GroupedBatchSampler(groups, batch_size=2, seed=7, hflip_prob=0.5)
    stream = iter(sampler)
    first = [next(stream) for _ in range(12)]
    for batch in first:
        assert len({groups[index] for index, _ in batch}) == 1
    assert any(flip for batch in first for _, flip in batch) and not all(flip for batch in first for _, flip in batch)
    resumed = iter(GroupedBatchSampler(groups, batch_size=2, seed=7, hflip_prob=0.5, start_batch=5))
    assert [next(resumed) for _ in range(7)] == first[5:]
    other_rank = iter(GroupedBatchSampler(groups, batch_size=2, seed=7, hflip_prob=0.5, rank=1, world_size=2))
    assert [next(other_rank) for _ in range(3)] == [first[1], first[3], first[5]]


def test_hflip_mirrors_boxes():
    image = torch.zeros(3, 10, 20, dtype=torch.uint8)
    image[:, :, :5] = 255
    flipped, target = hflip(image, {"boxes": torch.tensor([[0.0, 1.0, 5.0, 9.0]]), "labels": torch.tensor([1])})
    assert target["boxes"].tolist() == [[15.0, 1.0, 20.0, 9.0]]
    assert flipped[0, 0, 15:].eq(255).all() and flipped[0, 0, :15].eq(0).all()


def test_dataset_reads_sizes_from_json_and_boxes_as_xyxy(tmp_path):
    coco_dir = write_tiny_coco(tmp_path / "coco", train=4, val=2)
    dataset = CocoDetectionDataset(coco_dir / "train.json")
    assert dataset.aspect_ratios() == [80 / 96, 96 / 80, 80 / 96, 96 / 80]
    image, target = dataset[0]
    annotation = dataset.coco["annotations"][0]
    x, y, w, h = annotation["bbox"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 96, 80)
    assert target["boxes"].tolist() == [[x, y, x + w, y + h]] and target["labels"].tolist() == [1]


def test_bad_annotation_names_file_and_annotation(tmp_path):
    coco = hand_made_ground_truth()
    coco["annotations"][1]["category_id"] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"bad\.json: annotation id=2: category_id 7"):
        load_coco_json(path)
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(ValueError, match=r"bad\.json:2: not valid JSON"):
        load_coco_json(path)


def test_divergence_and_nan_stop_with_a_clear_message(tmp_path):
    solver = engine.SolverConfig(divergence_factor=10.0)
    state = engine.TrainState()
    window = {"start": 0, "iteration": 20, "loss": 2.0, **{name: 0.5 for name in engine.LOSS_NAMES}}
    engine.check_window(state, window, solver, tmp_path / "checkpoint_last.pt")
    with pytest.raises(engine.TrainingDiverged, match="loss diverged: 25.000 at iterations 20-40"):
        engine.check_window(state, {**window, "start": 20, "iteration": 40, "loss": 25.0}, solver, tmp_path / "c.pt")
    with pytest.raises(engine.TrainingDiverged, match="loss became nan between iterations 40 and 60"):
        engine.check_window(state, {**window, "start": 40, "iteration": 60, "loss": math.nan}, solver, tmp_path / "c.pt")


def test_pretrained_weights_come_from_the_hub_cache_only(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec, path, reason = resolve_spec("resnet18")
    assert path is None and spec.norm == "bn" and spec.trainable_backbone_layers == 5 and "resnet18-f37072fd.pth" in reason
    import torchvision

    classifier = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(classifier.conv1.weight, 0.125)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(classifier.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    spec, path, reason = resolve_spec("resnet18")
    assert path is not None and spec.norm == "frozen_bn" and spec.trainable_backbone_layers == 3
    model = build_detector(spec, path)
    assert torch.all(model.backbone.body.conv1.weight == 0.125)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad and model.backbone.body.layer2[0].conv1.weight.requires_grad
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        find_pretrained_weights("resnet18", str(tmp_path / "nowhere.pth"))


def test_asset_config_defaults_match_the_cli_defaults():
    from fashion_pipeline.detector.assets import DetectorTrainingConfig, train_command
    from fashion_pipeline.detector.train import build_parser

    command = train_command(DetectorTrainingConfig(), "resnet50", "/coco", "/out", "auto")
    from_asset = vars(build_parser().parse_args(command[3:]))
    defaults = vars(build_parser().parse_args(["--output-dir", "/out", "--coco-dir", "/coco"]))
    assert from_asset == defaults
    assert defaults["base_lr"] == 0.0025 and defaults["weight_decay"] == 1e-4 and defaults["lr_steps"] == [20_000, 40_000]
    assert defaults["max_iter"] == 50_000 and defaults["momentum"] == 0.9 and defaults["gamma"] == 0.1


def _candidate(root: Path, backbone: str, ap: float, ap50: float, parameters: int, checkpoint: bool = True,
               val_sha: str = "val-v1") -> None:
    folder = root / backbone
    folder.mkdir(parents=True)
    if checkpoint:
        (folder / "model_final.pt").write_bytes(b"x")
    metrics = {"backbone": backbone, "AP": ap, "AP50": ap50, "parameters": parameters, "val_json_sha256": val_sha,
               "checkpoint": "model_final.pt", **{k: 0.1 for k in ("AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")}}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_best_detector_rule_and_ties(tmp_path):
    root = tmp_path / "fashion_detector"
    _candidate(root, "resnet50", 0.647, 0.890, 41_000_000)
    _candidate(root, "resnet101", 0.663, 0.896, 60_000_000)
    _candidate(root, "resnext101_32x8d", 0.700, 0.950, 105_000_000, checkpoint=False)  # unfinished: ignored
    _candidate(root, "resnet18", 0.900, 0.990, 11_000_000, val_sha="val-v0")  # evaluated on another val set
    same, other = split_by_validation_set(read_candidates(root), "val-v1")
    assert [m["backbone"] for m in other] == ["resnet18"]
    record, ranked = select(same, tmp_path / "best.json")
    assert record["backbone"] == "resnet101" and [m["backbone"] for m in ranked] == ["resnet101", "resnet50"]
    # relative to the data root (the detector root's parent), so the root can move
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"] == "fashion_detector/resnet101/model_final.pt"

    same_ap = [{"backbone": "resnet50", "AP": 0.66301, "AP50": 0.89, "parameters": 2},
               {"backbone": "resnet101", "AP": 0.66299, "AP50": 0.90, "parameters": 3}]
    assert pick_best(same_ap)["backbone"] == "resnet101"  # AP equal at 4 d.p. -> higher AP50
    same_ap50 = [{"backbone": "resnet101", "AP": 0.5, "AP50": 0.9, "parameters": 3},
                 {"backbone": "resnext101_32x8d", "AP": 0.5, "AP50": 0.9, "parameters": 2}]
    assert pick_best(same_ap50)["backbone"] == "resnext101_32x8d"  # fewer parameters
    all_same = [{"backbone": "resnext101_32x8d", "AP": 0.5, "AP50": 0.9, "parameters": 2},
                {"backbone": "resnet101", "AP": 0.5, "AP50": 0.9, "parameters": 2}]
    assert [m["backbone"] for m in rank_candidates(all_same)] == ["resnet101", "resnext101_32x8d"]  # thesis order


def test_best_detector_fails_clearly_without_candidates(tmp_path):
    with pytest.raises(NoTrainedDetector, match="materialize at least one fashion_detector partition"):
        pick_best(read_candidates(tmp_path), f" under {tmp_path}")


def _tiny_training_objects():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1),
                                torch.nn.GroupNorm(2, 2))
    solver = engine.SolverConfig(weight_decay=1e-4, weight_decay_norm=0.0)
    optimizer, scheduler = engine.build_optimizer(model, solver)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False)


def test_rng_states_come_back_as_cpu_byte_tensors_whatever_the_device_map(tmp_path):
    model, optimizer, scheduler, scaler = _tiny_training_objects()
    torch.manual_seed(7)
    states = engine.rng_states()
    states["cuda"] = [torch.get_rng_state().numpy(), torch.get_rng_state().numpy()]  # stand-ins for two GPUs' states
    expected_next = torch.rand(4)
    path = tmp_path / engine.CHECKPOINT_NAME
    engine.save_checkpoint(path, model, optimizer, scheduler, scaler, engine.TrainState(iteration=3), {},
                           rng_per_rank=[states])

    # "meta" stands in for a CUDA map on this CPU machine: every tensor in the file follows the map ...
    checkpoint = engine.read_checkpoint(path, map_location={"cpu": "meta"})
    assert checkpoint["model"]["0.weight"].device.type == "meta"
    # ... and the RNG states, through the loader's own code path, are CPU ByteTensors all the same.
    restored = engine.checkpoint_rng_states(checkpoint, rank=0)
    for state in [restored["torch"], *restored["cuda"]]:
        assert isinstance(state, torch.Tensor) and state.device.type == "cpu" and state.dtype == torch.uint8
    assert torch.equal(restored["torch"], torch.from_numpy(states["torch"]))
    torch.manual_seed(0)
    engine.set_rng_states(restored)
    assert torch.equal(torch.rand(4), expected_next)
    # A checkpoint of the old layout (tensors) is read too.
    assert engine.cpu_byte_tensor(torch.get_rng_state()).dtype == torch.uint8


def test_norm_parameters_get_their_own_weight_decay():
    model, optimizer, _, _ = _tiny_training_objects()
    decays = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert len(decays) == len(list(model.parameters()))
    for norm in (model[1], model[3]):
        assert decays[id(norm.weight)] == 0.0 and decays[id(norm.bias)] == 0.0
    assert decays[id(model[0].weight)] == 1e-4 and decays[id(model[2].bias)] == 1e-4


def test_linear_lr_scaling_follows_the_global_batch():
    solver = engine.SolverConfig(base_lr=0.0025, batch_size=2, reference_batch_size=2)
    assert engine.effective_base_lr(solver, world_size=8) == 0.0025  # off by default
    scaled = engine.SolverConfig(base_lr=0.0025, batch_size=2, reference_batch_size=2, scale_lr=True)
    assert engine.effective_base_lr(scaled, world_size=8) == pytest.approx(0.02)  # Detectron2's 0.02 for 16 images
    model = torch.nn.Linear(2, 2)
    optimizer, _ = engine.build_optimizer(model, scaled, world_size=4)
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.01)


def test_a_resume_with_another_world_size_is_refused(tmp_path):
    from fashion_pipeline.detector.train import resumable_iteration, training_signature

    spec, solver = DetectorSpec(backbone="resnet18"), engine.SolverConfig()
    saved = training_signature(spec, solver, "abc", world_size=2)
    path = tmp_path / engine.CHECKPOINT_NAME
    torch.save({"signature": saved, "world_size": 2, "state": {"iteration": 40}}, path)
    logged = []
    assert resumable_iteration(path, training_signature(spec, solver, "abc", world_size=2), logged.append) == 40
    with pytest.raises(engine.ResumeRefused, match="trained with world size 2 .*this run has world size 1.*--nproc-per-node=2"):
        resumable_iteration(path, training_signature(spec, solver, "abc", world_size=1), logged.append)
    other = engine.SolverConfig(base_lr=0.01)  # other settings too: a plain restart, as before
    assert resumable_iteration(path, training_signature(spec, other, "abc", world_size=1), logged.append) == 0

    model, optimizer, scheduler, scaler = _tiny_training_objects()
    engine.save_checkpoint(path, model, optimizer, scheduler, scaler, engine.TrainState(iteration=5),
                           {"model_spec": {"x": 1}}, world_size=2)
    with pytest.raises(engine.ResumeRefused, match="world size 2"):
        engine.load_checkpoint(path, model, optimizer, scheduler, scaler, {"x": 1}, rank=0, world_size=1)


def test_eval_sample_is_seeded_and_spread_not_the_first_ids():
    from fashion_pipeline.detector.data import sample_images

    images = [{"id": index} for index in range(1000, 0, -1)]
    first = [image["id"] for image in sample_images(images, 50, seed=0)]
    assert first == sorted(first) and len(set(first)) == 50
    assert first == [image["id"] for image in sample_images(images, 50, seed=0)]
    assert first != [image["id"] for image in sample_images(images, 50, seed=1)]
    assert max(first) > 500  # the first 50 ids would all be <= 50
    assert len(sample_images(images, 0)) == 1000 and len(sample_images(images, 5000)) == 1000


def test_detections_come_to_the_host_in_one_copy_and_split_per_image():
    from fashion_pipeline.detector.evaluate import outputs_to_host, to_coco_detections

    outputs = [{"boxes": torch.tensor([[0., 1., 4., 5.], [2., 2., 3., 3.]]), "scores": torch.tensor([.9, .5]),
                "labels": torch.tensor([3, 1])},
               {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
               {"boxes": torch.tensor([[1., 1., 2., 4.]]), "scores": torch.tensor([.7]), "labels": torch.tensor([2])}]
    host = outputs_to_host(outputs)
    assert [len(part["scores"]) for part in host] == [2, 0, 1]
    assert host[0]["labels"].tolist() == [3, 1] and host[2]["labels"].dtype == np.int64
    assert to_coco_detections(7, host[2]) == [{"image_id": 7, "category_id": 2, "bbox": [1.0, 1.0, 1.0, 3.0],
                                               "score": pytest.approx(0.7)}]
    assert outputs_to_host([]) == []


def test_inference_shrinks_on_the_host_and_maps_boxes_back():
    from PIL import Image

    from fashion_pipeline.detector.inference import host_input

    tensor, (scale_x, scale_y) = host_input(Image.new("RGB", (1200, 900)), min_size=300, max_size=512)
    assert tuple(tensor.shape) == (3, 300, 400) and tensor.dtype == torch.uint8
    assert (scale_x, scale_y) == (3.0, 3.0)
    tensor, scales = host_input(Image.new("RGB", (2000, 500)), min_size=300, max_size=512)
    assert tuple(tensor.shape) == (3, 128, 512) and scales == (2000 / 512, 500 / 128)  # the long side caps it
    tensor, scales = host_input(Image.new("RGB", (80, 96)), min_size=300, max_size=512)
    assert tuple(tensor.shape) == (3, 96, 80) and scales == (1.0, 1.0)  # enlarging is left to the network


def test_fault_injection_poisons_one_rank_at_one_iteration():
    fault = engine.FaultInjection(nan_at_iter=3, rank=1)
    assert fault.poisons(3, 1) and not fault.poisons(3, 0) and not fault.poisons(2, 1)
    assert not engine.FaultInjection().poisons(1, 0)
