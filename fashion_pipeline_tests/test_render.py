"""Inline images in metadata are small thumbnails (see fashion_pipeline.common.render)."""
from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from fashion_pipeline.common import render  # noqa: E402

DATA_URI = re.compile(r"^!\[(?P<alt>[^\]]*)\]\(data:(?P<mime>image/(?:png|jpeg));base64,(?P<payload>[A-Za-z0-9+/=]+)\)$")


def parse(markdown: str) -> tuple[str, str, str, Image.Image]:
    """(alt, mime, base64 payload, decoded image); fails unless it is one well-formed data URI."""
    match = DATA_URI.match(markdown)
    assert match, markdown[:200]
    raw = base64.b64decode(match["payload"], validate=True)
    image = Image.open(io.BytesIO(raw))
    image.load()
    expected_format = {"image/png": "PNG", "image/jpeg": "JPEG"}[match["mime"]]
    assert image.format == expected_format
    return match["alt"], match["mime"], match["payload"], image


def assert_small(markdown: str) -> tuple[str, Image.Image]:
    _, mime, payload, image = parse(markdown)
    assert len(payload) <= render.MAX_INLINE_BYTES
    assert max(image.size) <= render.MAX_INLINE_SIDE
    return mime, image


@pytest.fixture
def noise_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(64)]


def test_constants() -> None:
    assert 16 * 1024 <= render.MAX_INLINE_BYTES <= 64 * 1024
    assert 128 <= render.MAX_INLINE_SIDE <= 512
    # three images at the cap leave room for tables in the 256 KB per-materialization budget
    assert 3 * render.MAX_INLINE_BYTES <= 256 * 1024 - 64 * 1024


def test_noisy_grid_is_thumbnailed(noise_images) -> None:
    full = render.image_grid(noise_images, ncols=8)
    # the test only means something if the full-size grid would blow the limits
    assert max(full.size) > render.MAX_INLINE_SIDE
    assert len(base64.b64encode(render.png_bytes(full))) > 10 * render.MAX_INLINE_BYTES

    markdown = render.grid_markdown(noise_images, ncols=8, alt="samples")
    mime, image = assert_small(markdown)
    assert markdown.startswith("![samples](")
    assert mime == "image/jpeg"  # noise compresses far better as JPEG
    assert max(image.size) == render.MAX_INLINE_SIDE  # fits at the max side: not shrunk further
    assert image.size[0] == image.size[1]  # aspect ratio of the square grid kept


def test_grid_with_cell_64(noise_images) -> None:
    assert_small(render.grid_markdown(noise_images, cell=64, alt="v"))


def test_empty_grid() -> None:
    assert render.grid_markdown([]) == "_no images_"


def test_large_figure_is_thumbnailed_and_closed() -> None:
    rng = np.random.default_rng(1)
    figure, axis = plt.subplots(figsize=(20, 10))
    axis.scatter(rng.normal(size=20000), rng.normal(size=20000), c=rng.random(20000), s=4, cmap="viridis")
    axis.imshow(rng.random((200, 400)), extent=(-4, 4, -4, 4), alpha=0.5)
    number = figure.number
    markdown = render.figure_markdown(figure, alt="big plot")
    assert not plt.fignum_exists(number)
    _, image = assert_small(markdown)
    assert markdown.startswith("![big plot](")
    assert max(image.size) == render.MAX_INLINE_SIDE
    assert image.size[0] > image.size[1]  # landscape kept


def test_loss_chart_like_figure() -> None:
    rng = np.random.default_rng(2)
    steps = np.abs(rng.normal(1, 0.5, (3000, 2))) + rng.normal(0, 0.3, (3000, 2))
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(steps[:, 1], alpha=0.35, color="tab:orange", label="G")
    axis.plot(steps[:, 0], alpha=0.35, color="tab:blue", label="D")
    axis.set_title("Generator and Discriminator loss during training")
    axis.legend(fontsize=7)
    assert_small(render.figure_markdown(figure, alt="loss chart"))


def test_small_image_not_upscaled() -> None:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    _, _, _, decoded = parse(render.png_markdown(image, alt="tiny"))
    assert decoded.size == (50, 30)


def test_flat_colour_plot_picks_png() -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar(["a", "b", "c", "d"], [3, 1, 4, 2], color="tab:blue")
    axis.set_title("counts")
    mime, _ = assert_small(render.figure_markdown(figure, alt="bars"))
    assert mime == "image/png"


def test_palette_png_is_exact_for_few_colours() -> None:
    image = Image.new("RGB", (300, 200), "white")
    for index, colour in enumerate(["tab:blue", "tab:orange", "tab:green", "black"]):
        image.paste(Image.new("RGB", (40, 150), matplotlib.colors.to_hex(colour)), (20 + 70 * index, 30))
    _, mime, _, decoded = parse(render.png_markdown(image))
    assert mime == "image/png"
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))


def test_picks_the_smaller_encoding() -> None:
    flat = Image.new("RGB", (300, 200), "white")
    flat.paste((200, 30, 30), (50, 50, 250, 150))
    noisy = Image.fromarray(np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    for image, expected in ((flat, "image/png"), (noisy, "image/jpeg")):
        mime, data = render.encode_inline(image)
        assert mime == expected
        other = render._encode(image, "JPEG", render.JPEG_QUALITY) if expected == "image/png" else render._encode(image, "PNG")
        assert len(data) <= len(other)


def test_tight_budget_lowers_quality_then_side() -> None:
    noisy = Image.fromarray(np.random.default_rng(5).integers(0, 256, (600, 600, 3), dtype=np.uint8))
    default_mime, default_image = assert_small(render.png_markdown(noisy))
    for budget in (20_000, 4_000, 600):
        markdown = render.inline_image_markdown(noisy, alt="n", max_bytes=budget)
        _, mime, payload, image = parse(markdown)
        assert len(payload) <= budget
        assert mime == "image/jpeg"
        assert max(image.size) <= render.MAX_INLINE_SIDE
    # at a 600-byte budget the side had to shrink, not just the quality
    assert max(image.size) < max(default_image.size)


def test_max_side_argument() -> None:
    image = Image.new("RGB", (1000, 500), "navy")
    _, _, _, decoded = parse(render.inline_image_markdown(image, alt="x", max_side=100))
    assert decoded.size == (100, 50)


def test_impossible_budget_omits_image() -> None:
    image = Image.new("RGB", (10, 10), "red")
    markdown = render.inline_image_markdown(image, alt="red", max_bytes=8)
    assert "base64" not in markdown and "red" in markdown


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "I;16"])
def test_other_modes(mode: str) -> None:
    base = Image.fromarray(np.random.default_rng(6).integers(0, 256, (500, 700, 3), dtype=np.uint8))
    image = base.convert("RGBA" if mode == "I;16" else mode)
    if mode == "I;16":
        image = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 256))
    assert_small(render.png_markdown(image, alt=mode))


def test_png_bytes_stays_full_resolution(noise_images) -> None:
    full = render.image_grid(noise_images, ncols=8)
    decoded = Image.open(io.BytesIO(render.png_bytes(full)))
    assert decoded.format == "PNG" and decoded.size == full.size
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(full))


def test_materialization_budget(noise_images) -> None:
    """Three worst-case images plus a table stay under the 256 KB metadata rule."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(np.random.default_rng(7).normal(size=5000), alpha=0.35)
    metadata = {
        "samples": render.grid_markdown(noise_images, alt="samples"),
        "comparison": render.png_markdown(render.image_grid(noise_images[:32], ncols=16, cell=128), alt="cmp"),
        "chart": render.figure_markdown(figure, alt="chart"),
        "table": render.markdown_table(["a", "b"], [[i, i / 7] for i in range(200)]),
    }
    assert sum(len(value.encode()) for value in metadata.values()) <= 256 * 1024


def test_markdown_table_unchanged() -> None:
    table = render.markdown_table(["name", "score", "n"], [["a", 0.12345, 3], ["b", 1.0, 10]])
    assert table == "| name | score | n |\n|---|---|---|\n| a | 0.123 | 3 |\n| b | 1.000 | 10 |"
    assert render.markdown_table(["x"], []) == "| x |\n|---|"
