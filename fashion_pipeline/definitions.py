"""The project's one ``Definitions``: every stage's definitions merged, resources bound.

Each stage package exposes ``defs`` (assets, checks, schedules) in its ``assets.py`` and
``resources()`` for the resources it needs; this module only puts them together. The stages are
imported by name: one that fails to import fails the code location loudly, never silently shrinks it.

Loading stays light (no torch, torchvision or pycocotools): the webserver, the daemon and every
scrape run import this module, and the heavy imports happen inside the assets that need them.
``dg check defs`` and ``dg dev`` find this module through ``[tool.dg.project]`` in pyproject.toml.
"""
from __future__ import annotations

import dagster as dg

from fashion_pipeline.common import deployment
from fashion_pipeline.common.resources import ComputeDevice, DataRoot
from fashion_pipeline.dedup import assets as dedup_assets
from fashion_pipeline.deepfashion import assets as deepfashion_assets
from fashion_pipeline.detector import assets as detector_assets
from fashion_pipeline.gan import assets as gan_assets
from fashion_pipeline.garments import assets as garment_assets
from fashion_pipeline.pinterest import assets as pinterest_assets
from fashion_pipeline.tryon import assets as tryon_assets

# Pipeline order.
STAGES = [deepfashion_assets, pinterest_assets, dedup_assets, detector_assets, gan_assets, garment_assets,
          tryon_assets]


def _stage_modules():
    return list(STAGES)


def build_defs() -> dg.Definitions:
    resources: dict = {"data_root": DataRoot(), "compute": ComputeDevice()}
    for module in STAGES:
        resources.update(module.resources())
    # Local or Kubernetes is configuration only: FASHION_PIPELINE_DEPLOYMENT picks the executor (docs/deploy.md).
    gpu_ops = deployment.gpu_pool_ops(asset for module in STAGES for asset in module.defs.assets or [])
    return dg.Definitions.merge(*(module.defs for module in STAGES),
                                dg.Definitions(resources=resources, executor=deployment.executor(gpu_ops)))


defs = build_defs()
