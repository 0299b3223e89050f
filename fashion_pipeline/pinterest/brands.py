"""The brands file: which brands are scraped and where each one's pins come from.

Resolution of the file: explicit path > ``FASHION_PIPELINE_BRANDS`` > the packaged ``brands.yaml``.
Every error names the file and the line of the offending entry.

    python -m fashion_pipeline.pinterest.brands [--file brands.yaml]   # list slugs and sources
"""
from __future__ import annotations

import argparse
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

import yaml

BRANDS_ENV_VAR = "FASHION_PIPELINE_BRANDS"
DEFAULT_BRANDS_FILE = Path(__file__).with_name("brands.yaml")
_SLUG_OK = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class BrandsFileError(ValueError):
    """The brands file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Brand:
    name: str
    slug: str
    query: str | None = None
    board: str | None = None

    def source_url(self, base_url: str) -> str:
        """The live page to scroll: the board, or the pin search for the query."""
        if self.board:
            return urljoin(base_url.rstrip("/") + "/", self.board)
        return f"{base_url.rstrip('/')}/search/pins/?q={quote(self.query or self.name)}"


def slugify(name: str) -> str:
    """``"Chloé"`` -> ``chloe``, ``"Yves Saint Laurent"`` -> ``yves-saint-laurent``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def brands_file(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(BRANDS_ENV_VAR) or DEFAULT_BRANDS_FILE).expanduser()


class _LineLoader(yaml.SafeLoader):
    """Records each mapping's line so errors can point at the entry."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def _parse_entry(entry, where: str) -> Brand:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise BrandsFileError(f"{where}: each brand needs at least a `name`")
    name = str(entry["name"]).strip()
    query, board = entry.get("query"), entry.get("board")
    if bool(query) == bool(board):
        raise BrandsFileError(f"{where}: brand {name!r} needs exactly one of `query` or `board`")
    slug = str(entry.get("slug") or slugify(name))
    if not _SLUG_OK.match(slug):
        raise BrandsFileError(f"{where}: slug {slug!r} of brand {name!r} must be lowercase ascii words joined by '-'")
    unknown = set(entry) - {"name", "slug", "query", "board", "__line__"}
    if unknown:
        raise BrandsFileError(f"{where}: brand {name!r} has unknown keys {sorted(unknown)}")
    return Brand(name=name, slug=slug, query=str(query) if query else None, board=str(board) if board else None)


def load_brands(path: str | os.PathLike | None = None) -> list[Brand]:
    """Parse and validate the brands file; slugs must be unique."""
    path = brands_file(path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except FileNotFoundError as error:
        raise BrandsFileError(f"{path}: brands file not found (set {BRANDS_ENV_VAR} or fix the path)") from error
    except yaml.YAMLError as error:
        raise BrandsFileError(f"{path}: not valid YAML: {error}") from error
    entries = document.get("brands") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BrandsFileError(f"{path}: expected a top-level `brands:` list with at least one brand")
    brands: list[Brand] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        line = entry.get("__line__", "?") if isinstance(entry, dict) else "?"
        where = f"{path}:{line} (brand #{index + 1})"
        brand = _parse_entry(entry, where)
        if brand.slug in seen:
            raise BrandsFileError(f"{where}: slug {brand.slug!r} is already used by {seen[brand.slug]!r}")
        seen[brand.slug] = brand.name
        brands.append(brand)
    return brands


def brand_by_slug(slug: str, path: str | os.PathLike | None = None) -> Brand:
    for brand in load_brands(path):
        if brand.slug == slug:
            return brand
    raise KeyError(f"brand {slug!r} is not in {brands_file(path)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="List the brands (partition keys) and their sources.")
    parser.add_argument("--file", help=f"brands file (default: ${BRANDS_ENV_VAR} or the packaged brands.yaml)")
    parser.add_argument("--base-url", default="https://www.pinterest.com")
    args = parser.parse_args(argv)
    for brand in load_brands(args.file):
        print(f"{brand.slug:<22} {brand.name:<22} {brand.source_url(args.base_url)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
