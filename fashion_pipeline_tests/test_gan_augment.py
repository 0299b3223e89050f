"""DiffAugment: each policy changes images the way it says, keeps shapes, and lets gradients through."""
import pytest
import torch

from fashion_pipeline.gan import augment


def _images(n=6, size=16):
    torch.manual_seed(0)
    return torch.rand(n, 3, size, size) * 2 - 1


def test_translation_moves_pixels_and_fills_with_zeros():
    images = torch.ones(64, 3, 16, 16)
    torch.manual_seed(1)
    moved = augment.translation(images)
    assert moved.shape == images.shape
    # a shifted all-ones image has a zero border strip; some of 64 draws shift by at least one pixel
    assert (moved == 0).any() and set(moved.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_a_square_of_half_the_side():
    images = torch.ones(8, 3, 16, 16)
    torch.manual_seed(2)
    cut = augment.cutout(images)
    zeros = (cut[:, 0] == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 8 * 8).all()  # clipped at the border: at most 8 x 8
    assert torch.equal(cut[:, 0] == 0, cut[:, 2] == 0)  # the same square in every channel


def test_color_varies_per_image_and_is_differentiable():
    images = _images().requires_grad_(True)
    out = augment.color(images)
    out.sum().backward()
    assert out.shape == images.shape and images.grad is not None and torch.isfinite(images.grad).all()
    shifts = (out - images).mean(dim=[1, 2, 3])
    assert shifts.std() > 0  # each image drew its own brightness/saturation/contrast


def test_the_whole_policy_passes_gradients_to_the_generator_side():
    images = _images().requires_grad_(True)
    augment.diff_augment(images, augment.parse_policy("color,translation,cutout")).pow(2).sum().backward()
    assert images.grad.abs().sum() > 0


def test_unknown_policy_names_are_refused_with_the_choices():
    assert augment.parse_policy("") == ()
    with pytest.raises(ValueError, match="unknown augmentation.*color, translation, cutout"):
        augment.parse_policy("color,flip")


def test_a_dcgan_trains_with_diffaugment_and_its_checkpoint_records_the_policy(tmp_path):
    import numpy as np

    from fashion_pipeline.gan import dcgan

    images = np.random.default_rng(0).integers(0, 255, (32, 64, 64, 3), dtype=np.uint8)
    config = dcgan.TrainConfig(ngf=4, ndf=4, batch_size=16, epochs=1, device="cpu",
                               diff_augment="color,translation,cutout")
    result = dcgan.train(images, tmp_path, config, log=lambda message: None)
    assert all(np.isfinite(result.history[0][name]) for name in dcgan.STAT_NAMES)
    saved = torch.load(tmp_path / dcgan.CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    assert saved["architecture"]["diff_augment"] == "color,translation,cutout"


def test_random_flip_mirrors_about_half_of_the_images_and_leaves_the_rest():
    images = _images(n=200)
    torch.manual_seed(1)
    flipped = augment.random_flip(images)
    mirrored = [bool(torch.equal(f, i.flip(2))) for f, i in zip(flipped, images)]
    unchanged = [bool(torch.equal(f, i)) for f, i in zip(flipped, images)]
    assert all(m != u for m, u in zip(mirrored, unchanged))  # every image is one or the other, never both
    assert 70 < sum(mirrored) < 130


def test_a_step_budget_sets_the_epochs_from_the_training_set_size(tmp_path):
    import numpy as np

    from fashion_pipeline.gan import dcgan

    rng = np.random.default_rng(0)
    small, large = (rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8) for n in (16, 40))
    config = dcgan.TrainConfig(ngf=4, ndf=4, batch_size=8, epochs=99, steps=9, device="cpu", flip=True)
    # 16 images: 2 steps an epoch -> 5 epochs (10 steps); 40 images: 5 steps an epoch -> 2 epochs (10 steps)
    assert len(dcgan.train(small, tmp_path / "small", config, log=lambda m: None).history) == 5
    assert len(dcgan.train(large, tmp_path / "large", config, log=lambda m: None).history) == 2
    saved = torch.load(tmp_path / "large" / dcgan.CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    assert saved["architecture"]["flip"] is True
    with pytest.raises(ValueError, match="steps"):
        dcgan.TrainConfig(steps=-1)
