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
