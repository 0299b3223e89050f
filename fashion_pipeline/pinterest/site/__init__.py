"""The embedded Pinterest-like website the scraper uses by default and in tests.

    with EmbeddedPinterestSite(tmp_dir, ["Prada", "Chanel"], pins_per_board=30) as site:
        site.board_url("Prada")   # http://127.0.0.1:<port>/runwayarchive/prada-runway/

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
