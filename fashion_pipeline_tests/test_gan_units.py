"""Unit tests of the GAN stage's plain modules: cropping policy, subsets, resizing, distances, DCGAN resume."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_pipeline.gan import crops, dcgan, detect, quality, training_sets


# ---------------------------------------------------------------- cropping policy

def _inside(square, width, height):
    x0, y0, x1, y1 = square
    return 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height


def test_square_box_is_square_around_the_centre_with_the_longer_side():
    square = crops.square_box((100, 50, 140, 150), 400, 300)  # 40 wide, 100 tall, centre (120, 100)
    x0, y0, x1, y1 = square
    assert x1 - x0 == y1 - y0 == 100
    assert (x0 + x1) / 2 == 120 and (y0 + y1) / 2 == 100
    assert _inside(square, 400, 300)


def test_square_box_is_shifted_into_the_image_not_shrunk():
    square = crops.square_box((0, 10, 20, 110), 400, 300)  # the square would start at x = -40
    assert square == (0, 10, 100, 110)
    square = crops.square_box((380, 200, 400, 300), 400, 300)  # would end beyond both edges
    assert square == (300, 200, 400, 300)


def test_square_box_shrinks_only_when_the_image_is_smaller_than_the_side():
    square = crops.square_box((10, 0, 60, 200), 120, 200)  # side 200 > image width 120
    x0, y0, x1, y1 = square
    assert x1 - x0 == y1 - y0 == 120
    assert _inside(square, 120, 200)


def test_square_box_rejects_degenerate_boxes():
    with pytest.raises(ValueError, match="degenerate"):
        crops.square_box((10, 10, 10, 50), 100, 100)


def test_best_fullbody_box_is_the_top_scoring_full_body_above_threshold():
    detections = pd.DataFrame({
        "image_id": ["a", "b", "c"], "file_path": ["a.jpg", "b.jpg", "c.jpg"],
        "width": [100, 100, 100], "height": [100, 100, 100],
        "boxes": [[[0, 0, 10, 10], [5, 5, 50, 90], [1, 1, 60, 60]], [[0, 0, 10, 10]], [[2, 2, 30, 30]]],
        "labels": [[1, 3, 3], [3], [3]],
        "scores": [[0.99, 0.8, 0.7], [0.4], [0.6]],
    })
    boxes = crops.best_fullbody_boxes(detections, score_threshold=0.5)
    assert list(boxes["image_id"]) == ["a", "c"]  # b's only full-body box is below the threshold
    first = boxes.iloc[0]
    assert first["score"] == pytest.approx(0.8)  # not the upper-body 0.99
    assert (first["box_x1"], first["box_y2"]) == (5, 90)
    assert sorted(crops.fullbody_scores(detections).round(2)) == [0.4, 0.6, 0.7, 0.8]


# ---------------------------------------------------------------- training sets

def test_seeded_subset_is_reproducible_sized_and_drawn_from_the_input():
    ids = [f"img{i:03d}" for i in range(100)]
    first = training_sets.seeded_subset(ids, 30, seed=7)
    assert first == training_sets.seeded_subset(ids, 30, seed=7)
    assert first != training_sets.seeded_subset(ids, 30, seed=8)
    assert len(first) == len(set(first)) == 30
    assert set(first) <= set(ids)
    assert first == sorted(first, key=ids.index)  # kept in input order
    with pytest.raises(ValueError, match="subset of 101"):
        training_sets.seeded_subset(ids, 101, seed=0)


def test_subset_variant_has_the_size_of_cropped():
    dataset = pd.DataFrame({"image_id": [f"i{i}" for i in range(20)], "file_path": [f"p{i}.jpg" for i in range(20)]})
    crop_manifest = pd.DataFrame({"image_id": ["i1", "i2", "i3"], "crop_path": ["c1.png", "c2.png", "c3.png"]})
    subset = training_sets.variant_rows("subset", dataset, crop_manifest, seed=0)
    assert len(subset) == 3 and set(subset["image_id"]) <= set(dataset["image_id"])
    assert list(training_sets.variant_rows("cropped", dataset, crop_manifest, 0)["file_path"]) == ["c1.png", "c2.png", "c3.png"]
    assert len(training_sets.variant_rows("original", dataset, crop_manifest, 0)) == 20


def test_load_square_resizes_the_shorter_side_and_keeps_the_centre(tmp_path):
    image = np.zeros((100, 300, 3), np.uint8)  # wide: left third red, centre green, right third blue
    image[:, :100, 0] = 255
    image[:, 100:200, 1] = 255
    image[:, 200:, 2] = 255
    Image.fromarray(image).save(tmp_path / "wide.png")
    square = training_sets.load_square(tmp_path / "wide.png")
    assert square.shape == (64, 64, 3) and square.dtype == np.uint8
    assert square[:, 8:56, 1].min() > 200 and square[:, 8:56, [0, 2]].max() < 60  # only the green centre


def test_unreadable_image_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        training_sets.load_square(bad)


# ---------------------------------------------------------------- distances

def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    features = np.random.default_rng(0).normal(size=(500, 16))
    assert quality.fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + 3.0
    assert quality.fid_from_features(features, shifted) == pytest.approx(16 * 9.0, rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    mu = np.zeros(3)
    value = quality.frechet_distance(mu, np.diag([1.0, 4.0, 9.0]), mu, np.diag([4.0, 4.0, 1.0]))
    # sum over dims of (sqrt(a) - sqrt(b))^2 = 1 + 0 + 4
    assert value == pytest.approx(5.0, rel=1e-9)


def test_kid_is_near_zero_for_same_distribution_and_positive_for_different():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    same, _ = quality.kernel_inception_distance(a, b, subsets=10, subset_size=200)
    different, _ = quality.kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 0.05 < different


# ---------------------------------------------------------------- DCGAN

def test_architecture_matches_thesis_figures():
    generator, discriminator = dcgan.Generator(), dcgan.Discriminator()
    convs = [m for m in generator.main if isinstance(m, dcgan.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    convs = [m for m in discriminator.main if isinstance(m, dcgan.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert not isinstance(discriminator.main[1], dcgan.nn.BatchNorm2d)  # no BN after the input layer
    fake = generator(dcgan.torch.randn(2, 100, 1, 1))
    assert fake.shape == (2, 3, 64, 64) and discriminator(fake).shape == (2,)


def test_best_epoch_is_closest_to_equilibrium_after_warmup():
    def row(epoch, d_x, d_g_z2, loss_g=1.0):
        return {"epoch": epoch, "D_x": d_x, "D_G_z2": d_g_z2, "Loss_G": loss_g}

    history = [row(1, 0.5, 0.5)] + [row(e, 0.9, 0.1) for e in range(2, 10)] + [row(10, 0.6, 0.4)]
    assert history[dcgan.best_epoch_index(history)]["epoch"] == 10  # epoch 1 is warm-up
    assert dcgan.best_epoch_index([row(1, 0.9, 0.1)]) == 0


class _Interrupt(Exception):
    pass


def _tiny_images(count=32):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    return base[rng.integers(0, 4, count)]


@pytest.mark.slow
def test_training_resumes_after_interruption_exactly_where_it_stopped(tmp_path):
    images = _tiny_images()
    config = dcgan.TrainConfig(epochs=2, batch_size=16, ngf=8, ndf=8)

    def stop_after_first(epoch, stats):
        if epoch == 0:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        dcgan.train(images, tmp_path / "interrupted", config, on_epoch_end=stop_after_first, log=lambda m: None)
    assert (tmp_path / "interrupted" / dcgan.CHECKPOINT_NAME).exists()
    assert not (tmp_path / "interrupted" / dcgan.GENERATOR_NAME).exists()

    resumed = dcgan.train(images, tmp_path / "interrupted", config, log=lambda m: None)
    straight = dcgan.train(images, tmp_path / "straight", config, log=lambda m: None)
    assert resumed.start_epoch == 1 and resumed.epochs_run == 1
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    # Restored RNG states: the resumed run reproduces an uninterrupted one.
    for a, b in zip(resumed.history, straight.history):
        assert a["Loss_D"] == pytest.approx(b["Loss_D"], rel=1e-4)
        assert a["Loss_G"] == pytest.approx(b["Loss_G"], rel=1e-4)


@pytest.mark.slow
def test_checkpoint_of_other_data_is_not_resumed(tmp_path):
    config = dcgan.TrainConfig(epochs=1, batch_size=16, ngf=8, ndf=8)
    dcgan.train(_tiny_images(), tmp_path, config, log=lambda m: None)
    other = dcgan.train(_tiny_images(24), tmp_path, config, log=lambda m: None)
    assert other.start_epoch == 0 and other.epochs_run == 1


def test_checkpoint_rng_states_come_back_as_cpu_bytes_through_a_device_map(tmp_path):
    """On CUDA the checkpoint is read with a device map; the RNG states must still be CPU byte tensors,
    the only kind ``torch.set_rng_state`` and ``Generator.set_state`` accept."""
    config = dcgan.TrainConfig(epochs=1, batch_size=16, ngf=4, ndf=4)
    dcgan.train(_tiny_images(), tmp_path, config, log=lambda m: None)
    locations = []

    def device_map(storage, location):  # what map_location=<device> does, observed
        locations.append(location)
        return storage

    state = dcgan.read_checkpoint(tmp_path / dcgan.CHECKPOINT_NAME, map_location=device_map)
    assert locations, "the device map was not applied"
    for key in ("order_rng", "torch_rng"):
        assert state[key].device.type == "cpu" and state[key].dtype == dcgan.torch.uint8, key
    trainer = dcgan._Trainer(_tiny_images(), config, dcgan.torch.device("cpu"))
    trainer.load_state(state)
    after_load = dcgan.torch.rand(4)
    dcgan.torch.set_rng_state(state["torch_rng"])
    assert dcgan.torch.equal(after_load, dcgan.torch.rand(4))  # the saved stream, restored


def test_history_records_the_tutorial_loops_last_printed_batch_next_to_the_means():
    per_step = np.arange(120 * 5, dtype=float).reshape(120, 5)
    row = dcgan.epoch_record(3, per_step)
    assert row["epoch"] == 4 and row["Loss_D"] == pytest.approx(per_step[:, 0].mean())
    logged = row["tutorial_last_logged"]  # the tutorial prints when i % 50 == 0: i = 0, 50, 100
    assert logged["batch"] == 100
    assert [logged[name] for name in dcgan.STAT_NAMES] == per_step[100].tolist()
    assert dcgan.epoch_record(0, per_step[:42])["tutorial_last_logged"]["batch"] == 0  # 5,328 crops / 128


@pytest.mark.slow
def test_trained_history_keeps_the_single_logged_batch(tmp_path):
    result = dcgan.train(_tiny_images(), tmp_path, dcgan.TrainConfig(epochs=1, batch_size=8, ngf=4, ndf=4),
                         log=lambda m: None)
    saved = json.loads((tmp_path / dcgan.HISTORY_NAME).read_text())
    logged = saved["epochs"][0]["tutorial_last_logged"]
    assert logged == result.history[0]["tutorial_last_logged"] and logged["batch"] == 0
    first_step = saved["step_losses"][0]
    assert (logged["Loss_D"], logged["Loss_G"]) == pytest.approx(tuple(first_step))
    assert logged["Loss_D"] != pytest.approx(saved["epochs"][0]["Loss_D"])  # one batch, not the mean of four


def test_128_px_adds_one_sampling_layer_to_each_network():
    generator, discriminator = dcgan.Generator(ngf=4, image_size=128), dcgan.Discriminator(ndf=4, image_size=128)
    convs = [m for m in generator.main if isinstance(m, dcgan.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(100, 64), (64, 32), (32, 16), (16, 8), (8, 4), (4, 3)]
    convs = [m for m in discriminator.main if isinstance(m, dcgan.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 1)]
    fake = generator(dcgan.torch.randn(2, 100, 1, 1))
    assert fake.shape == (2, 3, 128, 128) and discriminator(fake).shape == (2,)
    with pytest.raises(ValueError, match="image_size must be one of"):
        dcgan.TrainConfig(image_size=96)


@pytest.mark.slow
def test_128_px_trains_saves_and_samples_at_its_size(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (8, 128, 128, 3), dtype=np.uint8)
    config = dcgan.TrainConfig(epochs=1, batch_size=4, ngf=4, ndf=4, image_size=128)
    dcgan.train(images, tmp_path, config, log=lambda m: None)
    generator = dcgan.load_generator(tmp_path / dcgan.GENERATOR_NAME)
    assert dcgan.sample(generator, 3).shape == (3, 128, 128, 3)
    assert np.load(tmp_path / "fixed_noise_fakes.npy").shape == (64, 128, 128, 3)
    with pytest.raises(ValueError, match="128 x 128 x 3 uint8"):
        dcgan.train(images[:, :64, :64], tmp_path / "wrong", config)


def test_training_set_is_built_at_128_px_on_demand(tmp_path):
    for index in range(3):
        Image.new("RGB", (100 + index, 200), (10 * index, 50, 90)).save(tmp_path / f"c{index}.png")
    crop_manifest = pd.DataFrame({"image_id": ["a", "b", "c"], "crop_path": [f"c{i}.png" for i in range(3)]})
    dataset = pd.DataFrame({"image_id": ["a", "b", "c"], "file_path": [f"c{i}.png" for i in range(3)]})
    images, _ = training_sets.build_variant(tmp_path, "cropped", dataset, crop_manifest, tmp_path / "out", size=128)
    assert images.shape == (3, 128, 128, 3)
    assert np.load(tmp_path / "out" / "cropped_128px.npy").shape == (3, 128, 128, 3)
    assert (tmp_path / "out" / "cropped_128px.parquet").exists() and not (tmp_path / "out" / "cropped.npy").exists()


def test_bad_training_array_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="64 x 64 x 3 uint8"):
        dcgan.train(np.zeros((8, 32, 32, 3), np.uint8), tmp_path, dcgan.TrainConfig(epochs=1))


# ---------------------------------------------------------------- detection

def test_tune_for_inference_shrinks_input_and_only_lowers_proposals():
    import types

    model = types.SimpleNamespace(transform=types.SimpleNamespace(min_size=(800,), max_size=1333),
                                  rpn=types.SimpleNamespace(_pre_nms_top_n={"testing": 1000}, _post_nms_top_n={"testing": 100}))
    detect.tune_for_inference(model, min_size=400, max_proposals=300)
    assert model.transform.min_size == (400,) and model.transform.max_size == 666
    assert model.rpn._post_nms_top_n["testing"] == 100  # never raised
    detect.tune_for_inference(model, max_proposals=50)
    assert model.rpn._post_nms_top_n["testing"] == 50 and model.rpn._pre_nms_top_n["testing"] == 100


def test_detection_error_names_the_unreadable_image(tmp_path, monkeypatch):
    import types

    (tmp_path / "broken.jpg").write_bytes(b"\x00not an image")
    stub = types.SimpleNamespace(load_detector=lambda path, device: object(),
                                 predict=lambda model, images, device, batch_size=8: [])
    monkeypatch.setattr(detect, "load_inference", lambda: stub)
    manifest = pd.DataFrame({"image_id": ["x"], "file_path": ["broken.jpg"], "width": [1], "height": [1]})
    with pytest.raises(ValueError, match="broken.jpg"):
        detect.detect_images(manifest, tmp_path, "unused.pt", device="cpu")
