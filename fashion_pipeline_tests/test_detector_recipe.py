"""The detector's fast recipe (issue 24): its preset values, the decode cache, and a tiny CPU run
whose recipe lands in metrics.json and in the resume key."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset, stored_size
from fashion_pipeline.detector.model import DetectorSpec, build_detector
from fashion_pipeline.detector.train import main as train_main
from fashion_pipeline.detector.train import parse_args, solver_config
from fashion_pipeline_tests.detector_fixtures import TINY_MODEL_ARGS, TINY_SPEC, write_tiny_coco

BASE = ["--output-dir", "/out", "--coco-dir", "/coco"]


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("coco"), train=8, val=4)


def test_fast_recipe_keeps_the_thesis_image_budget_and_explicit_flags_win():
    thesis, fast = solver_config(parse_args(BASE)), solver_config(parse_args(BASE + ["--recipe", "fast"]))
    assert (thesis.batch_size, thesis.scale_lr, thesis.amp_dtype, thesis.channels_last, thesis.cache_images) == \
        (2, False, "float16", False, False)
    assert fast.batch_size == 16 and fast.scale_lr and fast.amp_dtype == "bfloat16"
    assert fast.channels_last and fast.cache_images and fast.aspect_ratio_group_factor == 3
    # Equal images seen, and the warmup and decays after the same number of images.
    assert fast.max_iter * fast.batch_size == thesis.max_iter * thesis.batch_size
    assert [s * fast.batch_size for s in fast.lr_steps] == [s * thesis.batch_size for s in thesis.lr_steps]
    assert fast.warmup_iters * fast.batch_size == thesis.warmup_iters * thesis.batch_size
    assert engine.effective_base_lr(fast) == pytest.approx(0.02) and engine.effective_base_lr(thesis) == 0.0025
    custom = solver_config(parse_args(BASE + ["--recipe", "fast", "--batch-size", "4", "--no-channels-last"]))
    assert custom.batch_size == 4 and not custom.channels_last and custom.cache_images


def test_asset_fast_recipe_runs_the_cli_fast_recipe():
    from fashion_pipeline.detector.assets import DetectorTrainingConfig, train_command

    def parsed(config):
        return vars(parse_args(train_command(config, "resnet50", "/coco", "/out", "auto")[3:]))

    cli = vars(parse_args(["--backbone", "resnet50", "--coco-dir", "/coco", "--output-dir", "/out", "--device", "auto",
                           "--recipe", "fast"]))
    assert parsed(DetectorTrainingConfig(recipe="fast")) == cli
    assert parsed(DetectorTrainingConfig(recipe="fast", max_iter=40))["max_iter"] == 40  # a set field wins
    assert parsed(DetectorTrainingConfig())["batch_size"] == 2  # the thesis's stays the default


def test_decoded_cache_matches_the_files_and_shrinks_like_the_network(coco_dir):
    plain = CocoDetectionDataset(coco_dir / "train.json")
    cached = CocoDetectionDataset(coco_dir / "train.json")
    cache = cached.cache_decoded(min_size=300, max_size=512)  # the network enlarges 80x96: stored native
    assert cache.nbytes == sum(3 * image["width"] * image["height"] for image in plain.images)
    for index in range(len(plain)):
        assert torch.equal(cached[index][0], plain[index][0])
        assert torch.equal(cached[index][1]["boxes"], plain[index][1]["boxes"])
    cached.cache_decoded(min_size=64, max_size=96)  # the network shrinks by 0.8: stored at its size
    image, target = cached[(1, True)]
    entry = plain.images[1]
    assert tuple(image.shape[1:]) == stored_size(entry["width"], entry["height"], 64, 96)[::-1] != \
        (entry["height"], entry["width"])
    scale = image.shape[-1] / entry["width"]
    flipped = plain[(1, True)][1]["boxes"] * scale
    np.testing.assert_allclose(target["boxes"].numpy(), flipped.numpy(), atol=1.0)


def test_decoded_cache_refuses_wrong_sizes_and_too_much_memory(coco_dir, tmp_path):
    coco = json.loads((coco_dir / "train.json").read_text())
    coco["images"][2]["width"] += 7
    (tmp_path / "train.json").write_text(json.dumps(coco))
    wrong = CocoDetectionDataset(tmp_path / "train.json")
    with pytest.raises(ValueError, match=r"train_00003\.jpg.*decodes to"):
        wrong.cache_decoded(300, 512)
    with pytest.raises(ValueError, match=r"train\.json: caching 8 decoded images needs .*cache_images"):
        CocoDetectionDataset(coco_dir / "train.json").cache_decoded(300, 512, max_bytes=1000)


def test_fast_recipe_trains_on_the_cpu_channels_last_from_the_cache(coco_dir, tmp_path):
    torch.manual_seed(0)
    model = build_detector(DetectorSpec(backbone="resnet18", norm="bn", trainable_backbone_layers=5, **TINY_SPEC))
    solver = solver_config(parse_args(BASE + ["--recipe", "fast", "--batch-size", "2", "--max-iter", "1",
                                             "--num-workers", "0", "--log-period", "1"]))
    dataset = CocoDetectionDataset(coco_dir / "train.json")
    events = []
    state = engine.train(model, dataset, solver, torch.device("cpu"), tmp_path, {"model_spec": {}}, on_log=events.append)
    assert state.iteration == 1 and state.images_seen == 2 and all(np.isfinite(w["loss"]) for w in state.history)
    assert dataset.decoded is not None and events[0]["event"] == "images cached" and events[0]["images"] == 8
    conv = model.backbone.body.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def _cli(coco_dir, output_dir, *extra):
    train_main(["--coco-dir", str(coco_dir), "--output-dir", str(output_dir), "--backbone", "resnet18", *TINY_MODEL_ARGS,
                "--num-workers", "0", "--log-period", "1", "--checkpoint-period", "1", "--max-eval-images", "2",
                "--eval-batch-size", "2", *extra])


@pytest.mark.slow  # two CLI runs with evaluation (~45 s on the shared 2-core machine)
def test_the_recipe_is_in_metrics_and_in_the_resume_key(coco_dir, tmp_path, capsys):
    _cli(coco_dir, tmp_path, "--recipe", "fast", "--batch-size", "4", "--max-iter", "2")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["recipe"] == "fast" and metrics["args"]["recipe"] == "fast" and metrics["iterations"] == 2
    assert metrics["solver"]["cache_images"] and metrics["solver"]["channels_last"]
    assert metrics["solver"]["amp_dtype"] == "bfloat16" and metrics["solver"]["scale_lr"]
    signature = torch.load(tmp_path / engine.CHECKPOINT_NAME, weights_only=False)["signature"]["solver"]
    assert signature["cache_images"] and signature["channels_last"] and signature["batch_size"] == 4
    # The thesis's recipe with otherwise the same flags is another training: not resumed from the fast one's.
    capsys.readouterr()
    _cli(coco_dir, tmp_path, "--batch-size", "4", "--max-iter", "3")
    assert "trained with other settings; starting again from iteration 0" in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics.json").read_text())["resumed_from_iteration"] == 0


def test_gpu_check_says_there_is_no_cuda_and_exits_0(monkeypatch, capsys):
    from bench import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main() == 0
    assert "no CUDA device: gpu-check skipped" in capsys.readouterr().out


def test_gpu_check_runs_the_time_to_quality_comparison(tmp_path, monkeypatch):
    from bench import gpu_check

    monkeypatch.setattr(gpu_check, "dcgan_command", lambda out: ["dcgan"])  # it asks the DCGAN bench for --help
    commands = {name: command for name, command in gpu_check.steps(tmp_path)}
    command = commands["detector time to quality"]
    assert command[1:3] == ["-m", "bench.detector_throughput"] and "--device" in command
    assert command[command.index("--rows") + 1] == "time_to_quality"


def test_time_to_quality_schedule_keeps_the_thesis_shape_at_equal_images():
    from bench.detector_throughput import THESIS_IMAGES, scaled_schedule

    thesis, fast = scaled_schedule(4000, 2), scaled_schedule(4000, 16)
    assert thesis == {"max_iter": 2000, "warmup_iters": 40, "lr_steps": (800, 1600)}
    assert fast == {"max_iter": 250, "warmup_iters": 5, "lr_steps": (100, 200)}
    assert THESIS_IMAGES == 720_000
