"""The try-on trainer under ``torchrun --nproc-per-node 2`` on the CPU (gloo).

The encoder-decoder has InstanceNorm only (no BatchNorm statistics shared across a batch), so 2 processes x 2
pairs compute what 1 process x 4 pairs does, up to the order of float sums: measured gaps ~1e-7; the test allows
1e-4, far below what another seed changes (~1e-2). CAGAN (BatchNorm in D) is only run to completion and refused
by another world size. A NaN on one rank stops both with one message and exit code 2.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fashion_pipeline.synthetic import tryon as synthetic
from fashion_pipeline.tryon import inputs, train
from fashion_pipeline.tryon.model_settings import HISTORY_NAME, MODEL_NAME, TrainConfig

H, W = 64, 48
TIMEOUT_S = 300
COMMON = ["--ngf", "4", "--ndf", "4", "--max-channels", "16", "--log-every", "1", "--checkpoint-every", "1",
          "--lr", "0.0002"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tryon_ddp")
    synthetic.write_dataset(root, synthetic.Spec(H, W, train=6, test=2, seed=7))
    return root


def _torchrun(root, out, *extra):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "fashion_pipeline.tryon.train", "--root", str(root), "--height", str(H), "--out", str(out),
               "--batch-size", "2", *COMMON, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _config(**overrides):
    return TrainConfig(ngf=4, ndf=4, max_channels=16, log_every=1, checkpoint_every=1, lr=2e-4, **overrides)


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(dataset, tmp_path):
    run = _torchrun(dataset, tmp_path / "ddp", "--method", "encoder_decoder", "--steps", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / HISTORY_NAME).read_text())["stages"]["encoder_decoder"]["history"]
    arrays = inputs.load_training(dataset, H, W)
    quiet = dict(log=lambda message: None)
    single = train.train(arrays, tmp_path / "one", _config(method="encoder_decoder", steps=3, batch_size=4), **quiet)
    seed = train.train(arrays, tmp_path / "seed", _config(method="encoder_decoder", steps=3, batch_size=4, seed=9), **quiet)

    def gap(a, b):
        return max(abs(x["picture"] - y["picture"]) for x, y in zip(a, b))

    assert len(ddp) == 3
    assert gap(ddp, single.stages[0].history) < 1e-4 < gap(single.stages[0].history, seed.stages[0].history)
    # The trained networks compute the same pictures. (Their weights are compared through their outputs: a bias
    # in front of an InstanceNorm gets a float-noise gradient that Adam turns into full-size steps, harmlessly.)
    data = inputs.device_tensors(arrays, "cpu")
    batch = inputs.batch(data, torch.arange(len(arrays)), inputs.pose_radius(H))

    def outputs(folder):
        modules, _ = train.load_model(tmp_path / folder / MODEL_NAME)
        with torch.no_grad():
            return modules["encoder_decoder"](batch.agnostic, batch.cloth)

    ddp_out, one_out, seed_out = outputs("ddp"), outputs("one"), outputs("seed")
    assert float((ddp_out - one_out).abs().max()) < 1e-3 < float((one_out - seed_out).abs().max())


@pytest.mark.slow
def test_cagan_under_two_processes_and_another_world_size_is_refused(dataset, tmp_path):
    run = _torchrun(dataset, tmp_path / "cagan", "--method", "cagan", "--steps", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "cagan" / MODEL_NAME).is_file()
    arrays = inputs.load_training(dataset, H, W)
    with pytest.raises(train.ResumeRefused, match="trained by 2 process"):
        train.train(arrays, tmp_path / "cagan", _config(method="cagan", steps=3, batch_size=2), log=lambda m: None)


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_both_ranks_with_the_same_message(dataset, tmp_path):
    run = _torchrun(dataset, tmp_path / "nan", "--method", "encoder_decoder", "--steps", "3", "--inject-nan", "1:1")
    assert run.returncode != 0
    messages = [line for line in run.stderr.splitlines() if "training failed: non-finite loss" in line]
    assert {line.split("]")[0] for line in messages} == {"[rank 0", "[rank 1"}
    assert len({line.split("] ", 1)[1] for line in messages}) == 1
    assert "stage encoder_decoder at step 2 (averaged over 2 processes)" in messages[0]
