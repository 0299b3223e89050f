"""The try-on models (issue 22): the TPS grid against scipy's thin-plate spline, sizes derived from the
configuration, the agnostic representation, CAGAN's composition, resumption after a crash (both models),
divergence as a non-retryable exit, and the trained models as report methods at the pairs' size."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from fashion_pipeline.synthetic import tryon as synthetic
from fashion_pipeline.tryon import baselines, cagan, gmm, inputs, models, tom, train
from fashion_pipeline.tryon.layout import Layout, read_pairs
from fashion_pipeline.tryon.model_settings import MODEL_NAME, TrainConfig

H, W = 64, 48
TINY = dict(batch_size=2, ngf=4, max_channels=16, ndf=4, checkpoint_every=1, log_every=1, lr=2e-4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tryon_models")
    synthetic.write_dataset(root, synthetic.Spec(H, W, train=6, test=4, seed=5))
    return root


@pytest.fixture(scope="module")
def arrays(dataset):
    return inputs.load_training(dataset, H, W)


def _quiet(message):
    pass


# ---------------------------------------------------------------- TPS and sizes

def test_tps_grid_is_the_thin_plate_spline_through_the_control_points():
    height, width = 17, 13  # control points of a 5 x 5 grid fall on pixels
    grid = gmm.TpsGrid(height, width, grid_size=5)
    theta = torch.tensor(np.random.default_rng(0).normal(0, 0.1, (1, 50)), dtype=torch.float32)
    out = grid(theta)[0].numpy().reshape(-1, 2)
    points = gmm.control_points(5)
    targets = points + theta[0].numpy().reshape(2, 25).T
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    expected = RBFInterpolator(points, targets, kernel="thin_plate_spline", degree=1)(pixels)
    assert np.abs(out - expected).max() < 1e-4
    identity = grid(torch.zeros(1, 50))[0].numpy().reshape(-1, 2)
    assert np.abs(identity - pixels).max() < 1e-5
    assert np.abs(out - pixels).max() > 0.05  # the offsets moved it


@pytest.mark.parametrize("height", [64, 128, 256])
def test_gmm_and_unet_are_sized_from_the_configuration(height):
    width = height * 3 // 4
    model = gmm.GMM(inputs.AGNOSTIC_CHANNELS, height, width, grid_size=5, ngf=4, max_channels=16)
    grid, theta = model(torch.zeros(2, inputs.AGNOSTIC_CHANNELS, height, width), torch.zeros(2, 3, height, width))
    assert grid.shape == (2, height, width, 2) and theta.shape == (2, 50)
    assert torch.allclose(grid[0], model.grid(torch.zeros(1, 50))[0])  # starts at the identity warp
    downs = tom.default_num_downs(height)
    assert height // 2 ** downs == 4  # CP-VTON's 4 x 3 bottleneck at every size
    out = tom.TryOnModule(downs, ngf=4)(torch.zeros(1, inputs.AGNOSTIC_CHANNELS, height, width), torch.zeros(1, 3, height, width))
    assert out[0].shape == (1, 3, height, width) and out[2].shape == (1, 1, height, width)


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="divisible by 16"):
        gmm.GMM(inputs.AGNOSTIC_CHANNELS, 60, 45)
    with pytest.raises(ValueError, match="divisible by 32"):
        tom.check_unet_size(64, 48, 5)


# ---------------------------------------------------------------- inputs and CAGAN

def test_agnostic_representation_keeps_head_pose_and_shape_but_not_the_garment(dataset, arrays):
    data = inputs.device_tensors(arrays, "cpu")
    batch = inputs.batch(data, torch.tensor([0]), inputs.pose_radius(H))
    assert batch.agnostic.shape == (1, inputs.AGNOSTIC_CHANNELS, H, W)
    head = inputs.label_mask(data["parse"][:1], inputs.HEAD_IDS)[0, 0].bool()
    torch.testing.assert_close(batch.agnostic[0, 1:4][:, head], batch.person[0][:, head])
    assert (batch.agnostic[0, 1:4][:, ~head] == -1).all()  # no garment pixel leaks through the head channels
    nose = arrays.keypoints[0, 0]
    assert batch.agnostic[0, 4, int(round(nose[1])), int(round(nose[0]))] == 1.0
    assert (batch.agnostic[0, 4] == 1).sum() <= (2 * inputs.pose_radius(H) + 1) ** 2
    # the worn garment on white is what the GMM reproduces
    assert ((batch.worn == 1.0) | (batch.worn_mask.bool())).all()


def test_cagan_composes_alpha_x_tilde_and_the_input():
    torch.manual_seed(0)
    generator = cagan.Generator(num_downs=4, ngf=4)
    person, worn, wanted = (torch.rand(2, 3, H, W) * 2 - 1 for _ in range(3))
    out, alpha, image = generator(person, worn, wanted)
    torch.testing.assert_close(out, alpha * image + (1 - alpha) * person)
    assert alpha.shape == (2, 1, H, W) and 0 <= float(alpha.detach().min()) and float(alpha.detach().max()) <= 1
    d = cagan.Discriminator(ndf=4)
    losses = cagan.generator_losses(generator, d, person, worn, wanted, out, alpha, gamma_id=0.1, gamma_cyc=1.0)
    assert set(losses) == {"gan", "alpha_l1", "cycle", "total"}
    value = {k: float(v.detach()) for k, v in losses.items()}
    assert value["total"] == pytest.approx(value["gan"] + 0.1 * value["alpha_l1"] + value["cycle"], rel=1e-5)


def test_losses_name_what_is_used_and_refuse_a_missing_vgg_file(tmp_path):
    assert tom.TryOnLosses().names == ["L1", "SSIM"]
    with pytest.raises(FileNotFoundError, match="vgg19.pth"):
        tom.TryOnLosses(vgg_weights=str(tmp_path / "vgg19.pth"))
    x = torch.rand(1, 3, 32, 24) * 2 - 1
    assert float(tom.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(tom.ssim(x, -x)) < 0.5


# ---------------------------------------------------------------- training: resume, divergence

class Crash(Exception):
    pass


def _crash_at(stage_name: str, step: int):
    def hook(stage, done):
        if stage == stage_name and done == step:
            raise Crash()
    return hook


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=False)["state_dicts"]


@pytest.mark.slow
@pytest.mark.parametrize("method,stage,steps", [("viton", "tom", dict(gmm_steps=3, steps=4)),
                                                 ("cagan", "cagan", dict(steps=5))])
def test_a_crashed_run_resumes_to_the_same_weights(arrays, tmp_path, method, stage, steps):
    config = TrainConfig(method=method, **TINY, **steps)
    straight = train.train(arrays, tmp_path / "straight", config, log=_quiet)
    with pytest.raises(Crash):
        train.train(arrays, tmp_path / "crashed", config, log=_quiet, on_step=_crash_at(stage, 2))
    assert not (tmp_path / "crashed" / MODEL_NAME).exists()
    messages = []
    resumed = train.train(arrays, tmp_path / "crashed", config, log=messages.append)
    assert any(f"stage {stage}: resuming from step 2" in m for m in messages)
    assert resumed.stages[-1].start_step == 2 and straight.stages[-1].start_step == 0
    a, b = _weights(tmp_path / "straight" / MODEL_NAME), _weights(tmp_path / "crashed" / MODEL_NAME)
    for module in a:
        for key in a[module]:
            assert torch.equal(a[module][key], b[module][key]), (module, key)
    assert straight.stages[-1].history == resumed.stages[-1].history  # the RNG states came back too


@pytest.mark.slow
def test_other_data_or_settings_start_again_and_more_steps_continue(arrays, tmp_path):
    config = TrainConfig(method="encoder_decoder", steps=2, **TINY)
    train.train(arrays, tmp_path, config, log=_quiet)
    messages = []
    train.train(arrays, tmp_path, TrainConfig(**{**config.__dict__, "ngf": 8}), log=messages.append)
    assert any("trained with other settings" in m for m in messages)
    fewer = inputs.Arrays(**{k: v[:4] for k, v in arrays.__dict__.items()})
    messages = []
    train.train(fewer, tmp_path, config, log=messages.append)
    assert any("trained on other data" in m for m in messages)
    result = train.train(fewer, tmp_path, TrainConfig(**{**config.__dict__, "steps": 3}), log=_quiet)
    assert result.stages[0].start_step == 2 and result.stages[0].history[-1]["step"] == 3


def test_a_nan_is_a_divergence(arrays, tmp_path):
    config = TrainConfig(method="encoder_decoder", steps=3, **TINY)
    with pytest.raises(train.TrainingDiverged, match="non-finite loss in stage encoder_decoder at step 2"):
        train.train(arrays, tmp_path, config, log=_quiet, inject_nan=(0, 1))


@pytest.mark.slow
def test_the_cli_exits_not_retryable_with_its_message(dataset, tmp_path):
    failure = tmp_path / "failure.txt"
    command = [sys.executable, "-m", "fashion_pipeline.tryon.train", "--root", str(dataset), "--height", str(H),
               "--out", str(tmp_path / "out"), "--method", "cagan", "--steps", "3", "--ngf", "4", "--ndf", "4",
               "--batch-size", "2", "--inject-nan", "0:1"]
    env = {**os.environ, "FASHION_PIPELINE_FAILURE_FILE": str(failure), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "non-finite loss in stage cagan at step 2" in failure.read_text()
    bad = subprocess.run([*command[:4], str(tmp_path / "nowhere"), *command[5:-2]], capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "train_pairs.txt" in failure.read_text()


# ---------------------------------------------------------------- as report methods

@pytest.mark.slow
def test_trained_models_run_as_methods_at_the_pairs_size(dataset, arrays, tmp_path):
    paths = {}
    for method in ("viton", "encoder_decoder", "cagan"):
        train.train(arrays, tmp_path / method, TrainConfig(method=method, steps=2, gmm_steps=2, **TINY), log=_quiet)
        paths[method] = tmp_path / method / MODEL_NAME
    names = models.register(paths, dataset)
    assert names == ["viton", "viton_warp", "encoder_decoder", "cagan"]
    big = Layout(dataset, "test", 128, 96)  # scored at twice the training size
    sample = big.load(read_pairs(dataset, "test")[0])
    for name in names:
        output, extras = baselines.METHODS[name].run(sample)
        assert output.shape == (128, 96, 3) and output.dtype == np.uint8
        assert 0 <= extras["ssim_garment"] <= 1
    _, extras = baselines.METHODS["viton"].run(sample)
    assert 0 <= extras["mask_iou"] <= 1 and extras["warp_error_px"] > 0
    assert 0 <= baselines.METHODS["cagan"].run(sample)[1]["alpha_iou"] <= 1
    with pytest.raises(ValueError, match="holds a cagan model"):
        models.register({"viton": paths["cagan"]}, dataset)


def test_with_the_agnostic_image_the_shown_pixels_are_the_persons(arrays):
    data = inputs.device_tensors(arrays, "cpu")
    batch = inputs.batch(data, torch.tensor([0, 1]), inputs.pose_radius(H), inputs.agnostic_dilate(H))
    hidden = 1 - batch.keep
    garment = batch.worn_mask.bool()
    assert bool((hidden.bool() | ~garment).all())  # the old garment is hidden, all of it
    assert 0.05 < float(hidden.mean()) < 0.6
    torch.manual_seed(0)
    module = tom.TryOnModule(num_downs=4, ngf=4, agnostic_image=True)
    output, rendered, alpha = module(batch.agnostic, batch.cloth, batch.shown, batch.keep)
    shown = batch.keep.bool().expand_as(output)
    torch.testing.assert_close(output[shown], batch.person[shown])  # the rest of the person is unchanged
    assert float(alpha[batch.keep.bool()].abs().max()) == 0.0 and float(alpha.max()) > 0
    plain = tom.TryOnModule(num_downs=4, ngf=4)  # CP-VTON's representation only: nothing is kept
    assert plain.unet.downs[0].in_channels == inputs.AGNOSTIC_CHANNELS + 3


def test_retuning_the_try_on_module_keeps_the_gmm_checkpoint():
    a, b = TrainConfig(method="viton"), TrainConfig(method="viton", alpha_reward=0.5, agnostic_image=True, num_downs=4)
    assert a.architecture("gmm") == b.architecture("gmm") and a.architecture("tom") != b.architecture("tom")
    assert a.architecture("gmm") != TrainConfig(method="viton", grid_size=3).architecture("gmm")


def test_hidden_weight_weighs_the_loss_toward_the_rendered_region():
    target = torch.zeros(1, 3, 32, 24)
    hidden = torch.zeros(1, 1, 32, 24)
    hidden[..., 8:24, 6:18] = 1.0
    inside, outside = target.clone(), target.clone()
    inside[..., 12:20, 9:15] = 0.5  # an error where the model renders
    outside[..., 0:6, 0:6] = 0.5  # the same error where the agnostic image shows the person
    plain, weighted = tom.TryOnLosses(), tom.TryOnLosses(hidden_weight=3.0)
    assert weighted.names == ["L1 (hidden region x4)", "SSIM (hidden region x4)"]
    assert float(weighted(inside, target, hidden)) > float(plain(inside, target, hidden))
    assert float(weighted(outside, target, hidden)) < float(plain(outside, target, hidden))
    l1_only = tom.TryOnLosses(ssim_weight=0.0, hidden_weight=3.0)  # 48 pixels off by 0.5, all of them weighted 4
    assert float(l1_only(inside, target, hidden)) == pytest.approx(4 * 0.5 * 48 / (768 + 3 * 192), rel=1e-5)
    assert float(plain(inside, target, hidden)) == pytest.approx(float(plain(inside, target)))  # 0: CP-VTON's mean
    assert float(weighted(target, target, hidden)) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="hidden_weight"):
        TrainConfig(hidden_weight=-1)


@pytest.mark.slow
def test_render_height_trains_the_try_on_module_at_its_own_size(dataset, arrays, tmp_path):
    """The GMM at 64 x 48, the TOM (and the encoder-decoder) at 128 x 96 on the GMM's TPS evaluated there; the
    GMM is the one a single-size run trains, and the predictor runs each module at its own size."""
    big = inputs.load_training(dataset, 2 * H, 2 * W)
    config = TrainConfig(method="viton", steps=2, gmm_steps=2, render_height=2 * H, hidden_weight=1.0, **TINY)
    with pytest.raises(ValueError, match="render_height 128 needs the pairs read at that height"):
        train.train(arrays, tmp_path / "none", config, log=_quiet)
    result = train.train(arrays, tmp_path / "two", config, log=_quiet, render_arrays=big)
    single = train.train(arrays, tmp_path / "one", TrainConfig(**{**config.__dict__, "render_height": 0}), log=_quiet)
    saved = torch.load(tmp_path / "two" / MODEL_NAME, weights_only=False)
    assert saved["sizes"] == {"gmm": [H, W], "tom": [2 * H, 2 * W]} and (saved["height"], saved["width"]) == (H, W)
    assert saved["stage_configs"]["tom"]["num_downs"] == 5 and saved["stage_configs"]["gmm"]["num_downs"] == 4
    one = _weights(tmp_path / "one" / MODEL_NAME)
    for key, value in saved["state_dicts"]["gmm"].items():
        assert torch.equal(value, one["gmm"][key]), key
    assert result.stages[1].losses[0] == "L1 (hidden region x2)"
    predictor = models.Predictor(tmp_path / "two" / MODEL_NAME)
    assert predictor.render_size == (2 * H, 2 * W) and predictor.modules["tom"].unet.downs.__len__() == 5
    sample = Layout(dataset, "test", 2 * H, 2 * W).load(read_pairs(dataset, "test")[0])
    out = predictor.run(sample)
    assert out["output"].shape == (2 * H, 2 * W, 3) and predictor._small_warp.shape[-2:] == (2 * H, 2 * W)
    ed = train.train(arrays, tmp_path / "ed", TrainConfig(**{**config.__dict__, "method": "encoder_decoder"}),
                     log=_quiet, render_arrays=big)
    assert ed.config.num_downs == 5
    assert models.Predictor(tmp_path / "ed" / MODEL_NAME).run(sample)["output"].shape == (2 * H, 2 * W, 3)
