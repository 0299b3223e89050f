"""The DCGAN on CUDA: resume equals an uninterrupted run, and the AMP/bf16, CUDA-graph and compile paths run.

Skipped without CUDA (``make gpu-check`` runs them on a GPU). No Dagster import.

Tolerance of the resume test: cuDNN's autotuned kernels (``cudnn.benchmark``) and atomics in
the convolution backward are not bit-deterministic, and a resumed run captures its CUDA graph
at another point than the straight run does, so the two runs agree to float rounding, amplified a
little by two epochs of training: per-epoch means within 2e-2 relative (fp32, graphs on). Without
the restored CUDA RNG state the fakes' noise differs and the gap is of the order of the seed's
(~1e-1), so the tolerance still catches a broken resume.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashion_pipeline.gan import dcgan

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
RESUME_RTOL = 2e-2


class _Interrupt(Exception):
    pass


def _images(count=256, size=64):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8)
    return base[rng.integers(0, 8, count)]


def _config(**overrides):
    # 256 images / 32 = 8 full batches an epoch: warm-up steps, then graph replays; amp off for the resume test.
    return dcgan.TrainConfig(**{**dict(epochs=2, batch_size=32, ngf=16, ndf=16, device="cuda", amp=False), **overrides})


def test_resume_on_cuda_equals_an_uninterrupted_run(tmp_path):
    images, config = _images(), _config()

    def stop_after_first(epoch, stats):
        if epoch == 0:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        dcgan.train(images, tmp_path / "interrupted", config, on_epoch_end=stop_after_first, log=lambda m: None)
    state = dcgan.read_checkpoint(tmp_path / "interrupted" / dcgan.CHECKPOINT_NAME, map_location="cuda")
    assert state["cuda_rng"].device.type == "cpu" and state["cuda_rng"].dtype == torch.uint8
    resumed = dcgan.train(images, tmp_path / "interrupted", config, log=lambda m: None)
    straight = dcgan.train(images, tmp_path / "straight", config, log=lambda m: None)
    assert resumed.start_epoch == 1
    for a, b in zip(resumed.history, straight.history):
        for name in dcgan.STAT_NAMES:
            assert a[name] == pytest.approx(b[name], rel=RESUME_RTOL), name


@pytest.mark.parametrize("overrides", [
    dict(amp=True),  # bfloat16 autocast + CUDA graphs
    dict(amp=True, cuda_graphs=False),  # eager bf16
    dict(amp=True, compile=True),  # torch.compile'd modules inside the captured graph
    dict(amp=True, image_size=128),
    dict(amp=True, batch_size=48),  # 256 = 5 x 48 + 16: a partial last batch runs eagerly between replays
    dict(amp=True, flip=True, epochs=99, steps=16),  # the flips' random draws inside the captured graph; 2 epochs
], ids=["bf16-graphs", "bf16-eager", "compile", "128px", "partial-last-batch", "flip-steps-graphs"])
def test_cuda_paths_train_with_finite_losses(tmp_path, overrides):
    config = _config(**overrides)
    result = dcgan.train(_images(size=config.image_size), tmp_path, config, log=lambda m: None)
    assert len(result.history) == 2
    assert all(np.isfinite([row[name] for name in dcgan.STAT_NAMES]).all() for row in result.history)
    assert result.device.startswith("cuda")
    fakes = np.load(tmp_path / "fixed_noise_fakes.npy")
    assert fakes.shape == (64, config.image_size, config.image_size, 3) and fakes.std() > 0
