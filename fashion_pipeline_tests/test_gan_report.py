"""The ablation report's Table 5.2 sections: epoch means, the tutorial's printed batch, the thesis, over seeds."""
from fashion_pipeline.gan import report

STATS = ("Loss_D", "Loss_G", "D_x", "D_G_z1", "D_G_z2")


def _row(epoch: int, base: float, printed: float | None) -> dict:
    row = {"epoch": epoch, **{name: base + i / 10 for i, name in enumerate(STATS)}}
    if printed is not None:
        row[report.TUTORIAL_KEY] = {"batch": 50, **{name: printed + i / 10 for i, name in enumerate(STATS)}}
    return row


def _history(base: float, printed: float | None) -> dict:
    # one epoch only: the best epoch is that one (no warm-up to skip)
    return {"epochs": [_row(1, base, printed)]}


def test_like_for_like_gives_the_printed_batch_the_epoch_means_and_the_thesis_over_seeds():
    summary = report.summarize_variant({"0": _history(0.5, 0.2), "1": _history(0.7, 0.4)})
    assert abs(summary["tutorial"]["Loss_D"] - 0.3) < 1e-12 and abs(summary["best"]["Loss_D"] - 0.6) < 1e-12
    markdown = report.like_for_like_markdown({"cropped": summary})
    printed, means, thesis = [line for line in markdown.splitlines() if line.startswith("| cropped")]
    assert "tutorial print" in printed and "0.3000 ± 0.1414" in printed
    assert "per-epoch means" in means and "0.6000 ± 0.1414" in means
    assert "thesis" in thesis and "0.5139" in thesis and "2.0062" in thesis and "not given" in thesis


def test_histories_without_the_printed_batch_give_only_means():
    summary = report.summarize_variant({"0": _history(0.5, None)})
    assert "tutorial" not in summary
    markdown = report.like_for_like_markdown({"subset": summary})
    assert "last logged batch" not in markdown and "per-epoch means" in markdown and "0.6572" in markdown


def _mean_colour_space():
    import torch

    from fashion_pipeline.gan import quality

    return quality.FeatureSpace("mean_colour", "per-channel means", lambda batch: batch.mean(dim=(2, 3)), 32,
                                torch.device("cpu"))


def _save_generator(path, image_size: int) -> None:
    import torch

    from fashion_pipeline.gan import dcgan

    path.parent.mkdir(parents=True)
    generator = dcgan.Generator(nz=8, ngf=4, image_size=image_size)
    torch.save({"nz": 8, "ngf": 4, "image_size": image_size, "state_dict": generator.state_dict()}, path)


def test_a_128px_generator_is_scored_against_the_128px_training_set_not_the_64px_one(tmp_path):
    import numpy as np
    import pytest

    from fashion_pipeline.gan import dcgan, report

    sets = tmp_path / "dcgan_training_set"
    sets.mkdir()
    rng = np.random.default_rng(0)
    np.save(sets / "cropped.npy", rng.integers(0, 255, (40, 64, 64, 3), dtype=np.uint8))
    _save_generator(report.run_dir(tmp_path, "cropped", "0") / dcgan.GENERATOR_NAME, image_size=128)
    settings = report.ReportSettings(n_samples=32, kid_subsets=5)
    with pytest.raises(FileNotFoundError, match="cropped_128px.npy"):
        report.quality_scores(tmp_path, {"cropped": ["0"]}, _mean_colour_space(), settings)

    np.save(sets / "cropped_128px.npy", rng.integers(0, 255, (24, 128, 128, 3), dtype=np.uint8))
    scores = report.quality_scores(tmp_path, {"cropped": ["0"]}, _mean_colour_space(), settings)["cropped"]["0"]
    assert scores["vs_cropped"]["n_real"] == 24  # the 128-px set, not the 40 images at 64 px
    assert "vs_original" not in scores  # no original set at 128 px: no cross-variant score against 64-px reals
