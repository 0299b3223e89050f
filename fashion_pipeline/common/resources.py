"""Dagster resources shared by every stage."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg

from fashion_pipeline.common.paths import DATA_ENV_VAR, asset_dir, resolve_data_root


class DataRoot(dg.ConfigurableResource):
    """The one folder every asset writes under, laid out by asset name.

    ``root`` set in resource config wins; otherwise ``FASHION_PIPELINE_DATA``; otherwise ``./data``.
    """

    root: Optional[str] = None

    @property
    def path(self) -> Path:
        return resolve_data_root(self.root)

    def asset_dir(self, asset_name: str, partition: str | None = None) -> Path:
        return asset_dir(self.path, asset_name, partition)


class ComputeDevice(dg.ConfigurableResource):
    """Which torch device training and inference use: ``auto`` takes the GPU when there is one."""

    device: str = "auto"

    def torch_device(self):
        from fashion_pipeline.common.device import pick_device

        return pick_device(self.device)


__all__ = ["DataRoot", "ComputeDevice", "DATA_ENV_VAR"]
