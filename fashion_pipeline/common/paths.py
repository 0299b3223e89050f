"""Where the pipeline writes: one data root, laid out by asset.

Resolution order: explicit value (resource config) > ``FASHION_PIPELINE_DATA`` > ``./data``.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "FASHION_PIPELINE_DATA"
DEFAULT_DATA_DIR = "data"


def resolve_data_root(configured: str | None = None) -> Path:
    root = configured or os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return Path(root).expanduser().resolve()


def asset_dir(root: Path, asset_name: str, partition: str | None = None) -> Path:
    """``<root>/<asset_name>[/<partition>]``, created on demand."""
    path = root / asset_name
    if partition is not None:
        path = path / partition
    path.mkdir(parents=True, exist_ok=True)
    return path
