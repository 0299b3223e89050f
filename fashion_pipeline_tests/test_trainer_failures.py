"""Training failures through Dagster Pipes (``common.pipes.run_trainer``): what is retried and what is not.

Divergence, a refused resume and bad input fail the step at once with the trainer's message
(``Failure(allow_retries=False)``); a transient failure (here a trainer killed with SIGKILL) is
retried by the asset's retry policy. The trainer is the real DCGAN CLI on a tiny training set.
"""

import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from fashion_pipeline.common.pipes import run_trainer
from fashion_pipeline.gan import dcgan
from fashion_pipeline.gan.settings import TrainConfig

TINY = TrainConfig(ngf=8, ndf=8, nz=16, batch_size=4, epochs=1, device="cpu", amp=False)
RETRY = dg.RetryPolicy(max_retries=2, delay=0)


def _dcgan_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fashion_pipeline.gan.dcgan", "--data", str(data), "--out", str(out),
            *dcgan.command_args(TINY), *extra]


def _materialize(command_for_attempt, attempts_file: Path):
    """A one-asset run whose step launches ``command_for_attempt(attempt)`` through Pipes, under RETRY."""

    @dg.asset(retry_policy=RETRY)
    def trainer(context: dg.AssetExecutionContext, pipes_subprocess_client: dg.PipesSubprocessClient):
        attempts = int(attempts_file.read_text()) + 1 if attempts_file.exists() else 1
        attempts_file.write_text(str(attempts))
        return run_trainer(context, pipes_subprocess_client, command_for_attempt(attempts), env={})

    return dg.materialize([trainer], resources={"pipes_subprocess_client": dg.PipesSubprocessClient()},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def _failure(result):
    failures = result.get_step_failure_events()
    assert len(failures) == 1
    return failures[0].step_failure_data.user_failure_data


@pytest.fixture
def images(tmp_path) -> Path:
    path = tmp_path / "set.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8))
    return path


@pytest.mark.slow
def test_a_diverged_run_fails_once_with_the_trainers_message(images, tmp_path):
    attempts = tmp_path / "attempts"
    result = _materialize(lambda _: _dcgan_command(images, tmp_path / "run", "--inject-nan", "0:1"), attempts)
    assert not result.success
    failure = _failure(result)
    assert "non-finite loss" in failure.description  # the trainer's own message, not "failed with code 2"
    assert attempts.read_text() == "1"  # not retried


@pytest.mark.slow
@pytest.mark.parametrize("array, says", [(np.zeros((4, 64, 64, 3), np.float32), "uint8 array"),
                                         (np.zeros((4, 32, 32, 3), np.uint8), "got (4, 32, 32, 3)"),
                                         (np.zeros((1, 64, 64, 3), np.uint8), "at least 2 training images"),
                                         (None, "not a readable .npy")])
def test_bad_input_fails_once_naming_the_file(tmp_path, array, says):
    bad = tmp_path / "set.npy"
    if array is None:
        bad.write_bytes(b"not numpy")
    else:
        np.save(bad, array)
    attempts = tmp_path / "attempts"
    result = _materialize(lambda _: _dcgan_command(bad, tmp_path / "run"), attempts)
    failure = _failure(result)
    assert str(bad) in failure.description and says in failure.description, failure.description
    assert attempts.read_text() == "1"


@pytest.mark.slow
def test_a_refused_resume_fails_once(images, tmp_path):
    out = tmp_path / "run"
    # a checkpoint from "2 processes": resuming it with 1 would silently change the run, so it is refused
    first = _materialize(lambda _: _dcgan_command(images, out), tmp_path / "first")
    assert first.success
    import torch

    checkpoint_path = out / "checkpoint_last.pt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    _set_world_size(checkpoint, 2)
    torch.save(checkpoint, checkpoint_path)
    attempts = tmp_path / "attempts"
    longer = TrainConfig(**{**TINY.__dict__, "epochs": 2})
    result = _materialize(lambda _: [sys.executable, "-m", "fashion_pipeline.gan.dcgan", "--data", str(images),
                                     "--out", str(out), *dcgan.command_args(longer)], attempts)
    failure = _failure(result)
    assert "was trained by 2 process(es); this run has 1" in failure.description
    assert attempts.read_text() == "1"


def _set_world_size(checkpoint: dict, world_size: int) -> None:
    """Wherever the DCGAN checkpoint records its world size (its resume signature)."""
    found = False
    for holder in [checkpoint, *(v for v in checkpoint.values() if isinstance(v, dict))]:
        if "world_size" in holder:
            holder["world_size"] = world_size
            found = True
    assert found, sorted(checkpoint)


@pytest.mark.slow
def test_a_killed_trainer_is_retried(images, tmp_path):
    attempts = tmp_path / "attempts"
    kill_self = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    result = _materialize(lambda attempt: kill_self if attempt == 1 else _dcgan_command(images, tmp_path / "run"),
                          attempts)
    assert result.success
    assert attempts.read_text() == "2"  # the killed attempt, then the retry that trained
    metadata = result.asset_materializations_for_node("trainer")[0].metadata
    assert metadata["epochs"].value == 1


def test_a_transient_failure_says_it_was_killed(tmp_path):
    attempts = tmp_path / "attempts"
    kill_self = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    result = _materialize(lambda _: kill_self, attempts)
    assert not result.success
    assert attempts.read_text() == "3"  # the first try and both retries
    failure = result.get_step_failure_events()[-1].step_failure_data.user_failure_data
    assert "killed by SIGKILL" in failure.description


@pytest.mark.slow
def test_a_malformed_coco_file_fails_the_detector_once_naming_file_and_line(tmp_path):
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "train.json").write_text('{"images": [],\n "annotations": [,]}')
    (coco / "val.json").write_text('{"images": [], "annotations": [], "categories": []}')
    attempts = tmp_path / "attempts"
    command = [sys.executable, "-m", "fashion_pipeline.detector.train", "--backbone", "resnet18", "--coco-dir", str(coco),
               "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--max-iter", "1"]
    failure = _failure(_materialize(lambda _: command, attempts))
    assert f"{coco / 'train.json'}:2: not valid JSON" in failure.description
    assert attempts.read_text() == "1"
