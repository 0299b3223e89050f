"""The embedded Pinterest-like website the scraper uses by default and in tests.

    with EmbeddedPinterestSite(tmp_dir, ["Prada", "Chanel"], pins_per_board=30) as site:
        site.board_url("Prada")   # http://127.0.0.1:<port>/runwayarchive/prada-runway/

What it plants, for the later stages to find (``site.ground_truth()``, ``<root>/ground_truth.json``):
runway looks (mostly full outfits, some separates), noise pictures (accessory, head shot, crowd,
empty backdrop), and copies of one brand's looks on other brands' boards (repin with the same
URL, identical bytes, re-encoded, resized, cropped, bordered). Some originals are .png/.webp
(the thumbnail's .jpg answers 404) and some are missing (403: fall back to 736x).

Faults, for the downloader's tests, deterministic per URL (``faults.py``)::

    EmbeddedPinterestSite(..., faults=FaultConfig(error_429_rate=0.2, truncated_rate=0.05))
    site.set_faults(html_as_image_rate=0.1)       # change them while it runs
    GET <image url>?fault=garbage                  # or force one on a single request

``catalog`` decides boards and pins, ``images`` draws and caches their files, ``faults`` injects
failures, ``pages`` renders the HTML and ``server`` ties them into a threaded HTTP server.
Run it for a browser with ``python -m fashion_pipeline.pinterest.site --port 8765``.
"""
from __future__ import annotations

import importlib

# Resolved on first use (PEP 562), so `python -m fashion_pipeline.pinterest.site.<module>`
# does not import that module twice.
_EXPORTS = {
    "EmbeddedPinterestSite": "server", "FaultConfig": "faults", "FAULT_KINDS": "faults",
    "SiteMix": "catalog", "THESIS_BRANDS": "catalog", "brand_slug": "catalog",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
