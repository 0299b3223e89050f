"""DDP on the CPU: ``torchrun --nproc-per-node 2`` (gloo) trains the detector like one process with
the same global batch, and a NaN on one rank stops both ranks with the same message, no hang.

Why the comparison can be tight (1e-4 relative, against ~3e-6 seen): the settings remove every
legitimate difference between 2 ranks x 1 image and 1 process x 2 images.
- GroupNorm (per image), not BatchNorm (per-rank batch statistics);
- square images and no aspect-ratio grouping: the same padding, and rank r gets global batch
  position r of each step (GroupedBatchSampler deals batch n to rank n % world_size);
- RPN / RoI sampling budgets above the candidate counts, so the random fg/bg draws keep every
  candidate, and 10 post-NMS proposals, so every image contributes equally to the heads' mean
  losses (the mean of two per-rank means equals the mean over both images).
What is left is float summation order. For scale: 1 process x 1 image (half the data) lands 0.7
relative away from the 2-image run.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from fashion_pipeline.detector import engine
from fashion_pipeline.detector.model import DetectorSpec, build_detector
from fashion_pipeline_tests.detector_fixtures import write_split

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                 reason="torch.distributed with gloo is not available")]

RELATIVE_TOLERANCE = 1e-4
TIMEOUT_S = 180  # a hang (one rank waiting in an all-reduce) fails here instead of blocking the suite

DDP_ARGS = ["--backbone", "resnet18", "--norm", "gn", "--min-size", "64", "--max-size", "96",
            "--rpn-pre-nms-top-n-train", "100", "--rpn-post-nms-top-n-train", "10",
            "--rpn-batch-size-per-image", "100000", "--box-batch-size-per-image", "100000",
            "--fpn-channels", "32", "--returned-layers", "2", "3", "4", "--representation-size", "64",
            "--max-iter", "4", "--stop-after", "3", "--num-workers", "0", "--log-period", "1",
            "--checkpoint-period", "1000", "--warmup-iters", "0", "--base-lr", "0.01", "--lr-steps", "100",
            "--aspect-ratio-group-factor", "0", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def square_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("square_coco")
    write_split(root, "train", 8, seed=0, size=(80, 80))
    write_split(root, "val", 2, seed=1, first_id=1000, size=(80, 80))
    return root


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


def _train(coco, output_dir, batch_size: int, nproc: int = 1, *extra) -> subprocess.CompletedProcess:
    cli = ["-m", "fashion_pipeline.detector.train", "--coco-dir", str(coco), "--output-dir", str(output_dir),
           "--batch-size", str(batch_size), *DDP_ARGS, *extra]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
    return _run([sys.executable, *launcher, *cli])


def _relative_distance(a: dict, b: dict, origin: dict) -> float:
    """|a - b| / |a - origin| over the floating-point weights: the gap relative to how far training moved them."""
    gap = moved = 0.0
    for name, tensor in a.items():
        if tensor.is_floating_point():
            gap += (tensor - b[name]).double().pow(2).sum().item()
            moved += (tensor - origin[name]).double().pow(2).sum().item()
    return math.sqrt(gap / moved)


def test_two_ranks_match_one_process_with_the_same_global_batch(square_coco, tmp_path):
    single = _train(square_coco, tmp_path / "single", batch_size=2)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = _train(square_coco, tmp_path / "ddp", batch_size=1, nproc=2)
    assert ddp.returncode == 0, ddp.stderr[-3000:] + ddp.stdout[-3000:]

    one = engine.read_checkpoint(tmp_path / "single" / engine.CHECKPOINT_NAME)
    two = engine.read_checkpoint(tmp_path / "ddp" / engine.CHECKPOINT_NAME)
    assert (one["world_size"], two["world_size"]) == (1, 2) and len(two["rng_per_rank"]) == 2
    assert two["signature"]["world_size"] == 2
    for window_one, window_two in zip(one["state"]["history"], two["state"]["history"], strict=True):
        for name in (*engine.LOSS_NAMES, "loss"):
            assert window_two[name] == pytest.approx(window_one[name], rel=RELATIVE_TOLERANCE), (window_one["iteration"], name)
    engine.seed_everything(42)  # the initial weights, as the CLI builds them
    origin = build_detector(DetectorSpec.from_dict(one["model_spec"])).state_dict()
    assert _relative_distance(one["model"], origin, origin) > 0  # training moved the weights
    assert _relative_distance(one["model"], two["model"], origin) < RELATIVE_TOLERANCE


def test_a_nan_on_one_rank_stops_both_ranks_with_one_message(square_coco, tmp_path):
    result = _train(square_coco, tmp_path / "nan", 1, 2, "--inject-nan-at-iter", "2", "--inject-nan-rank", "1")
    output = result.stdout + result.stderr
    assert result.returncode != 0  # torchrun reports its workers' failure as its own exit code 1
    for rank in (0, 1):
        assert f"[rank {rank}] training failed: loss became nan between iterations 1 and 2 (losses averaged over 2 ranks" \
            in output, output[-3000:]
    assert "exitcode  : 2" in output, output[-3000:]  # the workers exit with the CLI's code 2 (torchrun's summary)
    assert "Signals.SIGTERM" not in output  # nobody was killed while waiting for a dead peer
    assert not (tmp_path / "nan" / engine.CHECKPOINT_NAME).exists()  # no checkpoint with NaN weights
