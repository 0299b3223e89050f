"""The detector on CUDA: resume equals an uninterrupted run, the AMP / bf16 / torch.compile paths
train with finite losses, and RNG states load onto the CPU from a CUDA-mapped checkpoint.

Skipped without CUDA; ``make gpu-check`` runs them. Imports neither dagster nor pycocotools: the GPU
machine may have only torch, torchvision, numpy, PIL and pytest.

Resume tolerance on CUDA: measured, not assumed. Two uninterrupted runs of the same seed already
differ, because RoIAlign's backward accumulates with atomicAdd (no deterministic kernel, even with
cuDNN deterministic) and a from-scratch BatchNorm model amplifies the float differences: on an H100
the logged loss differed by 2% at iteration 2 of two identical runs. So the test measures that
run-to-run spread and asserts that the resumed run is no further from the uninterrupted one than
``SPREAD_FACTOR`` times it (plus ``FLOOR`` for a spread that happens to be near zero), on every logged
loss and on the weights (distance relative to how far they moved).
"""
from __future__ import annotations

import math

import pytest
import torch

from fashion_pipeline.detector import engine
from fashion_pipeline.detector.data import CocoDetectionDataset
from fashion_pipeline.detector.model import DetectorSpec, build_detector
from fashion_pipeline_tests.detector_fixtures import TINY_SPEC, write_tiny_coco

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SPREAD_FACTOR = 3.0
FLOOR = 1e-3
SPEC = DetectorSpec(backbone="resnet18", norm="bn", trainable_backbone_layers=5, fpn_channels=64,
                    returned_layers=(2, 3, 4), representation_size=128, **TINY_SPEC)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return CocoDetectionDataset(write_tiny_coco(tmp_path_factory.mktemp("coco"), train=16, val=4) / "train.json")


@pytest.fixture(autouse=True)
def deterministic_cudnn():
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def _solver(**overrides) -> engine.SolverConfig:
    values = dict(max_iter=6, batch_size=2, num_workers=0, log_period=1, checkpoint_period=1, warmup_iters=2,
                  base_lr=0.01, lr_steps=(4,), amp=False)
    return engine.SolverConfig(**{**values, **overrides})


def _train(dataset, output_dir, solver, resume: bool = True, stop_after: int = 0) -> engine.TrainState:
    engine.seed_everything(solver.seed)
    model = build_detector(SPEC)
    return engine.train(model, dataset, solver, torch.device("cuda"), output_dir, {"model_spec": SPEC.to_dict()},
                        resume=resume, stop_after=stop_after)


def _relative_gap(a: dict, b: dict, origin: dict) -> float:
    gap = moved = 0.0
    for name, tensor in a.items():
        if tensor.is_floating_point():
            gap += (tensor.double() - b[name].double()).pow(2).sum().item()
            moved += (tensor.double() - origin[name].double()).pow(2).sum().item()
    return math.sqrt(gap / moved)


def _loss_gap(a: dict, b: dict) -> float:
    pairs = zip(a["state"]["history"], b["state"]["history"], strict=True)
    return max(abs(y["loss"] - x["loss"]) / abs(x["loss"]) for x, y in pairs)


def test_resume_on_cuda_equals_an_uninterrupted_run_within_the_run_to_run_spread(dataset, tmp_path):
    # A small learning rate: at 0.01 from scratch, two identical runs already drift 9% apart in loss
    # within 6 iterations (chaotic amplification of atomicAdd rounding), which would hide any resume error.
    solver = _solver(base_lr=1e-3)
    for name in ("straight", "straight_again"):
        _train(dataset, tmp_path / name, solver, resume=False)
    _train(dataset, tmp_path / "resumed", solver, resume=False, stop_after=3)
    stopped = engine.read_checkpoint(tmp_path / "resumed" / engine.CHECKPOINT_NAME)
    assert stopped["state"]["iteration"] == 3 and len(stopped["rng"]["cuda"]) == torch.cuda.device_count()
    _train(dataset, tmp_path / "resumed", solver)

    straight, again, resumed = (engine.read_checkpoint(tmp_path / name / engine.CHECKPOINT_NAME)
                                for name in ("straight", "straight_again", "resumed"))
    assert resumed["state"]["iteration"] == 6
    engine.seed_everything(solver.seed)
    origin = build_detector(SPEC).state_dict()
    loss_spread, weight_spread = _loss_gap(straight, again), _relative_gap(straight["model"], again["model"], origin)
    loss_gap, weight_gap = _loss_gap(straight, resumed), _relative_gap(straight["model"], resumed["model"], origin)
    print(f"run-to-run spread: loss {loss_spread:.2e}, weights {weight_spread:.2e}; "
          f"resumed: loss {loss_gap:.2e}, weights {weight_gap:.2e}")
    assert loss_gap <= SPREAD_FACTOR * loss_spread + FLOOR
    assert weight_gap <= SPREAD_FACTOR * weight_spread + FLOOR


@pytest.mark.parametrize("overrides", [
    pytest.param(dict(amp=True, amp_dtype="float16"), id="amp-float16"),
    pytest.param(dict(amp=True, amp_dtype="bfloat16"), id="amp-bfloat16"),
    pytest.param(dict(amp=True, amp_dtype="float16", compile_backbone=True), id="compile-amp-float16"),
])
def test_mixed_precision_and_compiled_paths_train_with_finite_losses(overrides, dataset, tmp_path):
    if overrides["amp_dtype"] == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    solver = _solver(max_iter=4, **overrides)
    state = _train(dataset, tmp_path, solver, resume=False)
    assert state.iteration == 4
    assert all(math.isfinite(window["loss"]) for window in state.history)
    checkpoint = engine.read_checkpoint(tmp_path / engine.CHECKPOINT_NAME)
    scaler_used = bool(checkpoint["scaler"])  # an enabled GradScaler saves its scale; a disabled one nothing
    assert scaler_used == (overrides["amp_dtype"] == "float16")
    assert not any(name.count("_orig_mod") for name in checkpoint["model"])  # compiled in place: same keys


def test_cuda_mapped_checkpoint_restores_rng_states_from_the_cpu(dataset, tmp_path):
    _train(dataset, tmp_path, _solver(max_iter=1), resume=False)
    checkpoint = engine.read_checkpoint(tmp_path / engine.CHECKPOINT_NAME, map_location="cuda")
    assert next(iter(checkpoint["model"].values())).is_cuda
    states = engine.checkpoint_rng_states(checkpoint)
    assert all(state.device.type == "cpu" and state.dtype == torch.uint8 for state in [states["torch"], *states["cuda"]])
    engine.set_rng_states(states)  # raised TypeError when the states followed the map to the GPU
    expected = torch.rand(3, device="cuda")
    engine.set_rng_states(states)
    assert torch.equal(torch.rand(3, device="cuda"), expected)


def test_inference_on_cuda_shrinks_on_the_host_and_returns_original_pixels(tmp_path):
    from PIL import Image

    from fashion_pipeline.detector.inference import predict

    engine.seed_everything(0)
    model = build_detector(DetectorSpec(backbone="resnet18", norm="bn", trainable_backbone_layers=5,
                                        box_score_thresh=0.0, **TINY_SPEC)).cuda().eval()
    big = Image.new("RGB", (960, 1152), (200, 60, 60))
    results = predict(model, [big], "cuda")
    assert results[0]["boxes"].shape[1:] == (4,)
    if len(results[0]["boxes"]):
        assert results[0]["boxes"][:, 2].max() <= 960 + 1e-3 and results[0]["boxes"][:, 3].max() <= 1152 + 1e-3
