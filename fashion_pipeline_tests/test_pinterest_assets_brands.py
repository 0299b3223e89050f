"""The brands file: the 20 thesis brands by default, clear errors, new brands without code."""
from __future__ import annotations

import pytest

from fashion_pipeline.pinterest.brands import BrandsFileError, load_brands, slugify


def test_default_file_has_the_twenty_thesis_brands_with_ascii_slugs():
    brands = load_brands()
    assert len(brands) == 20
    slugs = [b.slug for b in brands]
    assert {"chloe", "hermes", "yves-saint-laurent", "gcds", "max-mara"} <= set(slugs)
    assert all(s.isascii() for s in slugs)
    assert all(b.query and b.query.endswith("runway") for b in brands)


def test_env_var_selects_another_file_and_a_board_source(tmp_path, monkeypatch):
    path = tmp_path / "brands.yaml"
    path.write_text("brands:\n  - {name: Moschino, board: /someone/moschino-runway/}\n  - {name: Prada, query: Prada runway}\n")
    monkeypatch.setenv("FASHION_PIPELINE_BRANDS", str(path))
    moschino, prada = load_brands()
    assert moschino.source_url("https://www.pinterest.com") == "https://www.pinterest.com/someone/moschino-runway/"
    assert prada.source_url("https://www.pinterest.com/") == "https://www.pinterest.com/search/pins/?q=Prada%20runway"


@pytest.mark.parametrize(
    "text, message",
    [
        ("brands:\n  - {name: A, query: a}\n  - {name: B}\n", ":3 (brand #2)"),
        ("brands:\n  - {name: Chloé, query: a}\n  - {name: chloe, query: b}\n", "already used"),
        ("brands:\n  - {name: A, query: a, board: /b/}\n", "exactly one"),
        ("brands: []\n", "at least one brand"),
        ("brands: [\n", "not valid YAML"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "brands.yaml"
    path.write_text(text)
    with pytest.raises(BrandsFileError) as raised:
        load_brands(path)
    assert str(path) in str(raised.value) and message in str(raised.value)


def test_slugify():
    assert slugify("Yves Saint Laurent") == "yves-saint-laurent"
    assert slugify("Hermès") == "hermes"
